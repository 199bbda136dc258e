{#-
  Time buckets, independent of the session time zone. The `at time zone 'UTC'` form lets the
  planner use column statistics (and extended statistics on the expression), which gives parallel
  hash aggregates instead of a serial sort (PERFORMANCE.md). Spark's buckets are in its session
  time zone, which the profiles set to UTC (spark.sql.session.timeZone).
-#}

{#- The UTC hour a timestamptz falls in, as a timestamptz. -#}
{% macro hour_bucket(column) -%}
    {{ return(adapter.dispatch('hour_bucket', 'costwatch')(column)) }}
{%- endmacro %}

{% macro default__hour_bucket(column) -%}
    (date_trunc('hour', ({{ column }}) at time zone 'UTC') at time zone 'UTC')
{%- endmacro %}

{% macro spark__hour_bucket(column) -%}
    date_trunc('HOUR', {{ column }})
{%- endmacro %}

{#- The UTC calendar day a timestamptz falls in, as a date. -#}
{% macro day_bucket(column) -%}
    {{ return(adapter.dispatch('day_bucket', 'costwatch')(column)) }}
{%- endmacro %}

{% macro default__day_bucket(column) -%}
    ((({{ column }}) at time zone 'UTC')::date)
{%- endmacro %}

{% macro spark__day_bucket(column) -%}
    to_date({{ column }})
{%- endmacro %}

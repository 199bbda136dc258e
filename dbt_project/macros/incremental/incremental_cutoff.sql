{#-
  Incremental windows. Every incremental model rebuilds whole buckets (hours or days) from the
  first bucket that late events may still reach: the newest bucket already in the model minus
  `late_event_lookback_hours`. The cutoff is read once, when the model is compiled, and inlined
  as a literal, so the delete and the insert of one run agree and the planner can use the
  btree index on created_at. On a full refresh (or a first build) there is no cutoff.
-#}

{#- Literal timestamptz: start of the oldest bucket to rebuild, or none when not incremental.
    `column` is a timestamptz (grain 'hour': the cutoff is that hour minus the lookback;
    grain 'day_of_hour': the start of the UTC day of that hour minus the lookback) or a date
    (grain 'day': the start of the day of (newest day - lookback), which is coarser: it cannot
    know how far the newest day is filled);
    `where` optionally restricts the rows that set the high-water mark. -#}
{% macro incremental_cutoff(column, grain='hour', where=none) -%}
    {%- if not (execute and is_incremental()) -%}
        {{ return(none) }}
    {%- endif -%}
    {#- On Spark only a model partitioned by day narrows, at grain 'day': it selects whole days
        from the cutoff on, and insert_overwrite replaces exactly those partitions. -#}
    {%- if not (narrows_windows() or (grain == 'day' and config.get('partition_by') == ['day'])) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set lookback = var('late_event_lookback_hours') | int -%}
    {%- if grain == 'hour' -%}
        {%- set expression = "max(" ~ column ~ ") - interval '" ~ lookback ~ " hours'" -%}
    {%- elif grain == 'day_of_hour' -%}
        {%- set expression = day_start(day_bucket("max(" ~ column ~ ") - interval '" ~ lookback ~ " hours'")) -%}
    {%- else -%}
        {%- set expression = day_start("(max(" ~ column ~ ") - interval '" ~ lookback ~ " hours')::date") -%}
    {%- endif -%}
    {%- set query -%}
        select coalesce(cast(({{ expression }}) as {{ type_text() }}), '-infinity')
        from {{ this }}
        {% if where %}where {{ where }}{% endif %}
    {%- endset -%}
    {%- set value = run_query(query).columns[0].values()[0] -%}
    {{ return(timestamp_literal(value)) }}
{%- endmacro %}

{#- Intermediate: `cutoff` (this model's own, from incremental_cutoff) narrowed to what
    `staging_model` re-checked since this model last looked; `grain` 'day' widens the start to
    its UTC day. None (a full build) stays none, and records the log as consumed. -#}
{% macro checked_window_cutoff(cutoff, staging_model, grain='hour') -%}
    {%- if not writes_checked_windows() -%}{{ return(cutoff) }}{%- endif -%}
    {%- set since = "min(since)" if grain == 'hour' else day_start(day_bucket("min(since)")) -%}
    {%- set query -%}
        with

        consumed as (
            select coalesce(max(last_id), 0) as last_id
            from staging.dbt_consumed_windows
            where consumer = '{{ this.name }}' and model = '{{ staging_model }}'
        ),

        unconsumed as (
            select
                coalesce({{ since }}, 'infinity'::timestamptz) as since,
                max(id) as newest_id
            from staging.dbt_checked_windows
            where model = '{{ staging_model }}' and id > (select consumed.last_id from consumed)
        ),

        recorded as (
            insert into staging.dbt_consumed_windows (consumer, model, last_id)
            select '{{ this.name }}', '{{ staging_model }}', unconsumed.newest_id
            from unconsumed
            where unconsumed.newest_id is not null
            on conflict (consumer, model) do update
                set last_id = greatest(excluded.last_id, staging.dbt_consumed_windows.last_id)
        )

        select
            {%- if cutoff is none %}
            null::text
            {%- else %}
            greatest({{ cutoff }}, unconsumed.since)::text
            {%- endif %}
        from unconsumed
    {%- endset -%}
    {%- set value = run_query(query).columns[0].values()[0] -%}
    {%- if cutoff is none or value is none -%}{{ return(cutoff) }}{%- endif -%}
    {{ return("'" ~ value ~ "'::timestamptz") }}
{%- endmacro %}

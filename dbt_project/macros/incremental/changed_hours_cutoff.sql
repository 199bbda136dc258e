{#- The staging models' cutoff: the start of the oldest hour, within the lookback, whose raw rows
    differ in number from the rows already checked for it, or that holds a row rejected for
    being stamped in the future (it may be due by now). Every hour from there on is checked
    again, as with `incremental_cutoff`; an hourly pass whose only change is the new hour
    rebuilds that hour, not the whole lookback. Nothing changed: 'infinity' (only rows without a
    created_at are checked again). Raw rows are appended, not updated in place: an update that
    keeps an hour's count is seen by `--full-refresh`.
    `where` restricts the rows that set the high-water mark, as for `incremental_cutoff`. -#}
{% macro changed_hours_cutoff(source_relation, where=none) -%}
    {%- if not (execute and is_incremental() and narrows_windows()) -%}
        {%- do log_checked_window("'-infinity'::timestamptz") -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set lookback = var('late_event_lookback_hours') | int -%}
    {%- set query -%}
        with

        bounds as (
            select coalesce(
                {{ hour_bucket('max(created_at)') }} - interval '{{ lookback }} hours',
                '-infinity'::timestamptz
            ) as since
            from {{ this }}
            {% if where %}where {{ where }}{% endif %}
        ),

        raw_hours as (
            select
                {{ hour_bucket('created_at') }} as hour,
                count(*) as row_count
            from {{ source_relation }}
            where created_at >= (select bounds.since from bounds)
            group by 1
        ),

        built_hours as (
            select
                load_hour as hour,
                count(*) as row_count,
                bool_or(reject_reason = 'future_created_at') as has_future_rows
            from {{ this }}
            where load_hour >= (select bounds.since from bounds)
            group by 1
        )

        select coalesce(min(coalesce(raw_hours.hour, built_hours.hour))::text, 'infinity')
        from raw_hours
        full outer join built_hours
            on raw_hours.hour = built_hours.hour
        where
            raw_hours.row_count is distinct from built_hours.row_count
            or built_hours.has_future_rows
    {%- endset -%}
    {%- set value = run_query(query).columns[0].values()[0] -%}
    {%- do log_checked_window("'" ~ value ~ "'::timestamptz") -%}
    {{ return("'" ~ value ~ "'::timestamptz") }}
{%- endmacro %}

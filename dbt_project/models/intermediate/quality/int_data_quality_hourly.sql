-- Reconciliation per source and load hour (the created_at hour, '-infinity' when created_at is
-- null): raw rows counted on the raw table itself, and how the cleaning classified them.
{{
    config(
        materialized='incremental',
        unique_key='load_hour',
    )
}}

{%- set cutoff = none %}
{%- if execute and is_incremental() and narrows_windows() %}
    {%- set query %}
        select coalesce(
            (min(newest) - interval '{{ var("late_event_lookback_hours") | int }} hours')::text,
            '-infinity'
        )
        from (
            select max(load_hour) as newest
            from {{ this }}
            where clean_rows > 0
            group by source
        ) as per_source
    {%- endset %}
    {%- set cutoff = "'" ~ run_query(query).columns[0].values()[0] ~ "'::timestamptz" %}
{%- endif %}

with

raw_inference_events as (
    select coalesce({{ hour_bucket('created_at') }}, {{ minus_infinity() }}) as load_hour
    from {{ source('raw', 'inference_events') }}
    where {{ since_cutoff('created_at', cutoff, or_null=true) }}
),

raw_tool_calls as (
    select coalesce({{ hour_bucket('created_at') }}, {{ minus_infinity() }}) as load_hour
    from {{ source('raw', 'tool_calls') }}
    where {{ since_cutoff('created_at', cutoff, or_null=true) }}
),

checked_inference_events as (
    select * from {{ ref('stg_raw__inference_events_checked') }}
    where {{ since_cutoff('created_at', cutoff, or_null=true) }}
),

checked_tool_calls as (
    select * from {{ ref('stg_raw__tool_calls_checked') }}
    where {{ since_cutoff('created_at', cutoff, or_null=true) }}
),

raw_counts as (
    select
        'inference_events' as source,
        load_hour,
        count(*) as raw_rows
    from raw_inference_events
    group by load_hour
    union all
    select
        'tool_calls' as source,
        load_hour,
        count(*) as raw_rows
    from raw_tool_calls
    group by load_hour
),

verdicts as (
    select
        'inference_events' as source,
        load_hour,
        count(*) filter (where reject_reason is null and not is_duplicate) as clean_rows,
        count(*) filter (where reject_reason is not null) as rejected_rows,
        count(*) filter (where is_duplicate) as duplicate_rows,
        count(*) filter (where reject_reason = 'unpriced_model') as unpriced_rows,
        count(*) filter (
            where reject_reason is null and not is_duplicate and cost_source = 'priced'
        ) as priced_rows
    from checked_inference_events
    group by load_hour
    union all
    select
        'tool_calls' as source,
        load_hour,
        count(*) filter (where reject_reason is null and not is_duplicate) as clean_rows,
        count(*) filter (where reject_reason is not null) as rejected_rows,
        count(*) filter (where is_duplicate) as duplicate_rows,
        0 as unpriced_rows,
        0 as priced_rows
    from checked_tool_calls
    group by load_hour
),

final as (
    select
        coalesce(raw_counts.source, verdicts.source) as source,
        coalesce(raw_counts.load_hour, verdicts.load_hour) as load_hour,
        coalesce(raw_counts.raw_rows, 0) as raw_rows,
        coalesce(verdicts.clean_rows, 0) as clean_rows,
        coalesce(verdicts.rejected_rows, 0) as rejected_rows,
        coalesce(verdicts.duplicate_rows, 0) as duplicate_rows,
        coalesce(verdicts.unpriced_rows, 0) as unpriced_rows,
        coalesce(verdicts.priced_rows, 0) as priced_rows
    from raw_counts
    full outer join verdicts
        on
        raw_counts.source = verdicts.source
        and raw_counts.load_hour = verdicts.load_hour
)

select * from final

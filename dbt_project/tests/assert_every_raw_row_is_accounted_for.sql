-- A returned row is a raw table holding rows that no run has classified (or missing rows that
-- were classified): rows older than the incremental window were appended (a backfill) or raw
-- rows were deleted. `costwatch run --full-refresh` accounts for them again.
{{ config(severity='warn') }}

with

raw_counts as (
    select
        'inference_events' as source,
        count(*) as raw_rows
    from {{ source('raw', 'inference_events') }}
    union all
    select
        'tool_calls' as source,
        count(*) as raw_rows
    from {{ source('raw', 'tool_calls') }}
),

accounted as (
    select
        source,
        sum(raw_rows) as accounted_rows
    from {{ ref('data_quality_daily') }}
    group by source
),

final as (
    select
        raw_counts.source,
        raw_counts.raw_rows,
        coalesce(accounted.accounted_rows, 0) as accounted_rows
    from raw_counts
    left join accounted
        on raw_counts.source = accounted.source
    where raw_counts.raw_rows != coalesce(accounted.accounted_rows, 0)
)

select * from final

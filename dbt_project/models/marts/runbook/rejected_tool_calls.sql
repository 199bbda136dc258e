-- Raw rows of raw.tool_calls that failed a validity rule, with the first rule they failed.
-- A view on the staging verdicts, so it is always in step with them and costs nothing to build.
{{ config(materialized='view') }}

with

checked as (
    select * from {{ ref('stg_raw__tool_calls_checked') }}
),

final as (
    select
        call_id,
        created_at,
        event_id,
        feature,
        tool_name,
        success,
        retries,
        latency_ms,
        reject_reason
    from checked
    where reject_reason is not null
)

select * from final

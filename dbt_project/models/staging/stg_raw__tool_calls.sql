-- Clean tool calls: valid, one row per call_id.
with

checked as (
    select * from {{ ref('stg_raw__tool_calls_checked') }}
),

final as (
    select
        call_id,
        created_at,
        hour,
        day,
        event_id,
        feature,
        tool_name,
        success,
        retries,
        latency_ms
    from checked
    where reject_reason is null and not is_duplicate
)

select * from final

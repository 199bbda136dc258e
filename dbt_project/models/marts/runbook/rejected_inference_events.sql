-- Raw rows of raw.inference_events that failed a validity rule, with the first rule they failed.
-- A view on the staging verdicts, so it is always in step with them and costs nothing to build.
{{ config(materialized='view') }}

with

checked as (
    select * from {{ ref('stg_raw__inference_events_checked') }}
),

final as (
    select
        event_id,
        created_at,
        user_id,
        session_id,
        feature,
        trigger_type,
        model,
        input_tokens,
        output_tokens,
        cost_usd,
        user_agent,
        cached_input_tokens,
        cache_write_tokens,
        reasoning_tokens,
        provider,
        cost_source,
        reject_reason
    from checked
    where reject_reason is not null
)

select * from final

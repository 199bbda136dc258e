-- Clean inference events: valid, one row per event_id. Reads only what the marts ask for.
with

checked as (
    select * from {{ ref('stg_raw__inference_events_checked') }}
),

final as (
    select
        event_id,
        created_at,
        hour,
        day,
        user_id,
        session_id,
        feature,
        trigger_type,
        {{ is_hidden_trigger('trigger_type') }} as is_hidden,
        model,
        input_tokens,
        output_tokens,
        cost_usd,
        user_agent,
        cached_input_tokens,
        cache_write_tokens,
        reasoning_tokens,
        provider,
        cost_source
    from checked
    where reject_reason is null and not is_duplicate
)

select * from final

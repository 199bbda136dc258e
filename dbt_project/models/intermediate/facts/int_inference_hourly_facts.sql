-- Additive hourly facts of clean inference events, one row per hour, feature, trigger type,
-- model and provider. Every additive mart (cost, triggers, recompute, tokens, features) rolls up from here.
{{
    config(
        materialized='incremental',
        unique_key='hour',
        indexes=[{'columns': ['hour']}],
    )
}}

{#- From the hours staging checked again, within this model's lookback. #}
{%- set cutoff = checked_window_cutoff(
    incremental_cutoff('hour'), 'stg_raw__inference_events_checked'
) %}

with

events as (
    select * from {{ ref('stg_raw__inference_events') }}
    where {{ since_cutoff('created_at', cutoff) }}
),

final as (
    select
        hour,
        feature,
        trigger_type,
        model,
        provider,
        {{ is_hidden_trigger('trigger_type') }} as is_hidden,
        count(*) as requests,
        sum(cost_usd) as cost_usd,
        sum(input_tokens) as sum_input_tokens,
        sum(output_tokens) as sum_output_tokens,
        coalesce(sum(cached_input_tokens), 0) as sum_cached_input_tokens,
        coalesce(sum(cache_write_tokens), 0) as sum_cache_write_tokens,
        coalesce(sum(reasoning_tokens), 0) as sum_reasoning_tokens,
        count(*) filter (where cost_source = 'priced') as priced_requests,
        coalesce(sum(cost_usd) filter (where cost_source = 'priced'), 0) as priced_cost_usd
    from events
    group by hour, feature, trigger_type, model, provider
)

select * from final

-- Cost per day, provider and model, with the tokens behind it and how much of the cost was
-- priced from the price table (cost_source = priced) rather than reported by the provider.
{{
    config(
        materialized='incremental',
        unique_key='day',
    )
}}

{%- set cutoff = incremental_cutoff('day', grain='day') %}

with

facts as (
    select * from {{ ref('int_inference_hourly_facts') }}
    where {{ since_cutoff('hour', cutoff) }}
),

final as (
    select
        {{ day_bucket('hour') }} as day,
        coalesce(provider, 'unknown') as provider,
        model,
        sum(requests)::bigint as requests,
        sum(cost_usd) as total_cost_usd,
        sum(cost_usd) / sum(requests) as cost_per_request_usd,
        sum(priced_requests)::bigint as priced_requests,
        sum(priced_cost_usd) as priced_cost_usd,
        sum(sum_input_tokens)::bigint as sum_input_tokens,
        sum(sum_cached_input_tokens)::bigint as sum_cached_input_tokens,
        sum(sum_cache_write_tokens)::bigint as sum_cache_write_tokens,
        sum(sum_output_tokens)::bigint as sum_output_tokens,
        sum(sum_reasoning_tokens)::bigint as sum_reasoning_tokens
    from facts
    group by {{ day_bucket('hour') }}, coalesce(provider, 'unknown'), model
)

select * from final

-- Runbook step 4 per day: average and 95th percentile of input and output tokens.
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

distributions as (
    select * from {{ ref('int_inference_daily_distributions') }}
    where {{ since_cutoff_day('day', cutoff) }}
),

totals as (
    select
        {{ day_bucket('hour') }} as day,
        sum(requests)::bigint as requests,
        sum(sum_input_tokens)::bigint as sum_input_tokens,
        sum(sum_output_tokens)::bigint as sum_output_tokens,
        sum(sum_cached_input_tokens)::bigint as sum_cached_input_tokens,
        sum(sum_cache_write_tokens)::bigint as sum_cache_write_tokens,
        sum(sum_reasoning_tokens)::bigint as sum_reasoning_tokens
    from facts
    group by {{ day_bucket('hour') }}
),

final as (
    select
        totals.day,
        totals.requests,
        totals.sum_input_tokens,
        totals.sum_output_tokens,
        distributions.p95_input_tokens,
        distributions.p95_output_tokens,
        {{ as_numeric('totals.sum_input_tokens') }} / totals.requests as avg_input_tokens,
        {{ as_numeric('totals.sum_output_tokens') }} / totals.requests as avg_output_tokens,
        totals.sum_cached_input_tokens,
        totals.sum_cache_write_tokens,
        totals.sum_reasoning_tokens,
        {{ as_numeric('totals.sum_cached_input_tokens') }} / totals.requests as avg_cached_input_tokens,
        {{ as_numeric('totals.sum_cache_write_tokens') }} / totals.requests as avg_cache_write_tokens,
        {{ as_numeric('totals.sum_reasoning_tokens') }} / totals.requests as avg_reasoning_tokens,
        case
            when totals.sum_input_tokens > 0
                then {{ as_numeric('totals.sum_cached_input_tokens') }} / totals.sum_input_tokens
        end as cached_input_ratio
    from totals
    inner join distributions
        on totals.day = distributions.day
)

select * from final

-- Runbook step 4 per day: average and 95th percentile of input and output tokens.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='day',
        on_schema_change='append_new_columns',
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
        sum(sum_output_tokens)::bigint as sum_output_tokens
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
        totals.sum_input_tokens::numeric / totals.requests as avg_input_tokens,
        totals.sum_output_tokens::numeric / totals.requests as avg_output_tokens
    from totals
    inner join distributions
        on totals.day = distributions.day
)

select * from final

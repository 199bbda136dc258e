-- Runbook steps 1 and 2 per day: traffic, distinct users and cost.
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
        sum(cost_usd) as total_cost_usd
    from facts
    group by {{ day_bucket('hour') }}
),

final as (
    select
        totals.day,
        totals.requests,
        distributions.unique_users,
        totals.total_cost_usd,
        totals.total_cost_usd / totals.requests as avg_cost_per_request_usd
    from totals
    inner join distributions
        on totals.day = distributions.day
)

select * from final

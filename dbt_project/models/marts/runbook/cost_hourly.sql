-- Runbook steps 1 and 2 per hour: traffic, distinct users and cost.
{{
    config(
        materialized='incremental',
        unique_key='hour',
    )
}}

{%- set cutoff = incremental_cutoff('hour') %}

with

facts as (
    select * from {{ ref('int_inference_hourly_facts') }}
    where {{ since_cutoff('hour', cutoff) }}
),

distributions as (
    select * from {{ ref('int_inference_hourly_distributions') }}
    where {{ since_cutoff('hour', cutoff) }}
),

totals as (
    select
        hour,
        sum(requests)::bigint as requests,
        sum(cost_usd) as total_cost_usd
    from facts
    group by hour
),

final as (
    select
        totals.hour,
        totals.requests,
        distributions.unique_users,
        totals.total_cost_usd,
        totals.total_cost_usd / totals.requests as avg_cost_per_request_usd
    from totals
    inner join distributions
        on totals.hour = distributions.hour
)

select * from final

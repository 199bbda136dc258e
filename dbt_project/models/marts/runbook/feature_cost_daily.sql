-- Runbook step 5 per day and feature: which feature carries the cost.
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

totals as (
    select
        {{ day_bucket('hour') }} as day,
        feature,
        sum(requests)::bigint as requests,
        sum(cost_usd) as total_cost_usd
    from facts
    group by {{ day_bucket('hour') }}, feature
),

final as (
    select
        day,
        feature,
        requests,
        total_cost_usd,
        total_cost_usd / requests as cost_per_request_usd
    from totals
)

select * from final

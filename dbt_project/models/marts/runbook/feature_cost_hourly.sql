-- Runbook step 5 per hour and feature: which feature carries the cost.
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

totals as (
    select
        hour,
        feature,
        sum(requests)::bigint as requests,
        sum(cost_usd) as total_cost_usd
    from facts
    group by hour, feature
),

final as (
    select
        hour,
        feature,
        requests,
        total_cost_usd,
        total_cost_usd / requests as cost_per_request_usd
    from totals
)

select * from final

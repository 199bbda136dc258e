-- Runbook step 3 per hour and trigger type: requests and cost of each trigger.
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

final as (
    select
        hour,
        trigger_type,
        bool_or(is_hidden) as is_hidden,
        sum(requests)::bigint as requests,
        sum(cost_usd) as cost_usd
    from facts
    group by hour, trigger_type
)

select * from final

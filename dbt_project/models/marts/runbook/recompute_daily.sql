-- Runbook step 3 per day: hidden recompute (undo, retry, auto_save) against all requests.
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
        sum(requests)::bigint as total,
        (sum(requests) filter (where is_hidden))::bigint as hidden,
        (sum(requests) filter (where trigger_type = 'user'))::bigint as user_requests,
        (sum(requests) filter (where trigger_type = 'undo'))::bigint as undo_requests,
        (sum(requests) filter (where trigger_type = 'retry'))::bigint as retry_requests,
        (sum(requests) filter (where trigger_type = 'auto_save'))::bigint as auto_save_requests,
        sum(cost_usd) as total_cost_usd,
        sum(cost_usd) filter (where is_hidden) as hidden_cost_usd
    from facts
    group by {{ day_bucket('hour') }}
),

final as (
    select
        day,
        total,
        total_cost_usd,
        coalesce(hidden, 0) as hidden,
        {{ as_double('coalesce(hidden, 0)') }} / total as hidden_ratio,
        coalesce(hidden_cost_usd, 0) as hidden_cost_usd,
        coalesce(user_requests, 0) as user_requests,
        coalesce(undo_requests, 0) as undo_requests,
        coalesce(retry_requests, 0) as retry_requests,
        coalesce(auto_save_requests, 0) as auto_save_requests
    from totals
)

select * from final

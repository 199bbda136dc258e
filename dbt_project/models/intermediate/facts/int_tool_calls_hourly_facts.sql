-- Additive hourly facts of clean tool calls, one row per hour, tool and feature.
{{
    config(
        materialized='incremental',
        unique_key='hour',
        indexes=[{'columns': ['hour']}],
    )
}}

{#- From the hours staging checked again, within this model's lookback. #}
{%- set cutoff = checked_window_cutoff(
    incremental_cutoff('hour'), 'stg_raw__tool_calls_checked'
) %}

with

calls as (
    select * from {{ ref('stg_raw__tool_calls') }}
    where {{ since_cutoff('created_at', cutoff) }}
),

final as (
    select
        hour,
        tool_name,
        feature,
        count(*) as total_calls,
        count(*) filter (where success = false) as failures,
        sum(retries) as total_retries,
        sum(latency_ms) as sum_latency_ms,
        count(latency_ms) as latency_calls
    from calls
    group by hour, tool_name, feature
)

select * from final

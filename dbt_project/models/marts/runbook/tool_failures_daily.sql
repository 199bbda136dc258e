-- Runbook step 6 per day and tool: calls, failures and retries.
{{
    config(
        materialized='incremental',
        unique_key='day',
    )
}}

{%- set cutoff = incremental_cutoff('day', grain='day') %}

with

facts as (
    select * from {{ ref('int_tool_calls_hourly_facts') }}
    where {{ since_cutoff('hour', cutoff) }}
),

totals as (
    select
        {{ day_bucket('hour') }} as day,
        tool_name,
        sum(total_calls)::bigint as total_calls,
        sum(failures)::bigint as failures,
        sum(total_retries)::bigint as total_retries
    from facts
    group by {{ day_bucket('hour') }}, tool_name
),

final as (
    select
        day,
        tool_name,
        total_calls,
        failures,
        total_retries,
        {{ as_double('failures') }} / total_calls as failure_rate,
        {{ as_numeric('total_retries') }} / total_calls as avg_retries
    from totals
)

select * from final

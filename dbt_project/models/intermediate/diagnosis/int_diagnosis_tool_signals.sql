-- Runbook step 6 per spike and tool: failure rate and retries per call in the baseline window
-- and the spike window, and whether the tool is storming (its failure rate or retries rose by
-- `diagnosis_tool_failure_rate_rise` / `diagnosis_tool_retries_rise`).
with

tools as (
    select * from {{ ref('int_diagnosis_tools') }}
),

tool_totals as (
    select
        spike_id,
        tool_name,
        sum(calls_before) as calls_before,
        sum(calls_after) as calls_after,
        sum(failures_before) / nullif(sum(calls_before), 0) as failure_rate_before,
        sum(failures_after) / nullif(sum(calls_after), 0) as failure_rate_after,
        sum(retries_before) / nullif(sum(calls_before), 0) as avg_retries_before,
        sum(retries_after) / nullif(sum(calls_after), 0) as avg_retries_after
    from tools
    group by spike_id, tool_name
),

final as (
    select
        *,
        coalesce(failure_rate_after, 0) - coalesce(failure_rate_before, 0) as failure_rate_rise,
        coalesce(avg_retries_after, 0) - coalesce(avg_retries_before, 0) as retries_rise,
        calls_after > 0
        and (
            coalesce(failure_rate_after, 0) - coalesce(failure_rate_before, 0)
            >= {{ var('diagnosis_tool_failure_rate_rise') }}
            or coalesce(avg_retries_after, 0) - coalesce(avg_retries_before, 0)
            >= {{ var('diagnosis_tool_retries_rise') }}
        ) as is_storming
    from tool_totals
)

select * from final

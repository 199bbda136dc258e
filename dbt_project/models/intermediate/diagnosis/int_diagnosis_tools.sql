-- Tool calls of each spike window against its baseline window, by tool and calling feature
-- (runbook step 6): expected (`_before`, weighted baseline hours) and actual (`_after`).
with

windows as (
    select * from {{ ref('int_diagnosis_windows') }}
),

tool_facts as (
    select * from {{ ref('int_tool_calls_hourly_facts') }}
    where hour in (select windows.hour from windows)
),

joined as (
    select
        windows.spike_id,
        windows.period,
        windows.weight,
        tool_facts.tool_name,
        tool_facts.feature,
        tool_facts.total_calls::float8 as calls,
        tool_facts.failures::float8 as failures,
        tool_facts.total_retries::float8 as retries
    from windows
    inner join tool_facts
        on windows.hour = tool_facts.hour
),

final as (
    select
        spike_id,
        tool_name,
        feature,
        coalesce(sum(weight * calls) filter (where period = 'baseline'), 0) as calls_before,
        coalesce(sum(calls) filter (where period = 'spike'), 0) as calls_after,
        coalesce(sum(weight * failures) filter (where period = 'baseline'), 0) as failures_before,
        coalesce(sum(failures) filter (where period = 'spike'), 0) as failures_after,
        coalesce(sum(weight * retries) filter (where period = 'baseline'), 0) as retries_before,
        coalesce(sum(retries) filter (where period = 'spike'), 0) as retries_after
    from joined
    group by spike_id, tool_name, feature
)

select * from final

-- A row is an hour whose cost in cost_baseline_hourly differs from the runbook's step 1 mart
-- cost_hourly (or an hour with data that one of them lacks): detection must judge the very cost
-- the runbook's query shows.
with

baseline_hours as (
    select * from {{ ref('cost_baseline_hourly') }}
    where has_data
),

cost_hourly as (
    select * from {{ ref('cost_hourly') }}
),

final as (
    select
        coalesce(baseline_hours.hour, cost_hourly.hour) as hour,
        baseline_hours.total_cost_usd as detection_cost_usd,
        cost_hourly.total_cost_usd as runbook_cost_usd
    from baseline_hours
    full outer join cost_hourly
        on baseline_hours.hour = cost_hourly.hour
    where
        baseline_hours.hour is null
        or cost_hourly.hour is null
        or abs(baseline_hours.total_cost_usd - cost_hourly.total_cost_usd) > 1e-9
        or baseline_hours.requests != cost_hourly.requests
)

select * from final

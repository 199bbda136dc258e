-- A returned row: the newest complete hour is a suspected spike, a spike hour not (yet) in a
-- confirmed spike (CONTRACT section 5). A warning only: it shows on the cost_baseline_hourly
-- asset in Dagster while a spike may be starting, opens no incident and pages nobody (incidents
-- open from marts.cost_spikes only). It clears when the next hour confirms the spike (then the
-- spike check and the incident take over) or is normal (a one-hour blip).
{{ config(severity='warn') }}

with

baseline_hours as (
    select * from {{ ref('cost_baseline_hourly') }}
),

newest as (
    select max(hour) as newest_complete_hour
    from baseline_hours
    where is_complete
),

final as (
    select
        baseline_hours.hour,
        baseline_hours.total_cost_usd,
        baseline_hours.baseline_cost_usd,
        baseline_hours.pct_above_baseline,
        baseline_hours.spike_run_hours
    from baseline_hours
    inner join newest
        on baseline_hours.hour = newest.newest_complete_hour
    where baseline_hours.is_suspected_spike
)

select * from final

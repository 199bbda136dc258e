-- Runbook step 1, confirmed: one row per sustained spike (a run of at least `spike_min_hours`
-- consecutive spike hours of cost_baseline_hourly, or `spike_min_severe_hours` severe ones).
-- The id is derived from the first hour, which depends on earlier data only, so it is the same
-- on every run.
with

baseline_hours as (
    select * from {{ ref('cost_baseline_hourly') }}
),

newest as (
    select max(hour) filter (where is_complete) as last_complete_hour
    from baseline_hours
),

spike_hours as (
    select * from baseline_hours
    where spike_id is not null
),

peaks as (
    select
        spike_id,
        peak_hour
    from (
        select
            spike_id,
            hour as peak_hour,
            row_number() over (
                partition by spike_id order by excess_cost_usd desc, hour
            ) as peak_rank
        from spike_hours
    ) as ranked
    where peak_rank = 1
),

spikes as (
    select
        spike_id,
        min(hour) as spike_start,
        max(hour) as spike_end,
        count(*)::integer as hours,
        min(hour) filter (where is_spike_confirmed_hour) as confirmed_hour,
        sum(total_cost_usd) as total_cost_usd,
        {{ as_numeric('sum(baseline_cost_usd)') }} as baseline_cost_usd
    from spike_hours
    group by spike_id
),

final as (
    select
        spikes.spike_id,
        spikes.spike_start,
        spikes.spike_end,
        spikes.hours,
        peaks.peak_hour,
        spikes.total_cost_usd,
        spikes.baseline_cost_usd,
        spikes.total_cost_usd - spikes.baseline_cost_usd as excess_cost_usd,
        {{ as_double(
            '((spikes.total_cost_usd - spikes.baseline_cost_usd)'
            ~ ' / nullif(spikes.baseline_cost_usd, 0))'
        ) }} as pct_above_baseline,
        spikes.spike_end = newest.last_complete_hour as is_ongoing,
        spikes.confirmed_hour
    from spikes
    inner join peaks
        on spikes.spike_id = peaks.spike_id
    cross join newest
)

select * from final

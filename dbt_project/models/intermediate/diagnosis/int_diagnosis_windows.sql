{#-
  The hours a spike is compared on (runbook steps 2-6): its complete hours with data (period
  'spike') and, for each, the hours its baseline profile is made of (period 'baseline'): the same
  hour of day on the last `spike_baseline_days` earlier days of the same day type (weekday or
  weekend, within `spike_baseline_lookback_days`) that are complete, have data and are in no
  spike. `weight` turns baseline sums into the expected value of the spike window at the spike's
  level: each spike hour counts once, its n baseline hours (level then / level now) / n each, so
  sum(weight * x) over the baseline rows is the mean of the same hours before, scaled to the
  product's level at the spike (growth since then is not an excess), summed over the spike's
  hours.
-#}

{%- set days = var('spike_baseline_days') | int -%}
{%- set lookback_days = var('spike_baseline_lookback_days') | int -%}

with

spikes as (
    select * from {{ ref('cost_spikes') }}
),

baseline_hours as (
    select * from {{ ref('cost_baseline_hourly') }}
),

spike_slots as (
    select
        spikes.spike_id,
        baseline_hours.hour as slot_hour,
        baseline_hours.is_weekend,
        baseline_hours.baseline_level
    from spikes
    inner join baseline_hours
        on spikes.spike_id = baseline_hours.spike_id
    where baseline_hours.is_complete and baseline_hours.has_data
),

candidate_slots as (
    select
        spike_slots.spike_id,
        spike_slots.slot_hour,
        earlier.hour,
        days_back.n as days_back,
        spike_slots.baseline_level / nullif(earlier.baseline_level, 0) as level_ratio,
        row_number() over (
            partition by spike_slots.spike_id, spike_slots.slot_hour order by days_back.n
        ) as recency
    from spike_slots
    cross join generate_series(1, {{ lookback_days }}) as days_back (n)
    inner join baseline_hours as earlier
        on spike_slots.slot_hour - days_back.n * interval '1 day' = earlier.hour
    where
        earlier.is_complete and earlier.has_data and earlier.spike_id is null
        and earlier.is_weekend = spike_slots.is_weekend
),

baseline_slots as (
    select * from candidate_slots
    where recency <= {{ days }} and level_ratio is not null
),

observations as (
    select
        spike_id,
        slot_hour,
        count(*) as baseline_hours
    from baseline_slots
    group by spike_id, slot_hour
),

final as (
    select
        spike_slots.spike_id,
        'spike' as period,
        spike_slots.slot_hour,
        spike_slots.slot_hour as hour,
        0 as days_back,
        1.0::float8 as weight
    from spike_slots
    inner join observations
        on spike_slots.spike_id = observations.spike_id
        and spike_slots.slot_hour = observations.slot_hour

    union all

    select
        baseline_slots.spike_id,
        'baseline' as period,
        baseline_slots.slot_hour,
        baseline_slots.hour,
        baseline_slots.days_back,
        baseline_slots.level_ratio / observations.baseline_hours as weight
    from baseline_slots
    inner join observations
        on baseline_slots.spike_id = observations.spike_id
        and baseline_slots.slot_hour = observations.slot_hour
)

select * from final

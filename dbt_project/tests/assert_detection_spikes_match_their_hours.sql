-- A row is a spike of cost_spikes whose hours in cost_baseline_hourly disagree with it: its span,
-- hour count or costs differ, it holds no run of spike_min_hours consecutive spike hours (nor
-- of spike_min_severe_hours severe ones), its first hour is not above the threshold, or it ends
-- on an hour that is not a spike hour.
{%- set min_hours = var('spike_min_hours') | int %}
{%- set min_severe_hours = var('spike_min_severe_hours') | int %}

with

spikes as (
    select * from {{ ref('cost_spikes') }}
),

baseline_hours as (
    select * from {{ ref('cost_baseline_hourly') }}
),

spans as (
    select
        spike_id,
        min(hour) as first_hour,
        max(hour) as last_hour,
        count(*) as hours,
        sum(total_cost_usd) as total_cost_usd
    from baseline_hours
    where spike_id is not null
    group by spike_id
),

final as (
    select spikes.spike_id
    from spikes
    left join spans
        on spikes.spike_id = spans.spike_id
    where
        spans.spike_id is null
        or spikes.spike_start != spans.first_hour
        or spikes.spike_end != spans.last_hour
        or spikes.hours != spans.hours
        or abs(spikes.total_cost_usd - spans.total_cost_usd) > 1e-9
        or (
            select
                max(baseline_hours.spike_run_hours) < {{ min_hours }}
                and max(baseline_hours.severe_run_hours) < {{ min_severe_hours }}
            from baseline_hours
            where baseline_hours.spike_id = spikes.spike_id
        )
        or (
            select baseline_hours.pct_above_baseline
            from baseline_hours
            where baseline_hours.hour = spikes.spike_start
        ) <= {{ var('spike_threshold_pct') }}
        or not (
            select baseline_hours.is_spike_hour
            from baseline_hours
            where baseline_hours.hour = spikes.spike_end
        )
)

select * from final

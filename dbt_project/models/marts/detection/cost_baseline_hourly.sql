{#-
  Runbook step 1, every hour: its cost against a seasonal, robust baseline, and the spike it
  belongs to.

  Baseline of hour h: the median (percentile_cont 0.5) cost of the same hour of day on each of the
  `spike_baseline_days` previous days, leaving out gap hours (no events), the hour still filling,
  and hours that belonged to an earlier spike, so an incident does not teach the baseline.
  Fewer than `spike_min_baseline_observations` such hours: no baseline, never a spike hour.

  Spike hour: a complete hour with data whose cost is more than `spike_threshold_pct` above its
  baseline and more than the noise floor above it: the larger of `spike_min_excess_usd` and
  `spike_noise_sigmas` standard errors of (cost - baseline): the baseline hours' standard error
  (sqrt of the median of their session-cost variances; an hour's own error would grow with the
  spike it is meant to judge) times sqrt(1 + pi / (2 n)), which adds the error of a median of n
  observations, so a young baseline (3-4 days) asks for more.

  Spike: confirmed by a run of at least `spike_min_hours` consecutive spike hours (a shorter run
  is a blip and opens nothing); `spike_start` is the first of the consecutive hours above
  baseline * (1 + pct) that lead into that run (an incident's first hours may be within the noise
  floor, yet above the 20%; at most 23 hours back); it ends after
  `spike_end_hours` consecutive hours that are not spike hours (a one-hour dip does not split an
  incident in two). A gap hour or the hour still filling is never a spike hour.

  Leaving out spike hours is recursive (whether h is in a spike depends on baselines, which depend
  on whether earlier hours were in a spike), so the model walks the hours in order with a
  recursive CTE. The walk carries `history`: the last 24 * spike_baseline_days hours' costs (and
  `noise_history`, their variances), each null when the hour may not serve as an observation.
  When a run is confirmed as a spike, its hours are nulled in the history, as are dip hours once
  the spike resumes after them, up to `spike_max_excluded_hours` after the spike's start: a spike
  lasting longer is a new level (a launch, or a young baseline that saw a weekend first), and
  its later hours teach the baseline, or the spike would never end. And only spikes found with at
  least `spike_min_history_days_to_exclude` days of data before them are left out: a young
  baseline (3 days that held a weekend) can call a normal Monday a spike, and leaving it out
  would make every following weekday one too. Both are decided at most a few hours after the hour itself, long
  before it first serves as an observation 24 hours later, so the walk is exact, not a heuristic.
  Cost: one index lookup and one 7-value median per hour; the table is rebuilt every run.
-#}

{%- set days = var('spike_baseline_days') | int -%}
{%- set span = 24 * days -%}
{%- set min_hours = var('spike_min_hours') | int -%}
{%- set end_hours = var('spike_end_hours') | int -%}
{%- set max_excluded = var('spike_max_excluded_hours') | int -%}
{%- set min_history_days_to_exclude = var('spike_min_history_days_to_exclude') | int -%}

with recursive

hours as (
    select * from {{ ref('int_detection_hourly') }}
),

walk (
    hour_index,
    hour,
    requests,
    total_cost_usd,
    cost_std_error_usd,
    has_data,
    is_complete,
    baseline_cost_usd,
    baseline_observations,
    baseline_std_error_usd,
    noise_floor_usd,
    is_spike_hour,
    spike_run_hours,
    above_hours,
    in_spike,
    quiet_hours,
    spike_start,
    is_excluding,
    history,
    noise_history
) as (
    select
        0 as hour_index,
        null::timestamptz as hour,
        0::bigint as requests,
        0::numeric as total_cost_usd,
        0::float8 as cost_std_error_usd,
        false as has_data,
        false as is_complete,
        null::float8 as baseline_cost_usd,
        0::bigint as baseline_observations,
        null::float8 as baseline_std_error_usd,
        null::float8 as noise_floor_usd,
        false as is_spike_hour,
        0 as spike_run_hours,
        0 as above_hours,
        false as in_spike,
        0 as quiet_hours,
        null::timestamptz as spike_start,
        false as is_excluding,
        array_fill(null::float8, array[{{ span }}]) as history,
        array_fill(null::float8, array[{{ span }}]) as noise_history

    union all

    select
        next_hour.hour_index,
        next_hour.hour,
        next_hour.requests,
        next_hour.total_cost_usd,
        next_hour.cost_std_error_usd,
        next_hour.has_data,
        next_hour.is_complete,
        usable.baseline_cost_usd,
        observed.baseline_observations,
        observed.baseline_std_error_usd,
        noise.noise_floor_usd,
        comparison.is_spike_hour,
        state.spike_run_hours,
        state.above_hours,
        state.in_spike,
        state.quiet_hours,
        state.spike_start,
        state.is_excluding,
        {{ detection_shift_history(
            'walk.history', 'observation.cost_usd', 'state.null_count', span
        ) }} as history,
        {{ detection_shift_history(
            'walk.noise_history', 'observation.variance_usd2', 'state.null_count', span
        ) }} as noise_history
    from walk
    inner join hours as next_hour
        on walk.hour_index + 1 = next_hour.hour_index
    cross join lateral (
        select
            percentile_cont(0.5) within group (
                order by walk.history[{{ span + 1 }} - 24 * days_back.n]
            ) as baseline_cost_usd,
            count(walk.history[{{ span + 1 }} - 24 * days_back.n]) as baseline_observations,
            sqrt(
                percentile_cont(0.5) within group (
                    order by walk.noise_history[{{ span + 1 }} - 24 * days_back.n]
                )
            ) as baseline_std_error_usd
        from generate_series(1, {{ days }}) as days_back (n)
    ) as observed
    cross join lateral (
        select
            case
                when observed.baseline_observations >= {{ var('spike_min_baseline_observations') }}
                    then observed.baseline_cost_usd
            end as baseline_cost_usd
    ) as usable
    cross join lateral (
        select
            greatest(
                {{ var('spike_min_excess_usd') }}::float8,
                {{ var('spike_noise_sigmas') }}::float8 * observed.baseline_std_error_usd
                * sqrt(1 + pi() / (2 * nullif(observed.baseline_observations, 0)))
            ) as noise_floor_usd
    ) as noise
    cross join lateral (
        select
            coalesce(
                next_hour.is_complete
                and next_hour.has_data
                and next_hour.total_cost_usd::float8
                > usable.baseline_cost_usd * (1 + {{ var('spike_threshold_pct') }}::float8)
                and next_hour.total_cost_usd::float8 - usable.baseline_cost_usd
                > noise.noise_floor_usd,
                false
            ) as is_spike_hour,
            coalesce(
                next_hour.is_complete
                and next_hour.has_data
                and next_hour.total_cost_usd::float8
                > usable.baseline_cost_usd * (1 + {{ var('spike_threshold_pct') }}::float8),
                false
            ) as is_above
    ) as comparison
    cross join lateral (
        select
            case when comparison.is_spike_hour then walk.spike_run_hours + 1 else 0 end
                as spike_run_hours,
            -- consecutive hours above baseline * (1 + pct), noise floor or not: a confirmed
            -- spike starts where they start (its first hours may hide in the noise)
            case
                when comparison.is_above then least(walk.above_hours + 1, 23)
                else 0
            end as above_hours,
            case
                when next_hour.has_data and next_hour.is_complete
                    then next_hour.total_cost_usd::float8
            end as cost_usd,
            case
                when next_hour.has_data and next_hour.is_complete
                    then next_hour.cost_variance_usd2
            end as variance_usd2
    ) as observation
    cross join lateral (
        select
            observation.spike_run_hours,
            -- confirmed now: a run reaches spike_min_hours outside a spike
            (
                comparison.is_spike_hour and not walk.in_spike
                and observation.spike_run_hours >= {{ min_hours }}
            ) as is_confirmed
    ) as run
    cross join lateral (
        select
            run.spike_run_hours,
            observation.above_hours,
            case
                when comparison.is_spike_hour then walk.in_spike or run.is_confirmed
                else walk.in_spike and walk.quiet_hours + 1 < {{ end_hours }}
            end as in_spike,
            case
                when comparison.is_spike_hour or not walk.in_spike then 0
                else walk.quiet_hours + 1
            end as quiet_hours,
            case
                when run.is_confirmed
                    then next_hour.hour - (observation.above_hours - 1) * interval '1 hour'
                when comparison.is_spike_hour and walk.in_spike then walk.spike_start
                when not comparison.is_spike_hour and walk.in_spike
                    and walk.quiet_hours + 1 < {{ end_hours }}
                    then walk.spike_start
            end as spike_start,
            case
                when run.is_confirmed
                    then (next_hour.hour_index - 1) / 24 >= {{ min_history_days_to_exclude }}
                else walk.is_excluding
            end as is_excluding,
            case
                when
                    comparison.is_spike_hour and walk.in_spike and walk.is_excluding
                    and next_hour.hour - walk.spike_start < interval '{{ max_excluded }} hours'
                    then walk.quiet_hours + 1
                when
                    run.is_confirmed
                    and (next_hour.hour_index - 1) / 24 >= {{ min_history_days_to_exclude }}
                    then observation.above_hours
                else 0
            end as null_count
    ) as state
),

walked as (
    select * from walk
    where hour_index > 0
),

spikes as (
    -- a spike spans its first confirmed run's first hour to its last spike hour
    select
        spike_start,
        max(hour) as spike_end
    from walked
    where is_spike_hour and spike_start is not null
    group by spike_start
),

final as (
    select
        walked.hour,
        walked.requests,
        walked.total_cost_usd,
        walked.baseline_cost_usd,
        walked.baseline_observations,
        walked.total_cost_usd - walked.baseline_cost_usd as excess_cost_usd,
        (walked.total_cost_usd - walked.baseline_cost_usd)
        / nullif(walked.baseline_cost_usd, 0) as pct_above_baseline,
        walked.cost_std_error_usd,
        walked.baseline_std_error_usd,
        walked.noise_floor_usd,
        walked.baseline_cost_usd + greatest(
            walked.baseline_cost_usd * {{ var('spike_threshold_pct') }}::float8,
            walked.noise_floor_usd
        ) as spike_threshold_usd,
        walked.is_spike_hour,
        walked.spike_run_hours,
        case when spikes.spike_start is not null then {{ detection_spike_id('spikes.spike_start') }} end
            as spike_id,
        walked.is_complete,
        walked.has_data
    from walked
    left join spikes
        on walked.hour between spikes.spike_start and spikes.spike_end
)

select * from final

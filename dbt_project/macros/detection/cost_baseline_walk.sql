{#- The body of cost_baseline_hourly (its model file explains the walk). PostgreSQL walks with
    lateral subqueries reading the previous row; Spark cannot (../shared/SPARK.md): its variant,
    spark__cost_baseline_walk in spark_cost_baseline_walk.sql, carries every hour in the anchor. -#}
{% macro cost_baseline_walk() -%}
    {{ return(adapter.dispatch('cost_baseline_walk', 'costwatch')()) }}
{%- endmacro %}

{% macro default__cost_baseline_walk() -%}

{%- set days = var('spike_baseline_days') | int -%}
{%- set lookback_days = var('spike_baseline_lookback_days') | int -%}
{%- set span = 24 * lookback_days -%}
{%- set level_span = var('spike_level_lookback_hours') | int -%}
{%- set level_hours = var('spike_level_hours') | int -%}
{%- set level_min_hours = var('spike_level_min_hours') | int -%}
{%- set level_guard_hours = var('spike_level_guard_hours') | int -%}
{%- set weekend = 'array[' ~ (var('spike_weekend_isodow') | join(', ')) ~ ']::integer[]' -%}
{%- set pct = var('spike_threshold_pct') ~ '::float8' -%}
{%- set min_hours = var('spike_min_hours') | int -%}
{%- set min_severe_hours = var('spike_min_severe_hours') | int -%}
{%- set end_hours = var('spike_end_hours') | int -%}
{%- set max_excluded = var('spike_max_excluded_hours') | int -%}
{%- set min_history_days_to_exclude = var('spike_min_history_days_to_exclude') | int -%}

with recursive

hours as (
    select
        *,
        extract(isodow from hour at time zone 'UTC')::integer as day_of_week
    from {{ ref('int_detection_hourly') }}
),

walk (
    hour_index,
    hour,
    requests,
    total_cost_usd,
    cost_std_error_usd,
    has_data,
    is_complete,
    is_weekend,
    baseline_profile_usd,
    baseline_observations,
    baseline_level,
    level_observations,
    baseline_cost_usd,
    baseline_std_error_usd,
    noise_floor_usd,
    is_spike_hour,
    is_severe_spike_hour,
    spike_run_hours,
    severe_run_hours,
    lead_hours,
    in_spike,
    quiet_hours,
    dip_hours,
    spike_start,
    is_confirming,
    is_excluding,
    history,
    noise_history,
    ratio_history
) as (
    select
        0 as hour_index,
        null::timestamptz as hour,
        0::bigint as requests,
        0::numeric as total_cost_usd,
        0::float8 as cost_std_error_usd,
        false as has_data,
        false as is_complete,
        false as is_weekend,
        null::float8 as baseline_profile_usd,
        0::bigint as baseline_observations,
        1.0::float8 as baseline_level,
        0::bigint as level_observations,
        null::float8 as baseline_cost_usd,
        null::float8 as baseline_std_error_usd,
        null::float8 as noise_floor_usd,
        false as is_spike_hour,
        false as is_severe_spike_hour,
        0 as spike_run_hours,
        0 as severe_run_hours,
        0 as lead_hours,
        false as in_spike,
        0 as quiet_hours,
        0 as dip_hours,
        null::timestamptz as spike_start,
        false as is_confirming,
        false as is_excluding,
        array_fill(null::float8, array[{{ span }}]) as history,
        array_fill(null::float8, array[{{ span }}]) as noise_history,
        array_fill(null::float8, array[{{ level_span }}]) as ratio_history

    union all

    select
        next_hour.hour_index,
        next_hour.hour,
        next_hour.requests,
        next_hour.total_cost_usd,
        next_hour.cost_std_error_usd,
        next_hour.has_data,
        next_hour.is_complete,
        day_type.is_weekend,
        profile.baseline_profile_usd,
        observed.baseline_observations,
        level.baseline_level,
        level.level_observations,
        usable.baseline_cost_usd,
        usable.baseline_std_error_usd,
        noise.noise_floor_usd,
        comparison.is_spike_hour,
        comparison.is_severe,
        run.spike_run_hours,
        run.severe_run_hours,
        state.lead_hours,
        state.in_spike,
        state.quiet_hours,
        state.dip_hours,
        state.spike_start,
        run.is_confirmed,
        state.is_excluding,
        {{ detection_shift_history(
            'walk.history', 'observation.normalized_cost', 'state.null_count', span
        ) }} as history,
        {{ detection_shift_history(
            'walk.noise_history', 'observation.normalized_variance', 'state.null_count', span
        ) }} as noise_history,
        {{ detection_shift_history(
            'walk.ratio_history', 'observation.ratio', 'state.null_count', level_span
        ) }} as ratio_history
    from walk
    inner join hours as next_hour
        on walk.hour_index + 1 = next_hour.hour_index
    -- Each step of the walk computes its hour from the row before it: `cross join lateral`
    -- subqueries read that row (`walk.*`), which no CTE can, hence no structure.subquery here.
    -- noqa: disable=ST05
    cross join
        lateral (
            select next_hour.day_of_week = any({{ weekend }}) as is_weekend
        ) as day_type
    cross join
        lateral (
            -- the profile's observations: the same hour of day on the last `days` earlier days of
            -- the same day type that hold one (d days back is ISO weekday ((dow - 1 - d) mod 7) + 1)
            select
                percentile_cont(0.5) within group (order by same_hours.normalized_cost)
                    as profile_usd,
                count(*) as baseline_observations,
                percentile_cont(0.5) within group (order by same_hours.normalized_variance)
                    as normalized_variance_usd2
            from (
                select
                    walk.history[{{ span + 1 }} - 24 * days_back.n] as normalized_cost,
                    walk.noise_history[{{ span + 1 }} - 24 * days_back.n] as normalized_variance
                from generate_series(1, {{ lookback_days }}) as days_back (n)
                where
                    (((next_hour.day_of_week - 1 - days_back.n) % 7 + 7) % 7 + 1 = any({{ weekend }}))
                    = day_type.is_weekend
                    and walk.history[{{ span + 1 }} - 24 * days_back.n] is not null
                order by days_back.n
                limit {{ days }}
            ) as same_hours
        ) as observed
    cross join
        lateral (
            select
                case
                    when observed.baseline_observations >= {{ var('spike_min_baseline_observations') }}
                        then observed.profile_usd
                end as baseline_profile_usd
        ) as profile
    cross join
        lateral (
            -- the level: median cost / profile of the last usable hours, stopping at the current
            -- run of hours above the threshold while no spike is confirmed
            select
                percentile_cont(0.5) within group (order by recent.ratio) as level_estimate,
                count(*) as level_samples
            from (
                select ratios.ratio
                from
                    unnest(
                        walk.ratio_history[
                            1:{{ level_span }} - case
                                when walk.in_spike then 0
                                else least(walk.lead_hours, {{ level_guard_hours }})
                            end
                        ]
                    ) with ordinality as ratios (ratio, position)
                where ratios.ratio is not null
                order by ratios.position desc
                limit {{ level_hours }}
            ) as recent
        ) as level_window
    cross join
        lateral (
            select
                case
                    when
                        level_window.level_samples >= {{ level_min_hours }}
                        and level_window.level_estimate > 0
                        then level_window.level_estimate
                    else walk.baseline_level
                end as baseline_level,
                case
                    when
                        level_window.level_samples >= {{ level_min_hours }}
                        and level_window.level_estimate > 0
                        then level_window.level_samples
                    else 0
                end as level_observations
        ) as level
    cross join
        lateral (
            select
                profile.baseline_profile_usd * level.baseline_level as baseline_cost_usd,
                sqrt(observed.normalized_variance_usd2) * level.baseline_level
                    as baseline_std_error_usd
        ) as usable
    cross join
        lateral (
            select
                greatest(
                    {{ var('spike_min_excess_usd') }}::float8,
                    {{ var('spike_noise_sigmas') }}::float8 * usable.baseline_std_error_usd
                    * sqrt(
                        1 + pi() / (2 * nullif(observed.baseline_observations, 0))
                        + coalesce(pi() / (2 * nullif(level.level_observations, 0)), 0)
                    )
                ) as noise_floor_usd
        ) as noise
    cross join
        lateral (
            select
                next_hour.is_complete and next_hour.has_data as is_observation,
                next_hour.total_cost_usd::float8 as cost_usd,
                next_hour.total_cost_usd::float8 - usable.baseline_cost_usd as excess_usd
        ) as hour_cost
    cross join
        lateral (
            select
                coalesce(
                    hour_cost.is_observation
                    and hour_cost.cost_usd > usable.baseline_cost_usd * (1 + {{ pct }}),
                    false
                ) as is_above
        ) as above
    cross join
        lateral (
            select
                above.is_above and hour_cost.excess_usd > noise.noise_floor_usd as is_spike_hour,
                above.is_above
                and hour_cost.excess_usd
                > {{ var('spike_lead_noise_share') }}::float8 * noise.noise_floor_usd as is_lead,
                above.is_above
                and hour_cost.excess_usd > noise.noise_floor_usd
                and hour_cost.cost_usd
                >= usable.baseline_cost_usd * (1 + {{ var('spike_severe_pct') }}::float8)
                and hour_cost.excess_usd
                > {{ var('spike_severe_noise_factor') }}::float8 * noise.noise_floor_usd as is_severe
        ) as comparison
    cross join
        lateral (
            select
                case
                    when hour_cost.is_observation then hour_cost.cost_usd / level.baseline_level
                end as normalized_cost,
                case
                    when hour_cost.is_observation
                        then next_hour.cost_variance_usd2 / (level.baseline_level ^ 2)
                end as normalized_variance,
                case
                    when hour_cost.is_observation
                        then hour_cost.cost_usd / nullif(profile.baseline_profile_usd, 0)
                end as ratio
        ) as observation
    cross join
        lateral (
            select
                case when comparison.is_spike_hour then walk.spike_run_hours + 1 else 0 end
                    as spike_run_hours,
                case when comparison.is_severe then walk.severe_run_hours + 1 else 0 end
                    as severe_run_hours,
                -- consecutive leading hours (above the threshold and part of the noise floor): a
                -- confirmed spike starts where they start (its first hours may hide in the noise)
                case when comparison.is_lead then least(walk.lead_hours + 1, 23) else 0 end
                    as lead_hours
        ) as counts
    cross join
        lateral (
            select
                counts.spike_run_hours,
                counts.severe_run_hours,
                -- confirmed now: a run of spike_min_hours, or of spike_min_severe_hours severe
                -- hours, outside a spike
                (
                    comparison.is_spike_hour and not walk.in_spike
                    and (
                        counts.spike_run_hours >= {{ min_hours }}
                        or counts.severe_run_hours >= {{ min_severe_hours }}
                    )
                ) as is_confirmed,
                (next_hour.hour_index - 1) / 24 >= {{ min_history_days_to_exclude }} as may_exclude
        ) as run
    cross join lateral (
        select
            counts.lead_hours,
            case
                when comparison.is_spike_hour then walk.in_spike or run.is_confirmed
                when above.is_above then walk.in_spike
                else walk.in_spike and walk.quiet_hours + 1 < {{ end_hours }}
            end as in_spike,
            case
                when comparison.is_spike_hour or above.is_above or not walk.in_spike then 0
                when walk.quiet_hours + 1 < {{ end_hours }} then walk.quiet_hours + 1
                else 0
            end as quiet_hours,
            case
                when comparison.is_spike_hour or not walk.in_spike then 0
                when above.is_above or walk.quiet_hours + 1 < {{ end_hours }}
                    then walk.dip_hours + 1
                else 0
            end as dip_hours,
            case
                when run.is_confirmed
                    then next_hour.hour - (counts.lead_hours - 1) * interval '1 hour'
                when
                    walk.in_spike
                    and (
                        comparison.is_spike_hour or above.is_above
                        or walk.quiet_hours + 1 < {{ end_hours }}
                    )
                    then walk.spike_start
            end as spike_start,
            case
                when run.is_confirmed then run.may_exclude
                else walk.is_excluding
            end as is_excluding,
            case
                when
                    comparison.is_spike_hour and walk.in_spike and walk.is_excluding
                    and next_hour.hour - walk.spike_start < interval '{{ max_excluded }} hours'
                    then walk.dip_hours + 1
                when run.is_confirmed and run.may_exclude then counts.lead_hours
                else 0
            end as null_count
    ) as state
    -- noqa: enable=ST05
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
            walked.baseline_cost_usd * {{ pct }},
            walked.noise_floor_usd
        ) as spike_threshold_usd,
        walked.is_spike_hour,
        walked.spike_run_hours,
        case when spikes.spike_start is not null then {{ detection_spike_id('spikes.spike_start') }} end
            as spike_id,
        walked.is_complete,
        walked.has_data,
        walked.is_weekend,
        walked.baseline_profile_usd,
        walked.baseline_level,
        walked.level_observations,
        walked.is_severe_spike_hour,
        walked.severe_run_hours,
        walked.is_confirming as is_spike_confirmed_hour,
        walked.is_spike_hour and spikes.spike_start is null as is_suspected_spike
    from walked
    left join spikes
        on walked.hour between spikes.spike_start and spikes.spike_end
)

select * from final
{%- endmacro %}

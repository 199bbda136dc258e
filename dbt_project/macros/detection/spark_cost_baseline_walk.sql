{#- A sorted array's median as PostgreSQL's percentile_cont(0.5) computes it (low + (high - low)
    * 0.5), null when empty; `values` holds no nulls. -#}
{% macro spark_sorted_median(values) -%}
    aggregate(
        array(array_sort({{ values }})),
        cast(null as double),
        (unused, sorted) -> case
            when size(sorted) > 0 then
                element_at(sorted, cast(div(size(sorted) - 1, 2) as int) + 1)
                + (
                    element_at(sorted, cast(div(size(sorted), 2) as int) + 1)
                    - element_at(sorted, cast(div(size(sorted) - 1, 2) as int) + 1)
                ) * 0.5
        end
    )
{%- endmacro %}

{#- detection_shift_history on Spark (1-based `slice`, `array_repeat`). -#}
{% macro spark_shift_history(history, value, null_count, span) -%}
    case
        when {{ null_count }} > 0
            then concat(
                slice({{ history }}, 2, {{ span }} - {{ null_count }}),
                array_repeat(cast(null as double), {{ null_count }})
            )
        else concat(slice({{ history }}, 2, {{ span }} - 1), array({{ value }}))
    end
{%- endmacro %}

{#- The walk of cost_baseline_hourly on Spark, the same decisions in the same order. A join inside
    the recursive term costs 0.25-0.6 s per hour on Spark, and its lateral subqueries do not
    compile: the anchor carries every hour of int_detection_hourly as one array (`data`), each
    step reads its hour with element_at, and the medians are higher-order functions over the
    histories. Each derived table (step_1 .. step_9) adds the columns the next one reads. -#}
{% macro spark__cost_baseline_walk() -%}

{%- set days = var('spike_baseline_days') | int -%}
{%- set lookback_days = var('spike_baseline_lookback_days') | int -%}
{%- set span = 24 * lookback_days -%}
{%- set level_span = var('spike_level_lookback_hours') | int -%}
{%- set level_hours = var('spike_level_hours') | int -%}
{%- set level_min_hours = var('spike_level_min_hours') | int -%}
{%- set level_guard_hours = var('spike_level_guard_hours') | int -%}
{%- set weekend = 'cast(array(' ~ (var('spike_weekend_isodow') | join(', ')) ~ ') as array<int>)' -%}
{%- set pct = 'cast(' ~ var('spike_threshold_pct') ~ ' as double)' -%}
{%- set min_hours = var('spike_min_hours') | int -%}
{%- set min_severe_hours = var('spike_min_severe_hours') | int -%}
{%- set end_hours = var('spike_end_hours') | int -%}
{%- set max_excluded = var('spike_max_excluded_hours') | int -%}
{%- set min_history_days_to_exclude = var('spike_min_history_days_to_exclude') | int -%}

with recursive

hours as (
    select
        hour_index,
        hour,
        requests,
        cast(total_cost_usd as double) as total_cost_usd,
        cast(cost_std_error_usd as double) as cost_std_error_usd,
        cast(cost_variance_usd2 as double) as cost_variance_usd2,
        has_data,
        is_complete,
        cast(extract(dayofweek_iso from hour) as int) as day_of_week
    from {{ ref('int_detection_hourly') }}
),

walk as (
    select
        0 as hour_index,
        cast(null as timestamp) as hour,
        cast(0 as bigint) as requests,
        cast(0 as double) as total_cost_usd,
        cast(0 as double) as cost_std_error_usd,
        false as has_data,
        false as is_complete,
        false as is_weekend,
        cast(null as double) as baseline_profile_usd,
        cast(0 as bigint) as baseline_observations,
        cast(1.0 as double) as baseline_level,
        cast(0 as bigint) as level_observations,
        cast(null as double) as baseline_cost_usd,
        cast(null as double) as baseline_std_error_usd,
        cast(null as double) as noise_floor_usd,
        false as is_spike_hour,
        false as is_severe_spike_hour,
        0 as spike_run_hours,
        0 as severe_run_hours,
        0 as lead_hours,
        false as in_spike,
        0 as quiet_hours,
        0 as dip_hours,
        cast(null as timestamp) as spike_start,
        false as is_confirming,
        false as is_excluding,
        array_repeat(cast(null as double), {{ span }}) as history,
        array_repeat(cast(null as double), {{ span }}) as noise_history,
        array_repeat(cast(null as double), {{ level_span }}) as ratio_history,
        every_hour.data
    from (
        select
            array_sort(collect_list(struct(
                hour_index, hour, requests, total_cost_usd, cost_std_error_usd,
                cost_variance_usd2, has_data, is_complete, day_of_week
            ))) as data
        from hours
    ) as every_hour

    union all

    select
        step_9.nx.hour_index,
        step_9.nx.hour,
        step_9.nx.requests,
        step_9.nx.total_cost_usd,
        step_9.nx.cost_std_error_usd,
        step_9.nx.has_data,
        step_9.nx.is_complete,
        step_9.x_is_weekend,
        step_9.x_baseline_profile_usd,
        step_9.x_baseline_observations,
        step_9.x_baseline_level,
        step_9.x_level_observations,
        step_9.x_baseline_cost_usd,
        step_9.x_baseline_std_error_usd,
        step_9.x_noise_floor_usd,
        step_9.x_is_spike_hour,
        step_9.x_is_severe,
        step_9.x_spike_run_hours,
        step_9.x_severe_run_hours,
        step_9.x_lead_hours,
        step_9.x_in_spike,
        step_9.x_quiet_hours,
        step_9.x_dip_hours,
        step_9.x_spike_start,
        step_9.x_is_confirmed,
        step_9.x_is_excluding,
        {{ spark_shift_history(
            'step_9.history', 'step_9.x_normalized_cost', 'step_9.x_null_count', span
        ) }} as history,
        {{ spark_shift_history(
            'step_9.noise_history', 'step_9.x_normalized_variance', 'step_9.x_null_count', span
        ) }} as noise_history,
        {{ spark_shift_history(
            'step_9.ratio_history', 'step_9.x_ratio', 'step_9.x_null_count', level_span
        ) }} as ratio_history,
        step_9.data
    from (
        select
            step_8.*,
            case
                when step_8.x_is_spike_hour then step_8.in_spike or step_8.x_is_confirmed
                when step_8.x_is_above then step_8.in_spike
                else step_8.in_spike and step_8.quiet_hours + 1 < {{ end_hours }}
            end as x_in_spike,
            case
                when step_8.x_is_spike_hour or step_8.x_is_above or not step_8.in_spike then 0
                when step_8.quiet_hours + 1 < {{ end_hours }} then step_8.quiet_hours + 1
                else 0
            end as x_quiet_hours,
            case
                when step_8.x_is_spike_hour or not step_8.in_spike then 0
                when step_8.x_is_above or step_8.quiet_hours + 1 < {{ end_hours }}
                    then step_8.dip_hours + 1
                else 0
            end as x_dip_hours,
            case
                when step_8.x_is_confirmed
                    then timestampadd(hour, 1 - step_8.x_lead_hours, step_8.nx.hour)
                when
                    step_8.in_spike
                    and (
                        step_8.x_is_spike_hour or step_8.x_is_above
                        or step_8.quiet_hours + 1 < {{ end_hours }}
                    )
                    then step_8.spike_start
            end as x_spike_start,
            case
                when step_8.x_is_confirmed then step_8.x_may_exclude
                else step_8.is_excluding
            end as x_is_excluding,
            case
                when
                    step_8.x_is_spike_hour and step_8.in_spike and step_8.is_excluding
                    and step_8.nx.hour < timestampadd(hour, {{ max_excluded }}, step_8.spike_start)
                    then step_8.dip_hours + 1
                when step_8.x_is_confirmed and step_8.x_may_exclude then step_8.x_lead_hours
                else 0
            end as x_null_count
        from (
            select
                step_7.*,
                (
                    step_7.x_is_spike_hour and not step_7.in_spike
                    and (
                        step_7.x_spike_run_hours >= {{ min_hours }}
                        or step_7.x_severe_run_hours >= {{ min_severe_hours }}
                    )
                ) as x_is_confirmed,
                div(step_7.nx.hour_index - 1, 24) >= {{ min_history_days_to_exclude }}
                    as x_may_exclude
            from (
                select
                    step_6.*,
                    case when step_6.x_is_spike_hour then step_6.spike_run_hours + 1 else 0 end
                        as x_spike_run_hours,
                    case when step_6.x_is_severe then step_6.severe_run_hours + 1 else 0 end
                        as x_severe_run_hours,
                    case when step_6.x_is_lead then least(step_6.lead_hours + 1, 23) else 0 end
                        as x_lead_hours,
                    case
                        when step_6.x_is_observation
                            then step_6.x_cost_usd / step_6.x_baseline_level
                    end as x_normalized_cost,
                    case
                        when step_6.x_is_observation
                            then step_6.nx.cost_variance_usd2 / pow(step_6.x_baseline_level, 2)
                    end as x_normalized_variance,
                    case
                        when step_6.x_is_observation
                            then step_6.x_cost_usd / nullif(step_6.x_baseline_profile_usd, 0)
                    end as x_ratio
                from (
                    select
                        step_5.*,
                        step_5.x_is_above and step_5.x_excess_usd > step_5.x_noise_floor_usd
                            as x_is_spike_hour,
                        step_5.x_is_above
                        and step_5.x_excess_usd
                        > cast({{ var('spike_lead_noise_share') }} as double)
                        * step_5.x_noise_floor_usd as x_is_lead,
                        step_5.x_is_above
                        and step_5.x_excess_usd > step_5.x_noise_floor_usd
                        and step_5.x_cost_usd
                        >= step_5.x_baseline_cost_usd
                        * (1 + cast({{ var('spike_severe_pct') }} as double))
                        and step_5.x_excess_usd
                        > cast({{ var('spike_severe_noise_factor') }} as double)
                        * step_5.x_noise_floor_usd as x_is_severe
                    from (
                        select
                            step_4.*,
                            coalesce(
                                step_4.x_is_observation
                                and step_4.x_cost_usd > step_4.x_baseline_cost_usd * (1 + {{ pct }}),
                                false
                            ) as x_is_above
                        from (
                            select
                                step_3.*,
                                step_3.nx.is_complete and step_3.nx.has_data as x_is_observation,
                                step_3.nx.total_cost_usd as x_cost_usd,
                                step_3.nx.total_cost_usd - step_3.x_baseline_cost_usd as x_excess_usd,
                                greatest(
                                    cast({{ var('spike_min_excess_usd') }} as double),
                                    cast({{ var('spike_noise_sigmas') }} as double)
                                    * step_3.x_baseline_std_error_usd
                                    * sqrt(
                                        1 + pi() / (2 * nullif(step_3.x_baseline_observations, 0))
                                        + coalesce(
                                            pi() / (2 * nullif(step_3.x_level_observations, 0)), 0
                                        )
                                    )
                                ) as x_noise_floor_usd
                            from (
                                select
                                    step_2.*,
                                    step_2.x_baseline_profile_usd * step_2.x_baseline_level
                                        as x_baseline_cost_usd,
                                    sqrt(step_2.x_normalized_variance_usd2) * step_2.x_baseline_level
                                        as x_baseline_std_error_usd
                                from (
                                    select
                                        step_1.*,
                                        case
                                            when
                                                step_1.x_baseline_observations
                                                >= {{ var('spike_min_baseline_observations') }}
                                                then step_1.x_profile_usd
                                        end as x_baseline_profile_usd,
                                        case
                                            when
                                                step_1.x_level_samples >= {{ level_min_hours }}
                                                and step_1.x_level_estimate > 0
                                                then step_1.x_level_estimate
                                            else step_1.baseline_level
                                        end as x_baseline_level,
                                        case
                                            when
                                                step_1.x_level_samples >= {{ level_min_hours }}
                                                and step_1.x_level_estimate > 0
                                                then step_1.x_level_samples
                                            else cast(0 as bigint)
                                        end as x_level_observations
                                    from (
                                        select
                                            step_0.*,
                                            {{ spark_sorted_median(
                                                'transform(step_0.x_same_hours, o -> o.cost)'
                                            ) }} as x_profile_usd,
                                            cast(size(step_0.x_same_hours) as bigint)
                                                as x_baseline_observations,
                                            {{ spark_sorted_median(
                                                'filter(transform(step_0.x_same_hours, o -> o.variance), v -> v is not null)'
                                            ) }} as x_normalized_variance_usd2,
                                            {{ spark_sorted_median('step_0.x_recent_ratios') }}
                                                as x_level_estimate,
                                            cast(size(step_0.x_recent_ratios) as bigint)
                                                as x_level_samples
                                        from (
                                            select
                                                current_hour.*,
                                                -- the profile's observations: the same hour of
                                                -- day on the last `days` earlier days of the same
                                                -- day type that hold one
                                                slice(
                                                    filter(
                                                        transform(
                                                            sequence(1, {{ lookback_days }}),
                                                            n -> named_struct(
                                                                'cost', element_at(
                                                                    current_hour.history,
                                                                    {{ span + 1 }} - 24 * n
                                                                ),
                                                                'variance', element_at(
                                                                    current_hour.noise_history,
                                                                    {{ span + 1 }} - 24 * n
                                                                ),
                                                                'same_type', array_contains(
                                                                    {{ weekend }},
                                                                    ((current_hour.nx.day_of_week - 1 - n) % 7 + 7) % 7 + 1
                                                                ) = current_hour.x_is_weekend
                                                            )
                                                        ),
                                                        o -> o.same_type and o.cost is not null
                                                    ),
                                                    1,
                                                    {{ days }}
                                                ) as x_same_hours,
                                                -- the level's: the newest usable hours, stopping
                                                -- at the current run of hours above the threshold
                                                -- while no spike is confirmed
                                                slice(
                                                    reverse(filter(
                                                        slice(
                                                            current_hour.ratio_history,
                                                            1,
                                                            {{ level_span }} - case
                                                                when current_hour.in_spike then 0
                                                                else least(
                                                                    current_hour.lead_hours,
                                                                    {{ level_guard_hours }}
                                                                )
                                                            end
                                                        ),
                                                        r -> r is not null
                                                    )),
                                                    1,
                                                    {{ level_hours }}
                                                ) as x_recent_ratios
                                            from (
                                                select
                                                    next_hour.*,
                                                    array_contains(
                                                        {{ weekend }}, next_hour.nx.day_of_week
                                                    ) as x_is_weekend
                                                from (
                                                    select
                                                        walk.*,
                                                        element_at(walk.data, walk.hour_index + 1)
                                                            as nx
                                                    from walk
                                                    where walk.hour_index < size(walk.data)
                                                ) as next_hour
                                            ) as current_hour
                                        ) as step_0
                                    ) as step_1
                                ) as step_2
                            ) as step_3
                        ) as step_4
                    ) as step_5
                ) as step_6
            ) as step_7
        ) as step_8
    ) as step_9
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

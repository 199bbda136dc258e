{#-
  Per hour and feature: its cost against its own baseline, the median cost of that feature in the
  same hour of day on each of the `spike_baseline_days` previous days (24-hour steps; an hour with
  data but no use of the feature counts as $0). What the cost cap weighs (the feature carrying
  the excess) and what the incident follow-up asks ("is the root cause's feature still
  elevated?"), with the spike thresholds of the detection vars.

  Incremental like feature_cost_hourly: an hour's baseline reads only earlier hours, so the hours
  from the cutoff on (the ones late events can change, and every hour after them) are all that
  a pass rebuilds.
-#}
{{
    config(
        materialized='incremental',
        unique_key='hour',
    )
}}

{%- set days = var('spike_baseline_days') | int -%}
{%- set cutoff = incremental_cutoff('hour') %}

with

feature_hours as (
    select * from {{ ref('feature_cost_hourly') }}
),

current_feature_hours as (
    select * from feature_hours
    where {{ since_cutoff('hour', cutoff) }}
),

data_hours as (
    select hour from {{ ref('cost_hourly') }}
),

previous as (
    select
        current_hours.hour,
        current_hours.feature,
        coalesce(earlier.total_cost_usd, 0) as cost_usd
    from current_feature_hours as current_hours
    cross join {{ integer_series(1, days, 'steps', 'days_back') }}
    inner join data_hours
        on data_hours.hour = current_hours.hour - steps.days_back * interval '24 hours'
    left join feature_hours as earlier
        on
        data_hours.hour = earlier.hour
        and current_hours.feature = earlier.feature
),

baselines as (
    select
        hour,
        feature,
        count(*) as baseline_observations,
        percentile_cont(0.5) within group (order by cost_usd) as baseline_cost_usd
    from previous
    group by hour, feature
),

final as (
    select
        feature_hours.hour,
        feature_hours.feature,
        feature_hours.requests,
        feature_hours.total_cost_usd,
        baselines.baseline_cost_usd,
        coalesce(baselines.baseline_observations, 0) as baseline_observations,
        feature_hours.total_cost_usd - coalesce(baselines.baseline_cost_usd, 0)
            as excess_cost_usd,
        coalesce(
            baselines.baseline_observations >= {{ var('spike_min_baseline_observations') }}
            and feature_hours.total_cost_usd
            > baselines.baseline_cost_usd * (1 + {{ var('spike_threshold_pct') }})
            and feature_hours.total_cost_usd - baselines.baseline_cost_usd
            > {{ var('spike_min_excess_usd') }},
            false
        ) as is_elevated
    from current_feature_hours as feature_hours
    left join baselines
        on
        feature_hours.hour = baselines.hour
        and feature_hours.feature = baselines.feature
)

select * from final

{#-
  Every hour from the first to the newest hour of data, gaps included (a gap hour has no events:
  `has_data` false), numbered for the baseline's hour-by-hour recursion, with its completeness:
  the hour holding the data's newest event is still filling and never compared to a full hour.
-#}
{{
    config(
        indexes=[{'columns': ['hour_index'], 'unique': True}],
    )
}}

with

hourly_costs as (
    select * from {{ ref('int_detection_hourly_costs') }}
),

bounds as (
    select
        min(hour) as first_hour,
        max(hour) as newest_hour
    from hourly_costs
),

spine as (
    {{ hour_series('bounds', 'first_hour', 'newest_hour', 'hours', 'hour') }}
),

final as (
    select
        row_number() over (order by spine.hour)::integer as hour_index,
        spine.hour,
        coalesce(hourly_costs.requests, 0)::bigint as requests,
        {{ as_numeric('coalesce(hourly_costs.total_cost_usd, 0)') }} as total_cost_usd,
        {{ as_double('sqrt(coalesce(hourly_costs.session_cost_sq_usd, 0))') }} as cost_std_error_usd,
        {{ as_double('coalesce(hourly_costs.session_cost_sq_usd, 0)') }} as cost_variance_usd2,
        coalesce(hourly_costs.requests, 0) > 0 as has_data,
        spine.hour < bounds.newest_hour as is_complete
    from spine
    cross join bounds
    left join hourly_costs
        on spine.hour = hourly_costs.hour
)

select * from final

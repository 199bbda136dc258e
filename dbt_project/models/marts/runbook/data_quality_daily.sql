-- Nothing is lost silently: per source and UTC day, raw rows = clean + rejected + duplicates.
-- Rows whose created_at is null have no day: they are counted in the row whose day is null.
with

hourly as (
    select * from {{ ref('int_data_quality_hourly') }}
),

final as (
    select
        case
            when load_hour != {{ minus_infinity() }} then {{ day_bucket('load_hour') }}
        end as day,
        source,
        sum(raw_rows)::bigint as raw_rows,
        sum(clean_rows)::bigint as clean_rows,
        sum(rejected_rows)::bigint as rejected_rows,
        sum(duplicate_rows)::bigint as duplicate_rows,
        coalesce(sum(unpriced_rows), 0)::bigint as unpriced_rows,
        coalesce(sum(priced_rows), 0)::bigint as priced_rows
    from hourly
    group by 1, 2
)

select * from final

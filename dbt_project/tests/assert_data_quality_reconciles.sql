-- A returned row is a source and day where raw rows != clean + rejected + duplicate rows:
-- a row was lost or counted twice by the cleaning.
with

quality as (
    select * from {{ ref('data_quality_daily') }}
),

final as (
    select *
    from quality
    where raw_rows != clean_rows + rejected_rows + duplicate_rows
)

select * from final

{#- Fails for every combination of the key columns that occurs more than once, or that has a
    null in a key column not listed in `nullable_columns` (nulls group together). -#}
{% test unique_combination(model, combination_of_columns, nullable_columns=[]) %}

with

keyed as (
    select
        {{ combination_of_columns | join(', ') }},
        count(*) as occurrences
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
),

final as (
    select *
    from keyed
    where
        occurrences > 1
        {%- for column in combination_of_columns if column not in nullable_columns %}
        or {{ column }} is null
        {%- endfor %}
)

select * from final

{% endtest %}

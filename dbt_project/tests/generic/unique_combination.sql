{#- Fails for every combination of the key columns that occurs more than once or has a null. -#}
{% test unique_combination(model, combination_of_columns) %}

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
        {%- for column in combination_of_columns %}
        or {{ column }} is null
        {%- endfor %}
)

select * from final

{% endtest %}

{#- `unique`, for an event-level table: fails for every value of `column_name` that a row of the
    test window (macros/testing/test_window_start.sql) shares with any other row, in the window or before it
    (the index on the column finds the older copies). On a full refresh: every row. -#}
{% test unique_in_window(model, column_name, time_column) %}

{%- set since = test_window_start(model, time_column) %}

with

recent as (
    select {{ column_name }} as value
    from {{ model }}
    {%- if since %}
        where {{ time_column }} >= {{ since }}
    {%- endif %}
),

older as (
    {%- if since %}
        select older.{{ column_name }} as value
        from {{ model }} as older
        where
            older.{{ time_column }} < {{ since }}
            and older.{{ column_name }} in (select recent.value from recent)
    {%- else %}
        select null as value
        where false
    {%- endif %}
),

final as (
    select
        value,
        count(*) as occurrences
    from (
        select value from recent
        union all
        select value from older
    ) as candidates
    where value is not null
    group by value
    having count(*) > 1
)

select * from final

{% endtest %}

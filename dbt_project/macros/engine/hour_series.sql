{#- A select of every hour from `low` to `high` (columns of the one-row `relation`) as `column`. -#}
{% macro hour_series(relation, low, high, alias, column) -%}
    {{ return(adapter.dispatch('hour_series', 'costwatch')(relation, low, high, alias, column)) }}
{%- endmacro %}

{% macro default__hour_series(relation, low, high, alias, column) -%}
    select {{ alias }}.{{ column }}
    from {{ relation }}
    cross join lateral generate_series(
        {{ relation }}.{{ low }}, {{ relation }}.{{ high }}, interval '1 hour'
    ) as {{ alias }} ({{ column }})
{%- endmacro %}

{% macro spark__hour_series(relation, low, high, alias, column) -%}
    select explode(sequence({{ low }}, {{ high }}, interval 1 hour)) as {{ column }}
    from {{ relation }}
{%- endmacro %}

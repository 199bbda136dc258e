{#- A from-item of the integers `low`..`high` as `alias (column)`. -#}
{% macro integer_series(low, high, alias, column) -%}
    {{ return(adapter.dispatch('integer_series', 'costwatch')(low, high, alias, column)) }}
{%- endmacro %}

{% macro default__integer_series(low, high, alias, column) -%}
    generate_series({{ low }}, {{ high }}) as {{ alias }} ({{ column }})
{%- endmacro %}

{% macro spark__integer_series(low, high, alias, column) -%}
    range({{ low }}, {{ high }} + 1) as {{ alias }} ({{ column }})
{%- endmacro %}

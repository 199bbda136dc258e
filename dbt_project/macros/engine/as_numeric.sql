{#- An exact number in a ratio (PostgreSQL's unbounded numeric). Spark's `::numeric` is
    decimal(10,0), and its decimal division rounds to 6 places: a double keeps the ratio to
    1e-15 relative, within the contract's 1e-9. -#}
{% macro as_numeric(expression) -%}
    {{ return(adapter.dispatch('as_numeric', 'costwatch')(expression)) }}
{%- endmacro %}

{% macro default__as_numeric(expression) -%}
    {{ expression }}::numeric
{%- endmacro %}

{% macro spark__as_numeric(expression) -%}
    cast({{ expression }} as double)
{%- endmacro %}

{#- A 64-bit float. Spark's `::float` is 32-bit: exact for the counts it casts today, but a
    fraction would lose its digits past the 7th. -#}
{% macro as_double(expression) -%}
    {{ return(adapter.dispatch('as_double', 'costwatch')(expression)) }}
{%- endmacro %}

{% macro default__as_double(expression) -%}
    {{ expression }}::float
{%- endmacro %}

{% macro spark__as_double(expression) -%}
    cast({{ expression }} as double)
{%- endmacro %}

{#- A cost column as the models compute with it: PostgreSQL keeps its numeric; Spark reads a
    double (a decimal column's sums and divisions would round to 6 places). -#}
{% macro as_cost(expression) -%}
    {{ return(adapter.dispatch('as_cost', 'costwatch')(expression)) }}
{%- endmacro %}

{% macro default__as_cost(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro spark__as_cost(expression) -%}
    cast({{ expression }} as double)
{%- endmacro %}

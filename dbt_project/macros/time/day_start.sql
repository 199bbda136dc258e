{#- The first instant (timestamptz) of a UTC day given as a date expression. -#}
{% macro day_start(day_expression) -%}
    {{ return(adapter.dispatch('day_start', 'costwatch')(day_expression)) }}
{%- endmacro %}

{% macro default__day_start(day_expression) -%}
    (({{ day_expression }})::timestamp at time zone 'UTC')
{%- endmacro %}

{% macro spark__day_start(day_expression) -%}
    cast({{ day_expression }} as timestamp)
{%- endmacro %}

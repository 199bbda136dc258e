{#- The timestamp before every other: a load hour with no created_at. Spark has no infinite
    timestamps (`'-infinity'` casts to null there): its first representable instant. -#}
{% macro minus_infinity() -%}
    {{ return(adapter.dispatch('minus_infinity', 'costwatch')()) }}
{%- endmacro %}

{% macro default__minus_infinity() -%}
    '-infinity'::timestamptz
{%- endmacro %}

{% macro spark__minus_infinity() -%}
    timestamp'0001-01-01 00:00:00'
{%- endmacro %}

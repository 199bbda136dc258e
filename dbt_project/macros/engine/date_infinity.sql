{#- The date after every other: a price still in effect. Spark: its last representable day. -#}
{% macro date_infinity() -%}
    {{ return(adapter.dispatch('date_infinity', 'costwatch')()) }}
{%- endmacro %}

{% macro default__date_infinity() -%}
    'infinity'::date
{%- endmacro %}

{% macro spark__date_infinity() -%}
    date'9999-12-31'
{%- endmacro %}

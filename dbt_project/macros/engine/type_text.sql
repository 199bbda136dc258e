{#- The text type's name (Spark has no `text`). -#}
{% macro type_text() -%}
    {{ return(adapter.dispatch('type_text', 'costwatch')()) }}
{%- endmacro %}

{% macro default__type_text() -%}
    text
{%- endmacro %}

{% macro spark__type_text() -%}
    string
{%- endmacro %}

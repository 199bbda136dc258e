{#- Text compared byte by byte (distinct counts independent of the database's collation);
    Spark's strings always compare so. -#}
{% macro bytewise(expression) -%}
    {{ return(adapter.dispatch('bytewise', 'costwatch')(expression)) }}
{%- endmacro %}

{% macro default__bytewise(expression) -%}
    {{ expression }} collate "C"
{%- endmacro %}

{% macro spark__bytewise(expression) -%}
    {{ expression }}
{%- endmacro %}

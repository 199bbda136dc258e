{#- Whether incremental models read back what they built to rebuild only recent hours (the
    cutoffs of macros/incremental/). On Spark every model selects all its rows and
    `insert_overwrite` replaces the table, or the day partitions it selects, whole: the
    read-back queries and the checked-windows log are PostgreSQL's. -#}
{% macro narrows_windows() -%}
    {{ return(adapter.dispatch('narrows_windows', 'costwatch')()) }}
{%- endmacro %}

{% macro default__narrows_windows() -%}
    {{ return(true) }}
{%- endmacro %}

{% macro spark__narrows_windows() -%}
    {{ return(false) }}
{%- endmacro %}

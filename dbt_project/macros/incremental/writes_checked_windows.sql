{#- Only a run or a build writes the logs: `dbt compile`, `dbt show` and sqlfluff's dbt templater
    (`make lint`, which compiles every model) leave them alone, so compiling never changes what
    the next pass rebuilds. -#}
{% macro writes_checked_windows() -%}
    {{ return(execute and flags.WHICH in ('run', 'build') and narrows_windows()) }}
{%- endmacro %}

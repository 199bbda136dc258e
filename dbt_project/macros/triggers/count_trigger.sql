{#- Count of rows whose trigger type is `trigger` (use inside an aggregate query). -#}
{% macro count_trigger(column, trigger) -%}
    count(*) filter (where {{ column }} = '{{ trigger }}')
{%- endmacro %}

{#- The same for a `date` column: days on or after the cutoff's UTC day. -#}
{% macro since_cutoff_day(column, cutoff) -%}
    {%- if cutoff is none -%}
        true
    {%- else -%}
        {{ column }} >= {{ day_bucket(cutoff) }}
    {%- endif -%}
{%- endmacro %}

{#- `where`-clause predicate keeping rows at or after the cutoff (true when there is none). -#}
{% macro since_cutoff(column, cutoff, or_null=false) -%}
    {%- if cutoff is none -%}
        true
    {%- elif or_null -%}
        ({{ column }} >= {{ cutoff }} or {{ column }} is null)
    {%- else -%}
        {{ column }} >= {{ cutoff }}
    {%- endif -%}
{%- endmacro %}

{#- A boolean expression: is this (cleaned, lower-cased) trigger type a hidden recompute? -#}
{% macro is_hidden_trigger(column) -%}
    ({{ column }} in (
        {%- for trigger in hidden_trigger_types() -%}
            '{{ trigger }}'{{ ", " if not loop.last }}
        {%- endfor -%}
    ))
{%- endmacro %}

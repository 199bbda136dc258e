{#- The runbook's hidden recompute: requests the user did not ask for (step 3). -#}
{% macro hidden_trigger_types() -%}
    {{ return(['undo', 'retry', 'auto_save']) }}
{%- endmacro %}

{#- A boolean expression: is this (cleaned, lower-cased) trigger type a hidden recompute? -#}
{% macro is_hidden_trigger(column) -%}
    ({{ column }} in (
        {%- for trigger in hidden_trigger_types() -%}
            '{{ trigger }}'{{ ", " if not loop.last }}
        {%- endfor -%}
    ))
{%- endmacro %}

{#- Count of rows whose trigger type is `trigger` (use inside an aggregate query). -#}
{% macro count_trigger(column, trigger) -%}
    count(*) filter (where {{ column }} = '{{ trigger }}')
{%- endmacro %}

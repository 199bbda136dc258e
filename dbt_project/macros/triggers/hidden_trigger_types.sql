{#- The runbook's hidden recompute: requests the user did not ask for (step 3). -#}
{% macro hidden_trigger_types() -%}
    {{ return(['undo', 'retry', 'auto_save']) }}
{%- endmacro %}

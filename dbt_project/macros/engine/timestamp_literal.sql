{#- A timestamp literal from its text ('-infinity' included: none on Spark, which has no
    infinite timestamps; the model then selects every row). -#}
{% macro timestamp_literal(text) -%}
    {{ return(adapter.dispatch('timestamp_literal', 'costwatch')(text)) }}
{%- endmacro %}

{% macro default__timestamp_literal(text) -%}
    {{ return("'" ~ text ~ "'::timestamptz") }}
{%- endmacro %}

{% macro spark__timestamp_literal(text) -%}
    {%- if text in ('-infinity', 'infinity') -%}{{ return(none) }}{%- endif -%}
    {{ return("timestamp'" ~ text ~ "'") }}
{%- endmacro %}

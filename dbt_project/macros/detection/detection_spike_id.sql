{#- A spike's stable id, derived from its first hour (UTC): 'spike-2026-11-29T03'. -#}
{% macro detection_spike_id(spike_start) -%}
    {{ return(adapter.dispatch('detection_spike_id', 'costwatch')(spike_start)) }}
{%- endmacro %}

{% macro default__detection_spike_id(spike_start) -%}
    ('spike-' || to_char({{ spike_start }} at time zone 'UTC', 'YYYY-MM-DD"T"HH24'))
{%- endmacro %}

{#- The session's time zone is UTC (profiles.yml). -#}
{% macro spark__detection_spike_id(spike_start) -%}
    ('spike-' || date_format({{ spike_start }}, "yyyy-MM-dd'T'HH"))
{%- endmacro %}

{#- A spike's stable id, derived from its first hour (UTC): 'spike-2026-11-29T03'. -#}
{% macro detection_spike_id(spike_start) -%}
    ('spike-' || to_char({{ spike_start }} at time zone 'UTC', 'YYYY-MM-DD"T"HH24'))
{%- endmacro %}

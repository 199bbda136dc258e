{#- A digest of a group's rows (`expression` renders each row as text): equal digests, equal rows.
    The diagnosis' per-hour models compare a spike hour's windows with the ones they were built
    from (int_diagnosis_slots). -#}
{% macro diagnosis_fingerprint(expression) -%}
    {{ return(adapter.dispatch('diagnosis_fingerprint', 'costwatch')(expression)) }}
{%- endmacro %}

{% macro default__diagnosis_fingerprint(expression) -%}
    md5(string_agg({{ expression }}, ',' order by {{ expression }}))
{%- endmacro %}

{% macro spark__diagnosis_fingerprint(expression) -%}
    md5(array_join(array_sort(collect_list({{ expression }})), ','))
{%- endmacro %}

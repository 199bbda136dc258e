{#- Post-hook of the diagnosis' per-hour models: delete the spike hours (slots) that no longer
    exist (a spike gone, or its start moved: a new spike_id). Spark replaces the table whole. -#}
{% macro diagnosis_delete_gone_slots() -%}
    {{ return(adapter.dispatch('diagnosis_delete_gone_slots', 'costwatch')()) }}
{%- endmacro %}

{% macro default__diagnosis_delete_gone_slots() -%}
    delete from {{ this }} as built
    where not exists (
        select 1
        -- a subquery, not `ref as slots`: under `dbt run --empty` a ref renders as an aliased
        -- subquery already (tests/test_dbt_unit.py)
        from (select spike_id, slot_hour from {{ ref('int_diagnosis_slots') }}) as slots
        where slots.spike_id = built.spike_id and slots.slot_hour = built.slot_hour
    )
{%- endmacro %}

{% macro spark__diagnosis_delete_gone_slots() -%}
{%- endmacro %}

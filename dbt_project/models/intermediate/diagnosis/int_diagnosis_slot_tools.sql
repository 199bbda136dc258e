{#-
  Tool calls of each spike hour's window (slot, int_diagnosis_slots), by tool and calling
  feature: the per-hour part of int_diagnosis_tools, incremental per slot as
  int_diagnosis_slot_inference is (exact numerics; a slot without calls keeps one row with a null
  `tool_name`, never null in a fact; slots that no longer exist are deleted).
-#}
{{
    config(
        materialized='incremental',
        unique_key=['spike_id', 'slot_hour'],
        indexes=[{'columns': ['spike_id', 'slot_hour']}],
        post_hook=["{{ diagnosis_delete_gone_slots() }}"],
    )
}}

{%- set since = diagnosis_changed_since('stg_raw__tool_calls_checked') %}

with

slots as (
    select * from {{ ref('int_diagnosis_slots') }}
),

all_windows as (
    select * from {{ ref('int_diagnosis_windows') }}
),

changed as (
    select * from slots
    where {{ diagnosis_slot_changed('slots', since) }}
),

windows as (
    select all_windows.*
    from all_windows
    inner join changed
        on all_windows.spike_id = changed.spike_id
        and all_windows.slot_hour = changed.slot_hour
),

tool_facts as (
    select * from {{ ref('int_tool_calls_hourly_facts') }}
    where hour in (select windows.hour from windows)
),

joined as (
    select
        windows.spike_id,
        windows.slot_hour,
        windows.period,
        windows.weight,
        tool_facts.tool_name,
        tool_facts.feature,
        tool_facts.total_calls as calls,
        tool_facts.failures,
        tool_facts.total_retries as retries
    from windows
    inner join tool_facts
        on windows.hour = tool_facts.hour
),

aggregated as (
    select
        spike_id,
        slot_hour,
        tool_name,
        feature,
        sum({{ as_numeric('(weight * calls)') }}) filter (where period = 'baseline') as calls_before,
        sum({{ as_numeric('calls') }}) filter (where period = 'spike') as calls_after,
        sum({{ as_numeric('(weight * failures)') }}) filter (where period = 'baseline')
            as failures_before,
        sum({{ as_numeric('failures') }}) filter (where period = 'spike') as failures_after,
        sum({{ as_numeric('(weight * retries)') }}) filter (where period = 'baseline')
            as retries_before,
        sum({{ as_numeric('retries') }}) filter (where period = 'spike') as retries_after
    from joined
    group by spike_id, slot_hour, tool_name, feature
),

final as (
    select
        changed.spike_id,
        changed.slot_hour,
        changed.window_fingerprint,
        aggregated.tool_name,
        aggregated.feature,
        aggregated.calls_before,
        aggregated.calls_after,
        aggregated.failures_before,
        aggregated.failures_after,
        aggregated.retries_before,
        aggregated.retries_after
    from changed
    left join aggregated
        on changed.spike_id = aggregated.spike_id
        and changed.slot_hour = aggregated.slot_hour
)

select * from final

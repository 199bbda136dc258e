{#-
  Inference facts of each spike hour's window (slot, int_diagnosis_slots), by feature, trigger
  type and model: the per-hour part of int_diagnosis_inference, which sums it over a spike's
  hours. `_before` sums the slot's weighted baseline hours, `_after` its own hour; the `fit_`
  sums run over both (see int_diagnosis_inference).

  Incremental per slot: only the slots whose window or facts changed are computed again
  (macros/diagnosis/diagnosis_changed_since.sql), so an open spike's new hour adds one hour's
  window of work. Sums are exact numerics, so the roll-up over slots gives the same result
  whatever order and pass its rows were built in (a full refresh included). A slot without facts
  keeps one row with null keys (`feature` is never null in a fact), so its old rows are
  replaced; slots that no longer exist are deleted.
-#}
{{
    config(
        materialized='incremental',
        unique_key=['spike_id', 'slot_hour'],
        indexes=[{'columns': ['spike_id', 'slot_hour']}],
        post_hook=["{{ diagnosis_delete_gone_slots() }}"],
    )
}}

{%- set since = diagnosis_changed_since('stg_raw__inference_events_checked') %}

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

facts as (
    select * from {{ ref('int_inference_hourly_facts') }}
    where hour in (select windows.hour from windows)
),

joined as (
    select
        windows.spike_id,
        windows.slot_hour,
        windows.period,
        windows.weight,
        facts.feature,
        facts.trigger_type,
        facts.model,
        facts.is_hidden,
        facts.requests,
        facts.cost_usd,
        facts.sum_input_tokens as input_tokens,
        facts.sum_output_tokens as output_tokens
    from windows
    inner join facts
        on windows.hour = facts.hour
),

aggregated as (
    select
        spike_id,
        slot_hour,
        feature,
        trigger_type,
        model,
        bool_or(is_hidden) as is_hidden,
        sum({{ as_numeric('(weight * requests)') }}) filter (where period = 'baseline')
            as requests_before,
        sum({{ as_numeric('requests') }}) filter (where period = 'spike') as requests_after,
        sum({{ as_numeric('(weight * ' ~ as_double('cost_usd') ~ ')') }}) filter (where period = 'baseline')
            as cost_before_usd,
        sum({{ as_numeric('cost_usd') }}) filter (where period = 'spike') as cost_after_usd,
        sum({{ as_numeric('(weight * input_tokens)') }}) filter (where period = 'baseline')
            as input_tokens_before,
        sum({{ as_numeric('input_tokens') }}) filter (where period = 'spike') as input_tokens_after,
        sum({{ as_numeric('(weight * output_tokens)') }}) filter (where period = 'baseline')
            as output_tokens_before,
        sum({{ as_numeric('output_tokens') }}) filter (where period = 'spike')
            as output_tokens_after,
        sum({{ as_numeric('input_tokens') }} * {{ as_numeric('input_tokens') }}) as fit_input_sq,
        sum({{ as_numeric('output_tokens') }} * {{ as_numeric('output_tokens') }})
            as fit_output_sq,
        sum({{ as_numeric('input_tokens') }} * {{ as_numeric('output_tokens') }})
            as fit_input_output,
        sum({{ as_numeric('cost_usd') }} * {{ as_numeric('input_tokens') }}) as fit_cost_input,
        sum({{ as_numeric('cost_usd') }} * {{ as_numeric('output_tokens') }}) as fit_cost_output,
        sum({{ as_numeric('cost_usd') }}) as fit_cost,
        sum({{ as_numeric('(input_tokens + output_tokens)') }}) as fit_tokens
    from joined
    group by spike_id, slot_hour, feature, trigger_type, model
),

final as (
    select
        changed.spike_id,
        changed.slot_hour,
        changed.window_fingerprint,
        aggregated.feature,
        aggregated.trigger_type,
        aggregated.model,
        aggregated.is_hidden,
        aggregated.requests_before,
        aggregated.requests_after,
        aggregated.cost_before_usd,
        aggregated.cost_after_usd,
        aggregated.input_tokens_before,
        aggregated.input_tokens_after,
        aggregated.output_tokens_before,
        aggregated.output_tokens_after,
        aggregated.fit_input_sq,
        aggregated.fit_output_sq,
        aggregated.fit_input_output,
        aggregated.fit_cost_input,
        aggregated.fit_cost_output,
        aggregated.fit_cost,
        aggregated.fit_tokens
    from changed
    left join aggregated
        on changed.spike_id = aggregated.spike_id
        and changed.slot_hour = aggregated.slot_hour
)

select * from final

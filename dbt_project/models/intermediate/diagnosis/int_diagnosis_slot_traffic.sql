{#-
  Who sent the requests of each spike hour's window (slot, int_diagnosis_slots): requests per
  day back (0 = the spike hour), user and user agent, and the same weighted as the baseline
  hours are (`weighted_requests`, exact numerics). The per-hour part of int_diagnosis_traffic,
  which adds a spike's hours up before ranking its top users and agents; the only diagnosis model
  that reads events, and only those of the slots computed again (incremental per slot as
  int_diagnosis_slot_inference is: a slot without events keeps one row with a null `days_back`;
  slots that no longer exist are deleted). Each window hour is read through the created_at index.
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

events as (
    select * from {{ ref('stg_raw__inference_events') }}
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

aggregated as (
    select
        windows.spike_id,
        windows.slot_hour,
        windows.days_back,
        events.user_id,
        coalesce(events.user_agent, '(none)') as user_agent,
        count(*) as requests,
        sum({{ as_numeric('windows.weight') }}) as weighted_requests
    from windows
    inner join events
        on windows.hour <= events.created_at
        and windows.hour + interval '1 hour' > events.created_at
    group by
        windows.spike_id,
        windows.slot_hour,
        windows.days_back,
        events.user_id,
        coalesce(events.user_agent, '(none)')
),

final as (
    select
        changed.spike_id,
        changed.slot_hour,
        changed.window_fingerprint,
        aggregated.days_back,
        aggregated.user_id,
        aggregated.user_agent,
        aggregated.requests,
        aggregated.weighted_requests
    from changed
    left join aggregated
        on changed.spike_id = aggregated.spike_id
        and changed.slot_hour = aggregated.slot_hour
)

select * from final

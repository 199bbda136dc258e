{#-
  One row per spike hour compared (slot): the unit of the diagnosis' incremental work. A slot's
  window is its own hour and its weighted baseline hours (int_diagnosis_windows);
  `window_fingerprint` digests them (hours, days back, weights), so the per-hour models
  (int_diagnosis_slot_*) compute a slot again only when its window changed (a new spike hour,
  a baseline hour added or left out, a weight moved with the level, a new spike_id) or its
  hours' facts did (the staging log, macros/diagnosis/diagnosis_changed_since.sql).
-#}

with

windows as (
    select * from {{ ref('int_diagnosis_windows') }}
),

final as (
    select
        spike_id,
        slot_hour,
        {{ diagnosis_fingerprint(
            "period || ' ' || cast(hour as " ~ type_text() ~ ") || ' '"
            ~ " || cast(days_back as " ~ type_text() ~ ") || ' '"
            ~ " || cast(weight as " ~ type_text() ~ ")"
        ) }} as window_fingerprint
    from windows
    group by spike_id, slot_hour
)

select * from final

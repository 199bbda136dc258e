{#- The diagnosis' per-hour models (int_diagnosis_slot_*): the start of the hours whose facts
    may have changed since this model last looked, from the log of what `staging_model` checked
    again (macros/incremental/checked_window_cutoff.sql, this model's own consumer entry): every
    spike hour whose window reaches an hour from there on is computed again ('infinity': none).
    None on a full build (and on Spark, which rebuilds every model whole): every spike hour. -#}
{% macro diagnosis_changed_since(staging_model) -%}
    {%- if not (execute and is_incremental() and narrows_windows()) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(checked_window_cutoff("'-infinity'::timestamptz", staging_model)) }}
{%- endmacro %}

{#- `where` predicate: the spike hours (of `slots`, int_diagnosis_slots) to compute again: those
    whose window changed (a new spike hour, a baseline hour added, left out or weighted anew as
    the spike's level or spike_id moves: its fingerprint differs from the built one), and those
    whose window reaches an hour at or after `since` (a spike hour is its window's newest hour). -#}
{% macro diagnosis_slot_changed(slots, since) -%}
    {%- if since is none -%}
        true
    {%- else -%}
        (
            {{ slots }}.slot_hour >= {{ since }}
            or not exists (
                select 1
                from {{ this }} as built
                where
                    built.spike_id = {{ slots }}.spike_id
                    and built.slot_hour = {{ slots }}.slot_hour
                    and built.window_fingerprint = {{ slots }}.window_fingerprint
            )
        )
    {%- endif -%}
{%- endmacro %}

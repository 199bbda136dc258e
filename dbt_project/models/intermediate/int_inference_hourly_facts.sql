-- Additive hourly facts of clean inference events, one row per hour, feature, trigger type and
-- model. Every additive mart (cost, triggers, recompute, tokens, features) rolls up from here.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='hour',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['hour']}],
    )
}}

{#- From the hours staging checked again, within this model's lookback. #}
{%- set cutoff = checked_window_cutoff(
    incremental_cutoff('hour'), 'stg_raw__inference_events_checked'
) %}

with

events as (
    select * from {{ ref('stg_raw__inference_events') }}
    where {{ since_cutoff('created_at', cutoff) }}
),

final as (
    select
        hour,
        feature,
        trigger_type,
        model,
        {{ is_hidden_trigger('trigger_type') }} as is_hidden,
        count(*) as requests,
        sum(cost_usd) as cost_usd,
        sum(input_tokens) as sum_input_tokens,
        sum(output_tokens) as sum_output_tokens
    from events
    group by hour, feature, trigger_type, model
)

select * from final

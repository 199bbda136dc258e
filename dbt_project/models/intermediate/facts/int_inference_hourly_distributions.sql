-- Non-additive hourly measures of clean inference events (distinct users, 95th percentiles):
-- one pass over the rows of each rebuilt hour.
{{
    config(
        materialized='incremental',
        unique_key='hour',
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
        count(*) as requests,
        count(distinct {{ bytewise('user_id') }}) as unique_users,
        percentile_cont(0.95) within group (order by input_tokens) as p95_input_tokens,
        percentile_cont(0.95) within group (order by output_tokens) as p95_output_tokens
    from events
    group by hour
)

select * from final

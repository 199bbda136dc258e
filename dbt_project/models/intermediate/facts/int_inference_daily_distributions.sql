-- Non-additive daily measures of clean inference events (distinct users, 95th percentiles):
-- one pass over all rows of each rebuilt day.
{{
    config(
        materialized='incremental',
        unique_key='day',
    )
}}

{#- From the hours staging checked again, within this model's lookback. #}
{%- set cutoff = checked_window_cutoff(
    incremental_cutoff('newest_hour', grain='day_of_hour'), 'stg_raw__inference_events_checked', grain='day'
) %}

with

events as (
    select * from {{ ref('stg_raw__inference_events') }}
    where {{ since_cutoff('created_at', cutoff) }}
),

final as (
    select
        day,
        max(hour) as newest_hour,
        count(*) as requests,
        count(distinct {{ bytewise('user_id') }}) as unique_users,
        percentile_cont(0.95) within group (order by input_tokens) as p95_input_tokens,
        percentile_cont(0.95) within group (order by output_tokens) as p95_output_tokens
    from events
    group by day
)

select * from final

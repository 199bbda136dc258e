{#-
  Runbook step 1 per hour, with what the spike detector needs beside the cost: the statistical
  noise of that cost and the newest event (to tell a complete hour from one still filling).
  `session_cost_sq_usd` is the sum over the hour's sessions of (the session's cost in the hour)^2:
  events of a session share feature and model, so sessions, not events, are the independent
  draws, and sqrt of this sum is the standard error of the hour's cost under random traffic.
-#}
{{
    config(
        materialized='incremental',
        unique_key='hour',
    )
}}

{%- set cutoff = incremental_cutoff('hour') %}

with

events as (
    select * from {{ ref('stg_raw__inference_events') }}
    where {{ since_cutoff('created_at', cutoff) }}
),

sessions as (
    select
        hour,
        coalesce(session_id, event_id) as session_key,
        count(*) as requests,
        sum(cost_usd) as cost_usd,
        max(created_at) as newest_event_at
    from events
    group by hour, coalesce(session_id, event_id)
),

final as (
    select
        hour,
        sum(requests)::bigint as requests,
        sum(cost_usd) as total_cost_usd,
        sum(cost_usd * cost_usd) as session_cost_sq_usd,
        max(newest_event_at) as newest_event_at
    from sessions
    group by hour
)

select * from final

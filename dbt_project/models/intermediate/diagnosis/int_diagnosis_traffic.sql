{#-
  Who and what sent the requests of each spike window against its baseline window (runbook steps 2
  and 4): hourly distinct users and 95th percentiles of tokens (means over the windows' hours, from
  int_inference_hourly_distributions), and from the events themselves the top users' share of
  requests (per day's window: the spike's hours, or the same hours on one baseline day, averaged
  over those days) and the top user agents' shares, so bot traffic or abuse shows. Reads only the
  events of the windows' hours (the created_at index bounds the scan).

  Incremental per spike: a spike is computed again only when its `windows_fingerprint` changed,
  a digest of its windows' hours, weights and each hour's request count (so a late or removed
  event in a window hour counts as a change) and of `diagnosis_top_users`. A settled spike's
  windows are days of events; reading them every hour would make the pass grow with the history.
  Spikes that no longer exist are deleted.
-#}
{{
    config(
        materialized='incremental',
        unique_key='spike_id',
        post_hook=[
            "delete from {{ this }} where spike_id not in"
            " (select spike_id from {{ ref('int_diagnosis_windows') }})"
        ],
    )
}}


with

all_windows as (
    select * from {{ ref('int_diagnosis_windows') }}
),

window_hours as (
    select * from {{ ref('int_inference_hourly_distributions') }}
    where hour in (select all_windows.hour from all_windows)
),

fingerprints as (
    select
        all_windows.spike_id,
        md5(
            '{{ var("diagnosis_top_users") }};'
            || string_agg(
                all_windows.period || ' ' || all_windows.hour::text || ' '
                || all_windows.weight::text || ' ' || coalesce(window_hours.requests, 0)::text,
                ',' order by all_windows.period, all_windows.hour
            )
        ) as windows_fingerprint
    from all_windows
    left join window_hours
        on all_windows.hour = window_hours.hour
    group by all_windows.spike_id
),

changed as (
    select fingerprints.*
    from fingerprints
    {%- if compare %}
        left join {{ this }} as built
            on
                fingerprints.spike_id = built.spike_id
                and fingerprints.windows_fingerprint = built.windows_fingerprint
        where built.spike_id is null
    {%- endif %}
),

windows as (
    select all_windows.*
    from all_windows
    inner join changed
        on all_windows.spike_id = changed.spike_id
),

distributions as (
    select * from window_hours
    where hour in (select windows.hour from windows)
),

bounds as (
    select
        min(hour) as first_hour,
        max(hour) + interval '1 hour' as end_hour
    from windows
),

events as (
    select * from {{ ref('stg_raw__inference_events') }}
    where
        created_at >= (select bounds.first_hour from bounds)
        and created_at < (select bounds.end_hour from bounds)
),

window_events as (
    select
        windows.spike_id,
        windows.period,
        windows.days_back,
        windows.weight,
        events.user_id,
        events.user_agent
    from windows
    inner join events
        on windows.hour = events.hour
),

user_requests as (
    select
        spike_id,
        days_back,
        user_id,
        count(*) as requests
    from window_events
    group by spike_id, days_back, user_id
),

ranked_users as (
    select
        *,
        row_number() over (
            partition by spike_id, days_back order by requests desc, user_id
        ) as user_rank
    from user_requests
),

per_day as (
    select
        spike_id,
        days_back,
        sum(requests) filter (where user_rank <= {{ var('diagnosis_top_users') }})::float8
        / sum(requests) as top_users_share
    from ranked_users
    group by spike_id, days_back
),

users as (
    select
        spike_id,
        avg(top_users_share) filter (where days_back > 0) as top_users_share_before,
        avg(top_users_share) filter (where days_back = 0) as top_users_share_after
    from per_day
    group by spike_id
),

hourly as (
    select
        windows.spike_id,
        sum(windows.weight * distributions.unique_users) filter (where windows.period = 'baseline')
        / sum(windows.weight) filter (where windows.period = 'baseline') as unique_users_before,
        avg(distributions.unique_users) filter (where windows.period = 'spike')
            as unique_users_after,
        sum(windows.weight * distributions.p95_input_tokens) filter (where windows.period = 'baseline')
        / sum(windows.weight) filter (where windows.period = 'baseline')
            as p95_input_tokens_before,
        avg(distributions.p95_input_tokens) filter (where windows.period = 'spike')
            as p95_input_tokens_after,
        sum(windows.weight * distributions.p95_output_tokens) filter (where windows.period = 'baseline')
        / sum(windows.weight) filter (where windows.period = 'baseline')
            as p95_output_tokens_before,
        avg(distributions.p95_output_tokens) filter (where windows.period = 'spike')
            as p95_output_tokens_after
    from windows
    inner join distributions
        on windows.hour = distributions.hour
    group by windows.spike_id
),

agents as (
    select
        spike_id,
        coalesce(user_agent, '(none)') as user_agent,
        coalesce(sum(weight) filter (where period = 'baseline'), 0) as requests_before,
        count(*) filter (where period = 'spike') as requests_after
    from window_events
    group by spike_id, coalesce(user_agent, '(none)')
),

agent_shares as (
    select
        *,
        requests_before / nullif(sum(requests_before) over (partition by spike_id), 0)
            as share_before,
        requests_after::float8 / nullif(sum(requests_after) over (partition by spike_id), 0)
            as share_after,
        row_number() over (
            partition by spike_id order by requests_after desc, user_agent
        ) as agent_rank
    from agents
),

top_agents as (
    select
        spike_id,
        jsonb_agg(
            jsonb_build_object(
                'user_agent', user_agent,
                'requests_before', round(requests_before::numeric, 1),
                'requests_after', requests_after,
                'share_before', round(share_before::numeric, 4),
                'share_after', round(share_after::numeric, 4)
            )
            order by agent_rank
        ) as top_user_agents
    from agent_shares
    where agent_rank <= 5
    group by spike_id
),

final as (
    select
        hourly.spike_id,
        changed.windows_fingerprint,
        hourly.unique_users_before,
        hourly.unique_users_after,
        users.top_users_share_before,
        users.top_users_share_after,
        hourly.p95_input_tokens_before,
        hourly.p95_input_tokens_after,
        hourly.p95_output_tokens_before,
        hourly.p95_output_tokens_after,
        top_agents.top_user_agents
    from hourly
    inner join changed
        on hourly.spike_id = changed.spike_id
    left join users
        on hourly.spike_id = users.spike_id
    left join top_agents
        on hourly.spike_id = top_agents.spike_id
)

select * from final

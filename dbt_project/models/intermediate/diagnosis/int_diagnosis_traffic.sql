{#-
  Who and what sent the requests of each spike window against its baseline window (runbook steps 2
  and 4): hourly distinct users and 95th percentiles of tokens (means over the windows' hours, from
  int_inference_hourly_distributions), and from the events' counts per spike hour
  (int_diagnosis_slot_traffic, added up over the spike's hours) the top users' share of requests
  (per day's window: the spike's hours, or the same hours on one baseline day, averaged over
  those days) and the top user agents' shares, so bot traffic or abuse shows. Sums are exact
  numerics: the same whatever pass built each hour.
-#}

with

windows as (
    select * from {{ ref('int_diagnosis_windows') }}
),

distributions as (
    select * from {{ ref('int_inference_hourly_distributions') }}
    where hour in (select windows.hour from windows)
),

slot_traffic as (
    select * from {{ ref('int_diagnosis_slot_traffic') }}
    -- a slot without events keeps one row with a null days_back
    where days_back is not null
),

user_requests as (
    select
        spike_id,
        days_back,
        user_id,
        sum(requests) as requests
    from slot_traffic
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
        {{ as_numeric(
            "sum(requests) filter (where user_rank <= " ~ var('diagnosis_top_users') ~ ")"
        ) }}
        / {{ as_numeric('sum(requests)') }} as top_users_share
    from ranked_users
    group by spike_id, days_back
),

users as (
    select
        spike_id,
        {{ as_double('avg(top_users_share) filter (where days_back > 0)') }}
            as top_users_share_before,
        {{ as_double('avg(top_users_share) filter (where days_back = 0)') }}
            as top_users_share_after
    from per_day
    group by spike_id
),

hourly as (
    select
        windows.spike_id,
        {{ diagnosis_weighted_mean('distributions.unique_users') }} as unique_users_before,
        {{ as_double(
            'avg(' ~ as_numeric('distributions.unique_users') ~ ")"
            ~ " filter (where windows.period = 'spike')"
        ) }}
            as unique_users_after,
        {{ diagnosis_weighted_mean('distributions.p95_input_tokens') }} as p95_input_tokens_before,
        {{ as_double(
            'avg(' ~ as_numeric('distributions.p95_input_tokens') ~ ")"
            ~ " filter (where windows.period = 'spike')"
        ) }}
            as p95_input_tokens_after,
        {{ diagnosis_weighted_mean('distributions.p95_output_tokens') }}
            as p95_output_tokens_before,
        {{ as_double(
            'avg(' ~ as_numeric('distributions.p95_output_tokens') ~ ")"
            ~ " filter (where windows.period = 'spike')"
        ) }}
            as p95_output_tokens_after
    from windows
    inner join distributions
        on windows.hour = distributions.hour
    group by windows.spike_id
),

agents as (
    select
        spike_id,
        user_agent,
        coalesce(sum(weighted_requests) filter (where days_back > 0), 0) as requests_before,
        coalesce(sum(requests) filter (where days_back = 0), 0) as requests_after
    from slot_traffic
    group by spike_id, user_agent
),

agent_shares as (
    select
        *,
        {{ as_double(
            '(requests_before / nullif(sum(requests_before) over (partition by spike_id), 0))'
        ) }} as share_before,
        {{ as_double('requests_after') }} / nullif(sum(requests_after) over (partition by spike_id), 0)
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
    left join users
        on hourly.spike_id = users.spike_id
    left join top_agents
        on hourly.spike_id = top_agents.spike_id
)

select * from final

-- The evidence of each spike's diagnosis (spike_diagnosis.evidence, without the cause's own
-- keys): the spike window against its baseline window in the numbers an on-call engineer would
-- quote, by trigger type, feature, model and tool, the top users and user agents, and the
-- raw.change_events of the 24 hours before `spike_start`.
with

spikes as (
    select * from {{ ref('cost_spikes') }}
),

inference as (
    select * from {{ ref('int_diagnosis_inference') }}
),

tool_signals as (
    select * from {{ ref('int_diagnosis_tool_signals') }}
),

traffic as (
    select * from {{ ref('int_diagnosis_traffic') }}
),

windows as (
    select * from {{ ref('int_diagnosis_windows') }}
),

change_events as (
    select * from {{ source('raw', 'change_events') }}
),

-- evidence: the numbers an on-call engineer would quote
totals as (
    select
        inference.spike_id,
        sum(requests_before) as requests_before,
        sum(requests_after) as requests_after,
        sum(cost_before_usd) as cost_before_usd,
        sum(cost_after_usd) as cost_after_usd,
        sum(requests_before) filter (where is_hidden) / nullif(sum(requests_before), 0)
            as hidden_ratio_before,
        sum(requests_after) filter (where is_hidden) / nullif(sum(requests_after), 0)
            as hidden_ratio_after,
        sum(input_tokens_before) / nullif(sum(requests_before), 0) as avg_input_before,
        sum(input_tokens_after) / nullif(sum(requests_after), 0) as avg_input_after,
        sum(output_tokens_before) / nullif(sum(requests_before), 0) as avg_output_before,
        sum(output_tokens_after) / nullif(sum(requests_after), 0) as avg_output_after
    from inference
    group by inference.spike_id
),

window_hours as (
    select
        spike_id,
        count(*) as hours
    from windows
    where period = 'spike'
    group by spike_id
),

by_trigger as (
    select
        spike_id,
        jsonb_object_agg(
            trigger_type,
            jsonb_build_object(
                'requests_before', round(requests_before::numeric, 1),
                'requests_after', round(requests_after::numeric, 1),
                'cost_before_usd', round(cost_before_usd::numeric, 6),
                'cost_after_usd', round(cost_after_usd::numeric, 6)
            )
        ) as triggers
    from (
        select
            spike_id,
            trigger_type,
            sum(requests_before) as requests_before,
            sum(requests_after) as requests_after,
            sum(cost_before_usd) as cost_before_usd,
            sum(cost_after_usd) as cost_after_usd
        from inference
        group by spike_id, trigger_type
    ) as trigger_sums
    group by spike_id
),

by_feature as (
    select
        spike_id,
        jsonb_object_agg(
            feature,
            jsonb_build_object(
                'requests_before', round(requests_before::numeric, 1),
                'requests_after', round(requests_after::numeric, 1),
                'cost_before_usd', round(cost_before_usd::numeric, 6),
                'cost_after_usd', round(cost_after_usd::numeric, 6)
            )
        ) as features
    from (
        select
            spike_id,
            feature,
            sum(requests_before) as requests_before,
            sum(requests_after) as requests_after,
            sum(cost_before_usd) as cost_before_usd,
            sum(cost_after_usd) as cost_after_usd
        from inference
        group by spike_id, feature
    ) as feature_totals
    group by spike_id
),

by_model as (
    select
        spike_id,
        jsonb_object_agg(
            model,
            jsonb_build_object(
                'share_before', round((requests_before / nullif(all_before, 0))::numeric, 4),
                'share_after', round((requests_after / nullif(all_after, 0))::numeric, 4),
                'cost_before_usd', round(cost_before_usd::numeric, 6),
                'cost_after_usd', round(cost_after_usd::numeric, 6)
            )
        ) as models
    from (
        select
            spike_id,
            model,
            sum(requests_before) as requests_before,
            sum(requests_after) as requests_after,
            sum(cost_before_usd) as cost_before_usd,
            sum(cost_after_usd) as cost_after_usd,
            sum(sum(requests_before)) over (partition by spike_id) as all_before,
            sum(sum(requests_after)) over (partition by spike_id) as all_after
        from inference
        group by spike_id, model
    ) as model_totals
    group by spike_id
),

by_tool as (
    select
        spike_id,
        jsonb_object_agg(
            tool_name,
            jsonb_build_object(
                'calls_before', round(calls_before::numeric, 1),
                'calls_after', round(calls_after::numeric, 1),
                'failure_rate_before', round(failure_rate_before::numeric, 4),
                'failure_rate_after', round(failure_rate_after::numeric, 4),
                'avg_retries_before', round(avg_retries_before::numeric, 3),
                'avg_retries_after', round(avg_retries_after::numeric, 3)
            )
        ) as tools
    from tool_signals
    group by spike_id
),

recent_changes as (
    select
        spikes.spike_id,
        jsonb_agg(
            jsonb_build_object(
                'changed_at', change_events.changed_at,
                'kind', change_events.kind,
                'feature', change_events.feature,
                'description', change_events.description
            )
            order by change_events.changed_at desc
        ) as changes
    from spikes
    inner join change_events
        on change_events.changed_at >= spikes.spike_start - interval '24 hours'
        and spikes.spike_start > change_events.changed_at
    group by spikes.spike_id
),

evidence as (
    select
        totals.spike_id,
        jsonb_build_object(
            'window', jsonb_build_object(
                'spike_start', spikes.spike_start,
                'spike_end', spikes.spike_end,
                'hours_compared', window_hours.hours,
                'baseline', 'the same hours of day on the previous {{ var("spike_baseline_days") }} '
                || 'days, spike hours left out; before = their mean over the spike''s hours'
            ),
            'cost_usd', jsonb_build_object(
                'before', round(totals.cost_before_usd::numeric, 6),
                'after', round(totals.cost_after_usd::numeric, 6),
                'excess', round((totals.cost_after_usd - totals.cost_before_usd)::numeric, 6)
            ),
            'requests', {{ diagnosis_before_after('totals.requests_before', 'totals.requests_after', 1) }},
            'requests_per_hour', {{ diagnosis_before_after(
                'totals.requests_before / window_hours.hours',
                'totals.requests_after / window_hours.hours', 1) }},
            'unique_users', {{ diagnosis_before_after(
                'traffic.unique_users_before', 'traffic.unique_users_after', 1) }},
            'cost_per_request_usd', {{ diagnosis_before_after(
                'totals.cost_before_usd / nullif(totals.requests_before, 0)',
                'totals.cost_after_usd / nullif(totals.requests_after, 0)', 8) }},
            'volume_effect_usd', round(
                (
                    (totals.requests_after - totals.requests_before)
                    * totals.cost_before_usd / nullif(totals.requests_before, 0)
                )::numeric, 6
            ),
            'rate_effect_usd', round(
                (
                    totals.cost_after_usd - totals.requests_after
                    * totals.cost_before_usd / nullif(totals.requests_before, 0)
                )::numeric, 6
            ),
            'hidden_ratio', {{ diagnosis_before_after(
                'totals.hidden_ratio_before', 'totals.hidden_ratio_after') }},
            'triggers', by_trigger.triggers,
            'tokens', jsonb_build_object(
                'avg_input', {{ diagnosis_before_after(
                    'totals.avg_input_before', 'totals.avg_input_after', 1) }},
                'avg_output', {{ diagnosis_before_after(
                    'totals.avg_output_before', 'totals.avg_output_after', 1) }},
                'p95_input', {{ diagnosis_before_after(
                    'traffic.p95_input_tokens_before', 'traffic.p95_input_tokens_after', 1) }},
                'p95_output', {{ diagnosis_before_after(
                    'traffic.p95_output_tokens_before', 'traffic.p95_output_tokens_after', 1) }}
            ),
            'features', by_feature.features,
            'models', by_model.models,
            'tools', coalesce(by_tool.tools, '{}'::jsonb),
            'top_user_agents', traffic.top_user_agents,
            'top_users_share', jsonb_build_object(
                'top_n', {{ var('diagnosis_top_users') }},
                'before', round(traffic.top_users_share_before::numeric, 4),
                'after', round(traffic.top_users_share_after::numeric, 4)
            ),
            'change_events', coalesce(recent_changes.changes, '[]'::jsonb)
        ) as common
    from totals
    inner join spikes
        on totals.spike_id = spikes.spike_id
    inner join window_hours
        on totals.spike_id = window_hours.spike_id
    left join traffic
        on totals.spike_id = traffic.spike_id
    left join by_trigger
        on totals.spike_id = by_trigger.spike_id
    left join by_feature
        on totals.spike_id = by_feature.spike_id
    left join by_model
        on totals.spike_id = by_model.spike_id
    left join by_tool
        on totals.spike_id = by_tool.spike_id
    left join recent_changes
        on totals.spike_id = recent_changes.spike_id
)

select * from evidence

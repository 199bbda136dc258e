{#-
  Runbook steps 2-7 for every spike: one row per cause found, rank 1 the root cause.

  The spike window (its hours) is compared with the same hours of day on its baseline days
  (int_diagnosis_windows); `before` values are the expected values over the spike's hours. The
  excess cost (after - before) is split into disjoint segments of events, deepest cause first,
  so each dollar is explained once and the ranking by contribution follows the contract's rules:

  1. tool_retry_storm: `retry` events of the features calling a tool whose failure rate or
     retries rose. The retries are the symptom, the failing tool the cause.
  2. hidden_recompute: the other hidden events (undo, retry, auto_save), when the hidden ratio
     rose; `trigger_type` = the one whose cost grew most. An auto-save loop raises requests, but
     they are hidden recompute, not traffic.
  3. feature_concentration: the remaining events of one feature whose requests grew at least
     `diagnosis_feature_growth` times faster than the others' and that carries at least
     `diagnosis_feature_share` (half) of the remaining excess (a feature growing 6x is that feature, not traffic).
  4. The rest is decomposed: volume effect (more requests at the old cost per request) ->
     traffic_increase; rate effect (requests_after * change of cost per request) -> split into its
     input and output parts with per-model token prices fitted by least squares: input part ->
     context_bloat when input tokens per request (avg or p95) rose; output part (and the input
     part when only the model mix moved) -> output_growth, `model` = the model whose share grew.

  A cause is reported when its signal moved (see the diagnosis_* vars) and it explains at least
  `diagnosis_min_share` of the excess; a spike with none gets its largest candidate as rank 1.
-#}

with

spikes as (
    select * from {{ ref('cost_spikes') }}
),

inference as (
    select * from {{ ref('int_diagnosis_inference') }}
),

tools as (
    select * from {{ ref('int_diagnosis_tools') }}
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

catalogue as (
    select * from {{ ref('cause_catalogue') }}
),

-- prices per model: cost = input_price * input_tokens + output_price * output_tokens
price_sums as (
    select
        spike_id,
        model,
        sum(fit_input_sq) as sxx,
        sum(fit_output_sq) as syy,
        sum(fit_input_output) as sxy,
        sum(fit_cost_input) as scx,
        sum(fit_cost_output) as scy,
        sum(fit_cost) / nullif(sum(fit_tokens), 0) as price_per_token
    from inference
    group by spike_id, model
),

model_prices as (
    select
        spike_id,
        model,
        case
            when
                sxx * syy - sxy * sxy > 1e-9 * sxx * syy
                and (scx * syy - scy * sxy) / (sxx * syy - sxy * sxy) >= 0
                and (scy * sxx - scx * sxy) / (sxx * syy - sxy * sxy) >= 0
                then (scx * syy - scy * sxy) / (sxx * syy - sxy * sxy)
            else coalesce(price_per_token, 0)
        end as input_price
    from price_sums
),

-- step 6: tools whose failure rate or retries rose
tool_totals as (
    select
        spike_id,
        tool_name,
        sum(calls_before) as calls_before,
        sum(calls_after) as calls_after,
        sum(failures_before) / nullif(sum(calls_before), 0) as failure_rate_before,
        sum(failures_after) / nullif(sum(calls_after), 0) as failure_rate_after,
        sum(retries_before) / nullif(sum(calls_before), 0) as avg_retries_before,
        sum(retries_after) / nullif(sum(calls_after), 0) as avg_retries_after
    from tools
    group by spike_id, tool_name
),

tool_signals as (
    select
        *,
        coalesce(failure_rate_after, 0) - coalesce(failure_rate_before, 0) as failure_rate_rise,
        coalesce(avg_retries_after, 0) - coalesce(avg_retries_before, 0) as retries_rise,
        calls_after > 0
        and (
            coalesce(failure_rate_after, 0) - coalesce(failure_rate_before, 0)
            >= {{ var('diagnosis_tool_failure_rate_rise') }}
            or coalesce(avg_retries_after, 0) - coalesce(avg_retries_before, 0)
            >= {{ var('diagnosis_tool_retries_rise') }}
        ) as is_storming
    from tool_totals
),

feature_tools as (
    -- the storming tool each feature called in the spike (the worst one when several)
    select distinct on (tools.spike_id, tools.feature)
        tools.spike_id,
        tools.feature,
        tool_signals.tool_name
    from tools
    inner join tool_signals
        on tools.spike_id = tool_signals.spike_id
        and tools.tool_name = tool_signals.tool_name
    where tool_signals.is_storming and tools.calls_after > 0
    order by tools.spike_id, tools.feature, tool_signals.failure_rate_rise desc, tool_signals.tool_name
),

rows_priced as (
    select
        inference.*,
        model_prices.input_price * inference.input_tokens_before as input_cost_before_usd,
        model_prices.input_price * inference.input_tokens_after as input_cost_after_usd,
        case
            when inference.trigger_type = 'retry' and feature_tools.tool_name is not null
                then feature_tools.tool_name
        end as storming_tool
    from inference
    inner join model_prices
        on inference.spike_id = model_prices.spike_id
        and inference.model = model_prices.model
    left join feature_tools
        on inference.spike_id = feature_tools.spike_id
        and inference.feature = feature_tools.feature
),

-- step 3: did the hidden recompute ratio rise (beyond the tool storms' retries)?
hidden_signal as (
    select
        spike_id,
        sum(requests_before) filter (where is_hidden) / nullif(sum(requests_before), 0)
            as hidden_ratio_before,
        sum(requests_after) filter (where is_hidden) / nullif(sum(requests_after), 0)
            as hidden_ratio_after
    from rows_priced
    where storming_tool is null
    group by spike_id
),

rows_hidden as (
    select
        rows_priced.*,
        coalesce(
            hidden_signal.hidden_ratio_after - hidden_signal.hidden_ratio_before
            >= {{ var('diagnosis_hidden_ratio_rise') }},
            false
        ) and rows_priced.is_hidden and rows_priced.storming_tool is null as is_hidden_segment
    from rows_priced
    left join hidden_signal
        on rows_priced.spike_id = hidden_signal.spike_id
),

-- step 5: one feature whose requests grew far faster than the rest's
feature_sums as (
    select
        spike_id,
        feature,
        sum(requests_before) as requests_before,
        sum(requests_after) as requests_after,
        sum(cost_after_usd - cost_before_usd) as excess_usd
    from rows_hidden
    where storming_tool is null and not is_hidden_segment
    group by spike_id, feature
),

feature_growth as (
    select
        *,
        sum(requests_before) over (partition by spike_id) - requests_before as others_before,
        sum(requests_after) over (partition by spike_id) - requests_after as others_after,
        sum(excess_usd) over (partition by spike_id) as all_excess_usd
    from feature_sums
),

concentrated_feature as (
    select distinct on (spike_id)
        spike_id,
        feature
    from feature_growth
    where
        requests_before > 0
        and others_before > 0
        and excess_usd > 0
        and excess_usd >= {{ var('diagnosis_feature_share') }} * all_excess_usd
        and requests_after / requests_before
        >= {{ var('diagnosis_feature_growth') }}
        * greatest(others_after / others_before, 1)
    order by spike_id, excess_usd desc, feature
),

segmented as (
    select
        rows_hidden.*,
        case
            when rows_hidden.storming_tool is not null then 'tool_retry_storm'
            when rows_hidden.is_hidden_segment then 'hidden_recompute'
            when concentrated_feature.feature is not null then 'feature_concentration'
            else 'rest'
        end as segment
    from rows_hidden
    left join concentrated_feature
        on rows_hidden.spike_id = concentrated_feature.spike_id
        and rows_hidden.feature = concentrated_feature.feature
),

-- step 2 and 4 on the rest: volume and rate effects, input and output parts
rest as (
    select
        spike_id,
        sum(requests_before) as requests_before,
        sum(requests_after) as requests_after,
        sum(cost_before_usd) as cost_before_usd,
        sum(cost_after_usd) as cost_after_usd,
        sum(input_cost_before_usd) as input_cost_before_usd,
        sum(input_cost_after_usd) as input_cost_after_usd,
        sum(input_tokens_before) / nullif(sum(requests_before), 0) as avg_input_before,
        sum(input_tokens_after) / nullif(sum(requests_after), 0) as avg_input_after,
        sum(output_tokens_before) / nullif(sum(requests_before), 0) as avg_output_before,
        sum(output_tokens_after) / nullif(sum(requests_after), 0) as avg_output_after
    from segmented
    where segment = 'rest'
    group by spike_id
),

rest_models as (
    select
        spike_id,
        model,
        sum(requests_before) / nullif(sum(sum(requests_before)) over (partition by spike_id), 0)
            as share_before,
        sum(requests_after) / nullif(sum(sum(requests_after)) over (partition by spike_id), 0)
            as share_after
    from segmented
    where segment = 'rest'
    group by spike_id, model
),

model_shift as (
    select distinct on (spike_id)
        spike_id,
        model,
        coalesce(share_after, 0) - coalesce(share_before, 0) as share_rise
    from rest_models
    order by spike_id, coalesce(share_after, 0) - coalesce(share_before, 0) desc, model
),

rest_effects as (
    select
        rest.spike_id,
        rest.requests_after / nullif(rest.requests_before, 0) - 1 as request_growth,
        (rest.requests_after - rest.requests_before)
        * rest.cost_before_usd / nullif(rest.requests_before, 0) as volume_effect_usd,
        rest.input_cost_after_usd
        - rest.input_cost_before_usd * rest.requests_after / nullif(rest.requests_before, 0)
            as input_effect_usd,
        (rest.cost_after_usd - rest.input_cost_after_usd)
        - (rest.cost_before_usd - rest.input_cost_before_usd)
        * rest.requests_after / nullif(rest.requests_before, 0) as output_effect_usd,
        rest.avg_input_after / nullif(rest.avg_input_before, 0) - 1 as avg_input_growth,
        rest.avg_output_after / nullif(rest.avg_output_before, 0) - 1 as avg_output_growth,
        traffic.p95_input_tokens_after / nullif(traffic.p95_input_tokens_before, 0) - 1
            as p95_input_growth,
        traffic.p95_output_tokens_after / nullif(traffic.p95_output_tokens_before, 0) - 1
            as p95_output_growth,
        model_shift.model as rising_model,
        coalesce(model_shift.share_rise, 0) as model_share_rise
    from rest
    left join traffic
        on rest.spike_id = traffic.spike_id
    left join model_shift
        on rest.spike_id = model_shift.spike_id
),

rest_signals as (
    select
        *,
        coalesce(request_growth >= {{ var('diagnosis_traffic_growth') }}, false) as traffic_moved,
        coalesce(
            greatest(avg_input_growth, p95_input_growth) >= {{ var('diagnosis_token_growth') }},
            false
        ) as input_moved,
        coalesce(
            greatest(avg_output_growth, p95_output_growth) >= {{ var('diagnosis_token_growth') }},
            false
        ) as output_moved,
        model_share_rise >= {{ var('diagnosis_model_share_rise') }} as model_moved
    from rest_effects
),

-- candidate causes with their contribution
trigger_growth as (
    select distinct on (spike_id)
        spike_id,
        trigger_type
    from (
        select
            spike_id,
            trigger_type,
            sum(cost_after_usd - cost_before_usd) as excess_usd
        from segmented
        where segment = 'hidden_recompute'
        group by spike_id, trigger_type
    ) as by_trigger
    order by spike_id, excess_usd desc, trigger_type
),

segment_causes as (
    select
        segmented.spike_id,
        segmented.segment as cause,
        case when segmented.segment = 'feature_concentration' then segmented.feature end as feature,
        segmented.storming_tool as tool_name,
        case when segmented.segment = 'hidden_recompute' then trigger_growth.trigger_type end
            as trigger_type,
        null::text as model,
        sum(segmented.cost_after_usd - segmented.cost_before_usd) as contribution_usd,
        true as is_signal
    from segmented
    left join trigger_growth
        on segmented.spike_id = trigger_growth.spike_id
    where segmented.segment != 'rest'
    group by
        segmented.spike_id,
        segmented.segment,
        case when segmented.segment = 'feature_concentration' then segmented.feature end,
        segmented.storming_tool,
        case when segmented.segment = 'hidden_recompute' then trigger_growth.trigger_type end
),

rest_causes as (
    select
        spike_id,
        'traffic_increase' as cause,
        null::text as feature,
        null::text as tool_name,
        null::text as trigger_type,
        null::text as model,
        volume_effect_usd as contribution_usd,
        traffic_moved as is_signal
    from rest_signals

    union all

    select
        spike_id,
        'context_bloat' as cause,
        null::text as feature,
        null::text as tool_name,
        null::text as trigger_type,
        null::text as model,
        input_effect_usd as contribution_usd,
        input_moved as is_signal
    from rest_signals

    union all

    select
        spike_id,
        'output_growth' as cause,
        null::text as feature,
        null::text as tool_name,
        null::text as trigger_type,
        case when model_moved then rising_model end as model,
        output_effect_usd
        + case when model_moved and not input_moved then input_effect_usd else 0 end
            as contribution_usd,
        output_moved or model_moved as is_signal
    from rest_signals
),

candidates as (
    select * from segment_causes
    union all
    select * from rest_causes
),

excess as (
    select
        spike_id,
        sum(cost_after_usd - cost_before_usd) as excess_usd
    from inference
    group by spike_id
),

judged as (
    select
        candidates.*,
        excess.excess_usd,
        candidates.is_signal
        and candidates.contribution_usd > 0
        and candidates.contribution_usd >= {{ var('diagnosis_min_share') }} * excess.excess_usd
            as is_found
    from candidates
    inner join excess
        on candidates.spike_id = excess.spike_id
),

chosen as (
    -- the causes found; a spike where none is found keeps its largest candidate
    select
        *,
        count(*) filter (where is_found) over (partition by spike_id) as causes_found,
        row_number() over (partition by spike_id order by contribution_usd desc, cause) as candidate_rank
    from judged
),

causes as (
    select
        *,
        row_number() over (partition by spike_id order by contribution_usd desc, cause) as rank
    from chosen
    where is_found or (causes_found = 0 and candidate_rank = 1)
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
        and change_events.changed_at < spikes.spike_start
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
                ((totals.requests_after - totals.requests_before)
                * totals.cost_before_usd / nullif(totals.requests_before, 0))::numeric, 6
            ),
            'rate_effect_usd', round(
                (totals.cost_after_usd - totals.requests_after
                * totals.cost_before_usd / nullif(totals.requests_before, 0))::numeric, 6
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
),

final as (
    select
        causes.spike_id,
        causes.rank::integer as rank,
        causes.cause,
        causes.feature,
        causes.tool_name,
        causes.trigger_type,
        causes.model,
        causes.contribution_usd::numeric as contribution_usd,
        evidence.common || jsonb_build_object(
            'cause', causes.cause,
            'detail', coalesce(causes.trigger_type, causes.tool_name, causes.feature, causes.model),
            'contribution_usd', round(causes.contribution_usd::numeric, 6),
            'share_of_excess', round(
                (causes.contribution_usd / nullif(causes.excess_usd, 0))::numeric, 4
            ),
            'signal_found', causes.is_found
        ) as evidence,
        {{ cause_text(
            'catalogue.fix',
            'coalesce(causes.trigger_type, causes.tool_name, causes.feature, causes.model)',
            'catalogue.default_detail'
        ) }} as recommended_fix
    from causes
    inner join evidence
        on causes.spike_id = evidence.spike_id
    left join catalogue
        on causes.cause = catalogue.cause
)

select * from final

{#-
  The diagnosis' candidate causes per spike, judged and ranked (spike_diagnosis, steps 2-5).

  The segments of int_diagnosis_segments give tool_retry_storm, hidden_recompute (`trigger_type`
  = the one whose cost grew most) and feature_concentration. The rest is decomposed: volume effect
  (more requests at the old cost per request) -> traffic_increase; rate effect (requests_after *
  change of cost per request) -> its input part -> context_bloat when input tokens per request
  (avg or p95) rose; its output part (and the input part when only the model mix moved) ->
  output_growth, `model` = the model whose share grew.

  A cause is found when its signal moved (the diagnosis_* vars) and it explains at least
  `diagnosis_min_share` of the excess; a spike with none keeps its largest candidate as rank 1.
-#}

with

inference as (
    select * from {{ ref('int_diagnosis_inference') }}
),

segmented as (
    select * from {{ ref('int_diagnosis_segments') }}
),

traffic as (
    select * from {{ ref('int_diagnosis_traffic') }}
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
)

select * from causes

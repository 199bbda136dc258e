{#-
  The diagnosis' segments (spike_diagnosis, steps 3, 5 and 6): every inference group of a spike
  window (spike, feature, trigger type, model) assigned to the deepest cause that explains it,
  so each dollar of the excess is explained once:

  1. tool_retry_storm: `retry` events of the features calling a tool whose failure rate or
     retries rose (int_diagnosis_tool_signals). The retries are the symptom, the tool the cause.
  2. hidden_recompute: the other hidden events (undo, retry, auto_save), when the hidden ratio
     rose by `diagnosis_hidden_ratio_rise`.
  3. feature_concentration: the remaining events of one feature whose requests grew at least
     `diagnosis_feature_growth` times faster than the others' and that carries at least
     `diagnosis_feature_share` of the remaining excess.
  4. rest: decomposed by int_diagnosis_causes.

  Each group also gets its input-token cost at per-model prices fitted by least squares
  (cost = input_price * input_tokens + output_price * output_tokens), which splits a change of
  cost per request into its input and output parts.
-#}

with

inference as (
    select * from {{ ref('int_diagnosis_inference') }}
),

tools as (
    select * from {{ ref('int_diagnosis_tools') }}
),

tool_signals as (
    select * from {{ ref('int_diagnosis_tool_signals') }}
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
)

select * from segmented

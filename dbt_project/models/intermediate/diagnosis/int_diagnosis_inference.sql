{#-
  Inference facts of each spike window against its baseline window, by feature, trigger type and
  model (runbook steps 2-5): `_before` is the expected value over the spike's hours (weighted
  baseline hours, see int_diagnosis_windows), `_after` what the spike hours did. The `fit_` sums
  (over hourly rows of both windows) let the diagnosis estimate each model's price per input and
  per output token by least squares, to split a cost-per-request change into input and output.
-#}

with

windows as (
    select * from {{ ref('int_diagnosis_windows') }}
),

facts as (
    select * from {{ ref('int_inference_hourly_facts') }}
    where hour in (select windows.hour from windows)
),

joined as (
    select
        windows.spike_id,
        windows.period,
        windows.weight,
        facts.feature,
        facts.trigger_type,
        facts.model,
        facts.is_hidden,
        facts.requests::float8 as requests,
        facts.cost_usd::float8 as cost_usd,
        facts.sum_input_tokens::float8 as input_tokens,
        facts.sum_output_tokens::float8 as output_tokens
    from windows
    inner join facts
        on windows.hour = facts.hour
),

final as (
    select
        spike_id,
        feature,
        trigger_type,
        model,
        bool_or(is_hidden) as is_hidden,
        coalesce(sum(weight * requests) filter (where period = 'baseline'), 0) as requests_before,
        coalesce(sum(requests) filter (where period = 'spike'), 0) as requests_after,
        coalesce(sum(weight * cost_usd) filter (where period = 'baseline'), 0) as cost_before_usd,
        coalesce(sum(cost_usd) filter (where period = 'spike'), 0) as cost_after_usd,
        coalesce(sum(weight * input_tokens) filter (where period = 'baseline'), 0)
            as input_tokens_before,
        coalesce(sum(input_tokens) filter (where period = 'spike'), 0) as input_tokens_after,
        coalesce(sum(weight * output_tokens) filter (where period = 'baseline'), 0)
            as output_tokens_before,
        coalesce(sum(output_tokens) filter (where period = 'spike'), 0) as output_tokens_after,
        sum(input_tokens * input_tokens) as fit_input_sq,
        sum(output_tokens * output_tokens) as fit_output_sq,
        sum(input_tokens * output_tokens) as fit_input_output,
        sum(cost_usd * input_tokens) as fit_cost_input,
        sum(cost_usd * output_tokens) as fit_cost_output,
        sum(cost_usd) as fit_cost,
        sum(input_tokens + output_tokens) as fit_tokens
    from joined
    group by spike_id, feature, trigger_type, model
)

select * from final

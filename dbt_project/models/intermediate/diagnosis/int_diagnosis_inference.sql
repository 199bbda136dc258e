{#-
  Inference facts of each spike window against its baseline window, by feature, trigger type and
  model (runbook steps 2-5): `_before` is the expected value over the spike's hours (weighted
  baseline hours, see int_diagnosis_windows), `_after` what the spike hours did. The `fit_` sums
  (over hourly rows of both windows) let the diagnosis estimate each model's price per input and
  per output token by least squares, to split a cost-per-request change into input and output.
  The sum over the spike's hours of int_diagnosis_slot_inference (exact numerics, so the same
  whatever pass built each hour).
-#}

with

slot_inference as (
    select * from {{ ref('int_diagnosis_slot_inference') }}
    -- a slot without facts keeps one row with null keys
    where feature is not null
),

final as (
    select
        spike_id,
        feature,
        trigger_type,
        model,
        bool_or(is_hidden) as is_hidden,
        {{ as_double('coalesce(sum(requests_before), 0)') }} as requests_before,
        {{ as_double('coalesce(sum(requests_after), 0)') }} as requests_after,
        {{ as_double('coalesce(sum(cost_before_usd), 0)') }} as cost_before_usd,
        {{ as_double('coalesce(sum(cost_after_usd), 0)') }} as cost_after_usd,
        {{ as_double('coalesce(sum(input_tokens_before), 0)') }} as input_tokens_before,
        {{ as_double('coalesce(sum(input_tokens_after), 0)') }} as input_tokens_after,
        {{ as_double('coalesce(sum(output_tokens_before), 0)') }} as output_tokens_before,
        {{ as_double('coalesce(sum(output_tokens_after), 0)') }} as output_tokens_after,
        {{ as_double('sum(fit_input_sq)') }} as fit_input_sq,
        {{ as_double('sum(fit_output_sq)') }} as fit_output_sq,
        {{ as_double('sum(fit_input_output)') }} as fit_input_output,
        {{ as_double('sum(fit_cost_input)') }} as fit_cost_input,
        {{ as_double('sum(fit_cost_output)') }} as fit_cost_output,
        {{ as_double('sum(fit_cost)') }} as fit_cost,
        {{ as_double('sum(fit_tokens)') }} as fit_tokens
    from slot_inference
    group by spike_id, feature, trigger_type, model
)

-- in key order: the float sums downstream add these rows in the order they are read, so a
-- table built by any sequence of passes gives the same digits as a full refresh
select * from final
order by spike_id, feature, trigger_type, model

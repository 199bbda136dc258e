{#-
  Runbook steps 2-6 for every spike, as the triage report shows them: one row per spike, step,
  metric and subject (a trigger type, feature or tool; null for a spike-wide metric).

  Why one file past 300 lines: its bulk is `metrics`, one union branch per runbook metric, each a
  few lines reading the same window aggregates; a model per step would repeat those aggregates
  (or add five models for analysts to find) to save no logic.

  `before` is the baseline window's value, `after` the spike window's (int_diagnosis_windows:
  the spike's complete hours against the same hours of day on its baseline days, each weighted
  so a baseline sum is the expected value over the spike's hours), the same windows and facts
  as marts.spike_diagnosis. `per hour` metrics divide by the spike's hours; `over the window`
  ones are sums over them. `change` = after - before, `growth` = after / before - 1. `is_signal`
  is the runbook's check, judged here with the diagnosis vars (`threshold` says which): the
  report renders these verdicts and never re-judges them. `subject_rank` orders the subjects of
  a step (the largest cost change, the tool whose failure rate rose most, first).
-#}

with

windows as (
    select * from {{ ref('int_diagnosis_windows') }}
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

window_hours as (
    select
        spike_id,
        count(*)::float8 as hours
    from windows
    where period = 'spike'
    group by spike_id
),

totals as (
    select
        inference.spike_id,
        window_hours.hours,
        sum(inference.requests_before) as requests_before,
        sum(inference.requests_after) as requests_after,
        sum(inference.cost_before_usd) as cost_before_usd,
        sum(inference.cost_after_usd) as cost_after_usd,
        coalesce(sum(inference.requests_before) filter (where inference.is_hidden), 0)
            as hidden_before,
        coalesce(sum(inference.requests_after) filter (where inference.is_hidden), 0)
            as hidden_after,
        coalesce(sum(inference.cost_before_usd) filter (where inference.is_hidden), 0)
            as hidden_cost_before_usd,
        coalesce(sum(inference.cost_after_usd) filter (where inference.is_hidden), 0)
            as hidden_cost_after_usd,
        sum(inference.input_tokens_before) as input_tokens_before,
        sum(inference.input_tokens_after) as input_tokens_after,
        sum(inference.output_tokens_before) as output_tokens_before,
        sum(inference.output_tokens_after) as output_tokens_after
    from inference
    inner join window_hours
        on inference.spike_id = window_hours.spike_id
    group by inference.spike_id, window_hours.hours
),

by_trigger as (
    select
        inference.spike_id,
        inference.trigger_type,
        window_hours.hours,
        sum(inference.requests_before) as requests_before,
        sum(inference.requests_after) as requests_after,
        sum(inference.cost_before_usd) as cost_before_usd,
        sum(inference.cost_after_usd) as cost_after_usd
    from inference
    inner join window_hours
        on inference.spike_id = window_hours.spike_id
    group by inference.spike_id, inference.trigger_type, window_hours.hours
),

by_feature as (
    select
        inference.spike_id,
        inference.feature,
        window_hours.hours,
        sum(inference.requests_before) as requests_before,
        sum(inference.requests_after) as requests_after,
        sum(inference.cost_before_usd) as cost_before_usd,
        sum(inference.cost_after_usd) as cost_after_usd
    from inference
    inner join window_hours
        on inference.spike_id = window_hours.spike_id
    group by inference.spike_id, inference.feature, window_hours.hours
),

feature_shares as (
    select
        *,
        cost_after_usd - cost_before_usd as cost_change_usd,
        sum(cost_after_usd - cost_before_usd) over (partition by spike_id) as all_change_usd
    from by_feature
),

by_tool as (
    select
        tools.spike_id,
        tools.tool_name,
        window_hours.hours,
        sum(tools.calls_before) as calls_before,
        sum(tools.calls_after) as calls_after,
        sum(tools.failures_before) as failures_before,
        sum(tools.failures_after) as failures_after,
        sum(tools.retries_before) as retries_before,
        sum(tools.retries_after) as retries_after
    from tools
    inner join window_hours
        on tools.spike_id = window_hours.spike_id
    group by tools.spike_id, tools.tool_name, window_hours.hours
),

tool_rates as (
    select
        *,
        failures_before / nullif(calls_before, 0) as failure_rate_before,
        failures_after / nullif(calls_after, 0) as failure_rate_after,
        retries_before / nullif(calls_before, 0) as avg_retries_before,
        retries_after / nullif(calls_after, 0) as avg_retries_after
    from by_tool
),

metrics as (
    -- One branch a metric, written as the rows of a table: the first branch names the columns,
    -- the others give values in the same order (aliases and a line per value would bury the
    -- rows), hence no aliasing.expression and layout.select_targets in this CTE.
    -- noqa: disable=AL03,LT09
    -- step 2: rule out a traffic increase
    select
        spike_id, 2 as step, 1 as sort_order, 'requests_per_hour' as metric,
        null::text as subject, 'count' as unit, 'marts.cost_hourly' as source_mart,
        requests_before / hours as before, requests_after / hours as after,
        'diagnosis_traffic_growth' as threshold_var,
        {{ var('diagnosis_traffic_growth') }}::float8 as threshold, 'growth' as judged_on
    from totals
    union all
    select
        totals.spike_id, 2, 2, 'unique_users_per_hour', null, 'count', 'marts.cost_hourly',
        traffic.unique_users_before, traffic.unique_users_after, null, null, null
    from totals
    left join traffic
        on totals.spike_id = traffic.spike_id
    union all
    select
        spike_id, 2, 3, 'cost_per_hour', null, 'usd', 'marts.cost_hourly',
        cost_before_usd / hours, cost_after_usd / hours, null, null, null
    from totals
    union all
    select
        spike_id, 2, 4, 'cost_per_request', null, 'usd', 'marts.cost_hourly',
        cost_before_usd / nullif(requests_before, 0), cost_after_usd / nullif(requests_after, 0),
        null, null, null
    from totals

    -- step 3: hidden recompute
    union all
    select
        spike_id, 3, 1, 'hidden_ratio', null, 'ratio', 'marts.recompute_hourly',
        hidden_before / nullif(requests_before, 0), hidden_after / nullif(requests_after, 0),
        'diagnosis_hidden_ratio_rise', {{ var('diagnosis_hidden_ratio_rise') }}::float8, 'change'
    from totals
    union all
    select
        spike_id, 3, 2, 'hidden_cost_usd', null, 'usd', 'marts.recompute_hourly',
        hidden_cost_before_usd, hidden_cost_after_usd, null, null, null
    from totals
    union all
    select
        spike_id, 3, 3, 'requests_per_hour', trigger_type, 'count', 'marts.trigger_hourly',
        requests_before / hours, requests_after / hours, null, null, null
    from by_trigger
    union all
    select
        spike_id, 3, 4, 'cost_usd', trigger_type, 'usd', 'marts.trigger_hourly',
        cost_before_usd, cost_after_usd, null, null, null
    from by_trigger

    -- step 4: token usage
    union all
    select
        spike_id, 4, 1, 'avg_input_tokens', null, 'tokens', 'marts.tokens_hourly',
        input_tokens_before / nullif(requests_before, 0),
        input_tokens_after / nullif(requests_after, 0),
        'diagnosis_token_growth', {{ var('diagnosis_token_growth') }}::float8, 'growth'
    from totals
    union all
    select
        totals.spike_id, 4, 2, 'p95_input_tokens', null, 'tokens', 'marts.tokens_hourly',
        traffic.p95_input_tokens_before, traffic.p95_input_tokens_after,
        'diagnosis_token_growth', {{ var('diagnosis_token_growth') }}::float8, 'growth'
    from totals
    left join traffic
        on totals.spike_id = traffic.spike_id
    union all
    select
        spike_id, 4, 3, 'avg_output_tokens', null, 'tokens', 'marts.tokens_hourly',
        output_tokens_before / nullif(requests_before, 0),
        output_tokens_after / nullif(requests_after, 0),
        'diagnosis_token_growth', {{ var('diagnosis_token_growth') }}::float8, 'growth'
    from totals
    union all
    select
        totals.spike_id, 4, 4, 'p95_output_tokens', null, 'tokens', 'marts.tokens_hourly',
        traffic.p95_output_tokens_before, traffic.p95_output_tokens_after,
        'diagnosis_token_growth', {{ var('diagnosis_token_growth') }}::float8, 'growth'
    from totals
    left join traffic
        on totals.spike_id = traffic.spike_id

    -- step 5: feature attribution
    union all
    select
        spike_id, 5, 1, 'requests_per_hour', feature, 'count', 'marts.feature_cost_hourly',
        requests_before / hours, requests_after / hours, null, null, null
    from feature_shares
    union all
    select
        spike_id, 5, 2, 'cost_usd', feature, 'usd', 'marts.feature_cost_hourly',
        cost_before_usd, cost_after_usd, null, null, null
    from feature_shares
    union all
    select
        spike_id, 5, 3, 'share_of_cost_change', feature, 'ratio', 'marts.feature_cost_hourly',
        null, case when all_change_usd > 0 then cost_change_usd / all_change_usd end,
        'diagnosis_feature_share', {{ var('diagnosis_feature_share') }}::float8, 'after'
    from feature_shares

    -- step 6: tool call failures
    union all
    select
        spike_id, 6, 1, 'calls_per_hour', tool_name, 'count', 'marts.tool_failures_hourly',
        calls_before / hours, calls_after / hours, null, null, null
    from tool_rates
    union all
    select
        spike_id, 6, 2, 'failure_rate', tool_name, 'ratio', 'marts.tool_failures_hourly',
        failure_rate_before, failure_rate_after,
        'diagnosis_tool_failure_rate_rise',
        {{ var('diagnosis_tool_failure_rate_rise') }}::float8, 'change'
    from tool_rates
    union all
    select
        spike_id, 6, 3, 'avg_retries', tool_name, 'count', 'marts.tool_failures_hourly',
        avg_retries_before, avg_retries_after,
        'diagnosis_tool_retries_rise', {{ var('diagnosis_tool_retries_rise') }}::float8, 'change'
    from tool_rates
    -- noqa: enable=AL03,LT09
),

judged as (
    select
        *,
        after - before as change,
        after / nullif(before, 0) - 1 as growth,
        case judged_on
            when 'growth' then coalesce(after / nullif(before, 0) - 1 >= threshold, false)
            when 'change' then coalesce(after - before >= threshold, false)
            when 'after' then coalesce(after >= threshold, false)
        end as is_signal
    from metrics
),

subject_order as (
    -- triggers and features by their cost change, tools by their failure rate's rise
    select
        spike_id,
        step,
        subject,
        row_number() over (
            partition by spike_id, step
            order by
                case when step = 6 then coalesce(change, 0) end desc nulls last,
                case when step = 6 then after end desc nulls last,
                case when step in (3, 5) then change end desc nulls last,
                subject
        ) as subject_rank
    from judged
    where
        subject is not null
        and metric in ('cost_usd', 'failure_rate')
),

final as (
    select
        judged.spike_id,
        judged.step,
        case judged.step
            when 2 then 'Rule out a traffic increase'
            when 3 then 'Check hidden recompute'
            when 4 then 'Check token usage'
            when 5 then 'Check feature attribution'
            when 6 then 'Check tool call failures'
        end as step_title,
        judged.metric,
        judged.subject,
        subject_order.subject_rank::integer as subject_rank,
        judged.sort_order::integer as sort_order,
        judged.unit,
        judged.source_mart,
        judged.before::float8 as before,
        judged.after::float8 as after,
        judged.change::float8 as change,
        judged.growth::float8 as growth,
        judged.threshold_var,
        judged.threshold,
        judged.is_signal
    from judged
    left join subject_order
        on judged.spike_id = subject_order.spike_id
        and judged.step = subject_order.step
        and judged.subject = subject_order.subject
)

select * from final

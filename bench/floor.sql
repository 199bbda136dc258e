-- The floor: the runbook's step queries written by hand as plain SQL over the raw tables, the
-- way an engineer would materialize them once: deduplicate (and drop the invalid rows the
-- contract quarantines), then one aggregation per mart. `make bench` times each statement.
-- Statements are separated by lines holding only `;;`.
drop schema if exists floor cascade;
;;
create schema floor;
;;
create table floor.events as
select distinct on (event_id) *
from raw.inference_events
where
    nullif(trim(event_id), '') is not null
    and created_at is not null
    and created_at <= now() + interval '1 hour'
    and feature is not null and trigger_type is not null
    and input_tokens >= 0 and output_tokens >= 0 and cost_usd >= 0
order by event_id, created_at;
;;
create table floor.tool_calls as
select distinct on (call_id) *
from raw.tool_calls
where
    nullif(trim(call_id), '') is not null
    and created_at is not null
    and created_at <= now() + interval '1 hour'
    and tool_name is not null and success is not null and retries >= 0
order by call_id, created_at;
;;
create table floor.cost_hourly as
select
    date_trunc('hour', created_at) as hour,
    count(*) as requests,
    count(distinct user_id) as unique_users,
    sum(cost_usd) as total_cost,
    sum(cost_usd) / count(*) as cost_per_request
from floor.events group by 1;
;;
create table floor.cost_daily as
select
    date_trunc('day', created_at) as day,
    count(*) as requests,
    count(distinct user_id) as unique_users,
    sum(cost_usd) as total_cost,
    sum(cost_usd) / count(*) as cost_per_request
from floor.events group by 1;
;;
create table floor.trigger_hourly as
select date_trunc('hour', created_at) as hour, lower(trim(trigger_type)) as trigger_type,
    count(*) as count, sum(cost_usd) as cost
from floor.events group by 1, 2;
;;
create table floor.recompute_hourly as
select
    date_trunc('hour', created_at) as hour,
    count(*) as total,
    sum(case when lower(trim(trigger_type)) in ('undo', 'retry', 'auto_save') then 1 else 0 end)
        as hidden,
    sum(case when lower(trim(trigger_type)) in ('undo', 'retry', 'auto_save') then 1 else 0 end)::float
        / count(*) as hidden_ratio
from floor.events group by 1;
;;
create table floor.recompute_daily as
select
    date_trunc('day', created_at) as day,
    count(*) as total,
    sum(case when lower(trim(trigger_type)) in ('undo', 'retry', 'auto_save') then 1 else 0 end)
        as hidden,
    sum(case when lower(trim(trigger_type)) in ('undo', 'retry', 'auto_save') then 1 else 0 end)::float
        / count(*) as hidden_ratio
from floor.events group by 1;
;;
create table floor.tokens_hourly as
select
    date_trunc('hour', created_at) as hour,
    avg(input_tokens) as avg_input,
    avg(output_tokens) as avg_output,
    percentile_cont(0.95) within group (order by input_tokens) as p95_input,
    percentile_cont(0.95) within group (order by output_tokens) as p95_output
from floor.events group by 1;
;;
create table floor.tokens_daily as
select
    date_trunc('day', created_at) as day,
    avg(input_tokens) as avg_input,
    avg(output_tokens) as avg_output,
    percentile_cont(0.95) within group (order by input_tokens) as p95_input,
    percentile_cont(0.95) within group (order by output_tokens) as p95_output
from floor.events group by 1;
;;
create table floor.feature_cost_hourly as
select date_trunc('hour', created_at) as hour, feature, count(*) as requests,
    sum(cost_usd) as total_cost, sum(cost_usd) / count(*) as cost_per_request
from floor.events group by 1, 2;
;;
create table floor.feature_cost_daily as
select date_trunc('day', created_at) as day, feature, count(*) as requests,
    sum(cost_usd) as total_cost, sum(cost_usd) / count(*) as cost_per_request
from floor.events group by 1, 2;
;;
create table floor.tool_failures_hourly as
select
    date_trunc('hour', created_at) as hour,
    tool_name,
    count(*) as total_calls,
    sum(case when success = false then 1 else 0 end) as failures,
    sum(case when success = false then 1 else 0 end)::float / count(*) as failure_rate,
    avg(retries) as avg_retries
from floor.tool_calls group by 1, 2;
;;
create table floor.tool_failures_daily as
select
    date_trunc('day', created_at) as day,
    tool_name,
    count(*) as total_calls,
    sum(case when success = false then 1 else 0 end) as failures,
    sum(case when success = false then 1 else 0 end)::float / count(*) as failure_rate,
    avg(retries) as avg_retries
from floor.tool_calls group by 1, 2;

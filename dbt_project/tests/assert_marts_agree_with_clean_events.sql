-- A returned row is an hour whose requests or cost (to 1e-9) in cost_hourly differ from the
-- clean staged events of that hour: an incremental run missed or double-counted events. Checks the test
-- window's hours (macros/testing/test_window_start.sql): the hours passes rebuild, each checked many times.
{%- set since = test_window_start(ref('stg_raw__inference_events'), 'created_at') %}
with

events as (
    select
        hour,
        count(*) as requests,
        sum(cost_usd) as total_cost_usd
    from {{ ref('stg_raw__inference_events') }}
    {%- if since %}
        where created_at >= {{ since }}
    {%- endif %}
    group by hour
),

marts as (
    select * from {{ ref('cost_hourly') }}
    {%- if since %}
        where hour >= {{ since }}
    {%- endif %}
),

final as (
    select
        coalesce(events.hour, marts.hour) as hour,
        events.requests as event_requests,
        marts.requests as mart_requests,
        events.total_cost_usd as event_cost_usd,
        marts.total_cost_usd as mart_cost_usd
    from events
    full outer join marts
        on events.hour = marts.hour
    where
        events.requests is distinct from marts.requests
        or (events.total_cost_usd is null) != (marts.total_cost_usd is null)
        -- equal to 1e-9: Spark sums doubles in another order than the mart's (PostgreSQL's
        -- numeric sums are exact, so there they must be equal)
        or abs(events.total_cost_usd - marts.total_cost_usd)
        > 1e-9 * greatest(abs(events.total_cost_usd), abs(marts.total_cost_usd)) + 1e-12
)

select * from final

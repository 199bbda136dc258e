-- Tool calls of each spike window against its baseline window, by tool and calling feature
-- (runbook step 6): expected (`_before`, weighted baseline hours) and actual (`_after`); the sum
-- over the spike's hours of int_diagnosis_slot_tools.
with

slot_tools as (
    select * from {{ ref('int_diagnosis_slot_tools') }}
    -- a slot without calls keeps one row with null keys
    where tool_name is not null
),

final as (
    select
        spike_id,
        tool_name,
        feature,
        {{ as_double('coalesce(sum(calls_before), 0)') }} as calls_before,
        {{ as_double('coalesce(sum(calls_after), 0)') }} as calls_after,
        {{ as_double('coalesce(sum(failures_before), 0)') }} as failures_before,
        {{ as_double('coalesce(sum(failures_after), 0)') }} as failures_after,
        {{ as_double('coalesce(sum(retries_before), 0)') }} as retries_before,
        {{ as_double('coalesce(sum(retries_after), 0)') }} as retries_after
    from slot_tools
    group by spike_id, tool_name, feature
)

-- in key order: the float sums downstream add these rows in the order they are read, so a
-- table built by any sequence of passes gives the same digits as a full refresh
select * from final
order by spike_id, tool_name, feature

-- A row is a spike whose diagnosis is malformed: no rank-1 cause, ranks not 1..n, ranks not in
-- order of contribution, or a cause row without the detail column its cause fills.
with

diagnosis as (
    select * from {{ ref('spike_diagnosis') }}
),

spikes as (
    select * from {{ ref('cost_spikes') }}
),

ordered as (
    select
        *,
        row_number() over (partition by spike_id order by contribution_usd desc, cause) as expected_rank,
        count(*) over (partition by spike_id) as causes
    from diagnosis
),

final as (
    select
        spikes.spike_id,
        ordered.rank,
        ordered.cause
    from spikes
    left join ordered
        on spikes.spike_id = ordered.spike_id
    where
        ordered.spike_id is null
        or ordered.rank != ordered.expected_rank
        or ordered.rank > ordered.causes
        or (ordered.cause = 'hidden_recompute' and ordered.trigger_type is null)
        or (ordered.cause = 'tool_retry_storm' and ordered.tool_name is null)
        or (ordered.cause = 'feature_concentration' and ordered.feature is null)
)

select * from final

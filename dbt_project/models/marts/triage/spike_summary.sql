{#-
  On-call's first screen, one row per spike: since when and whether ongoing, THE excess figure
  (marts.cost_spikes.excess_cost_usd) so far and in the newest complete hour, the root cause with
  its key number and its part of the excess (marts.spike_causes), what is not explained, the
  likely trigger from raw.change_events, and the catalogue's action. The report, the Slack
  message and `make demo` render this row; they compute nothing.

  The likely trigger: the newest change in the 24 hours before `spike_start` whose kind can set
  off the root cause (the catalogue's `trigger_kinds`), preferring one on the cause's feature;
  else the newest change of any kind in that window.
-#}

with

spikes as (
    select * from {{ ref('cost_spikes') }}
),

hours as (
    select * from {{ ref('cost_baseline_hourly') }}
),

causes as (
    select * from {{ ref('spike_causes') }}
),

change_events as (
    select * from {{ source('raw', 'change_events') }}
),

newest as (
    select
        hour as latest_hour,
        total_cost_usd as latest_hour_cost_usd,
        baseline_cost_usd as latest_hour_baseline_usd,
        excess_cost_usd as latest_hour_excess_usd,
        is_spike_hour as latest_hour_is_spike_hour
    from hours
    where is_complete
    order by hour desc
    limit 1
),

explained as (
    select
        spike_id,
        count(*) as causes,
        sum(excess_usd) as explained_usd
    from causes
    group by spike_id
),

root as (
    select * from causes
    where rank = 1
),

candidate_changes as (
    select
        spikes.spike_id,
        change_events.change_id,
        change_events.changed_at,
        change_events.kind,
        change_events.feature,
        change_events.description,
        row_number() over (
            partition by spikes.spike_id
            order by
                coalesce(
                    change_events.kind = any(string_to_array(root.trigger_kinds, ' ')), false
                ) desc,
                coalesce(change_events.feature = root.feature, false) desc,
                change_events.changed_at desc,
                change_events.change_id
        ) as likelihood_rank
    from spikes
    inner join change_events
        on change_events.changed_at >= spikes.spike_start - interval '24 hours'
        and spikes.spike_start > change_events.changed_at
    left join root
        on spikes.spike_id = root.spike_id
),

likely_change as (
    select * from candidate_changes
    where likelihood_rank = 1
),

final as (
    select
        spikes.spike_id,
        spikes.spike_start,
        spikes.spike_end,
        spikes.hours,
        spikes.peak_hour,
        spikes.is_ongoing,
        spikes.total_cost_usd,
        spikes.baseline_cost_usd,
        spikes.excess_cost_usd,
        spikes.pct_above_baseline,
        newest.latest_hour,
        newest.latest_hour_cost_usd,
        newest.latest_hour_baseline_usd,
        newest.latest_hour_excess_usd,
        coalesce(newest.latest_hour_is_spike_hour, false) as latest_hour_is_spike_hour,
        root.cause as root_cause,
        root.title as root_cause_title,
        root.detail_column as root_cause_detail_column,
        root.detail as root_cause_detail,
        root.signal_found as root_cause_signal_found,
        root.excess_usd as root_cause_excess_usd,
        root.share_of_excess as root_cause_share_of_excess,
        root.key_metric,
        root.key_subject,
        root.key_unit,
        root.key_before,
        root.key_after,
        root.key_change,
        root.key_growth,
        root.action,
        coalesce(explained.causes, 0)::integer as causes,
        coalesce(explained.explained_usd, 0) as explained_usd,
        spikes.excess_cost_usd - coalesce(explained.explained_usd, 0) as unexplained_usd,
        likely_change.change_id as trigger_change_id,
        likely_change.changed_at as trigger_changed_at,
        likely_change.kind as trigger_kind,
        likely_change.feature as trigger_feature,
        likely_change.description as trigger_description,
        (extract(epoch from spikes.spike_start - likely_change.changed_at) / 3600.0)::float8
            as trigger_hours_before_start
    from spikes
    left join newest
        on true
    left join root
        on spikes.spike_id = root.spike_id
    left join explained
        on spikes.spike_id = explained.spike_id
    left join likely_change
        on spikes.spike_id = likely_change.spike_id
)

select * from final

{#-
  The causes of each spike as on-call reads them: marts.spike_diagnosis with the catalogue's
  wording (seeds/cause_catalogue.csv) and each cause's part of THE excess figure.

  The diagnosis splits the spike window's cost change against its baseline window; the spike's
  excess (marts.cost_spikes.excess_cost_usd, against the median baseline) is the one figure the
  alert, the incident, the report and the chart quote. Each cause explains `share_of_excess` of
  it: `excess_usd` = share * that figure, so the causes and the rest not explained add up to the
  headline. `key_*` is the cause's key number, its catalogue row of marts.spike_runbook_steps.
-#}

with

diagnosis as (
    select * from {{ ref('spike_diagnosis') }}
),

spikes as (
    select * from {{ ref('cost_spikes') }}
),

catalogue as (
    select * from {{ ref('cause_catalogue') }}
),

steps as (
    select * from {{ ref('spike_runbook_steps') }}
),

pinned as (
    select
        diagnosis.*,
        coalesce(diagnosis.trigger_type, diagnosis.tool_name, diagnosis.feature, diagnosis.model)
            as detail,
        (diagnosis.evidence ->> 'share_of_excess')::float8 as share_of_excess,
        coalesce((diagnosis.evidence ->> 'signal_found')::boolean, false) as signal_found
    from diagnosis
),

final as (
    select
        pinned.spike_id,
        pinned.rank,
        pinned.cause,
        catalogue.title,
        catalogue.detail_column,
        pinned.detail,
        pinned.feature,
        pinned.tool_name,
        pinned.trigger_type,
        pinned.model,
        pinned.signal_found,
        pinned.contribution_usd,
        pinned.share_of_excess,
        (pinned.share_of_excess * spikes.excess_cost_usd)::numeric as excess_usd,
        catalogue.runbook_step,
        catalogue.key_step,
        catalogue.key_metric,
        steps.subject as key_subject,
        steps.unit as key_unit,
        steps.before as key_before,
        steps.after as key_after,
        steps.change as key_change,
        steps.growth as key_growth,
        catalogue.quick_fix,
        {{ cause_text('catalogue.action', 'pinned.detail', 'catalogue.default_detail') }}
            as action,
        pinned.recommended_fix,
        catalogue.trigger_kinds
    from pinned
    inner join spikes
        on pinned.spike_id = spikes.spike_id
    left join catalogue
        on pinned.cause = catalogue.cause
    left join steps
        on pinned.spike_id = steps.spike_id
        and catalogue.key_step = steps.step
        and catalogue.key_metric = steps.metric
        and (
            pinned.detail = steps.subject
            or (steps.subject is null and catalogue.key_step in (2, 3, 4))
        )
)

select * from final

{#-
  Runbook steps 2-7 for every spike: one row per cause found, rank 1 the root cause.

  The causes and their ranking are int_diagnosis_causes' (over the segments of
  int_diagnosis_segments), the evidence int_diagnosis_evidence's, the fix the cause catalogue's
  (seeds/cause_catalogue.csv, the only wording of a cause and its fix).
-#}

with

causes as (
    select * from {{ ref('int_diagnosis_causes') }}
),

evidence as (
    select * from {{ ref('int_diagnosis_evidence') }}
),

catalogue as (
    select * from {{ ref('cause_catalogue') }}
),

final as (
    select
        causes.spike_id,
        causes.rank::integer as rank,
        causes.cause,
        causes.feature,
        causes.tool_name,
        causes.trigger_type,
        causes.model,
        causes.contribution_usd::numeric as contribution_usd,
        evidence.common || jsonb_build_object(
            'cause', causes.cause,
            'detail', coalesce(causes.trigger_type, causes.tool_name, causes.feature, causes.model),
            'contribution_usd', round(causes.contribution_usd::numeric, 6),
            'share_of_excess', round(
                (causes.contribution_usd / nullif(causes.excess_usd, 0))::numeric, 4
            ),
            'signal_found', causes.is_found
        ) as evidence,
        {{ cause_text(
            'catalogue.fix',
            'coalesce(causes.trigger_type, causes.tool_name, causes.feature, causes.model)',
            'catalogue.default_detail'
        ) }} as recommended_fix
    from causes
    inner join evidence
        on causes.spike_id = evidence.spike_id
    left join catalogue
        on causes.cause = catalogue.cause
)

select * from final

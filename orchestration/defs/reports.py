"""The triage report in the Dagster UI: the `ops/incident_report` asset, next to the spike marts.

Materialized after `marts/cost_spikes`, `marts/spike_diagnosis` and `ops/incidents` in every
pass; its metadata is
the report (Markdown, the chart inlined as a PNG data URI), and the same Markdown is logged as an
observation of `marts/cost_spikes`, so the spike asset's own page shows it too.
"""

import dagster as dg
from dagster import AssetExecutionContext

from orchestration.core.database import connect
from orchestration.defs.decision_marts import DECISION_MARTS_KEY
from orchestration.defs.ops_views import INCIDENTS_GROUP, report_summary_metadata
from orchestration.defs.resources import PostgresResource
from orchestration.runbook.triage.report import TriageError, build_report

COST_SPIKES = dg.AssetKey(["marts", "cost_spikes"])
READS = [
    COST_SPIKES,
    dg.AssetKey(["marts", "spike_diagnosis"]),
    dg.AssetKey(["marts", "cost_baseline_hourly"]),
    dg.AssetKey(["marts", "cost_hourly"]),
    dg.AssetKey(["marts", "recompute_hourly"]),
    dg.AssetKey(["marts", "trigger_hourly"]),
    dg.AssetKey(["marts", "tokens_hourly"]),
    dg.AssetKey(["marts", "feature_cost_hourly"]),
    dg.AssetKey(["marts", "tool_failures_hourly"]),
    # On Spark: the copies in PostgreSQL the report reads.
    DECISION_MARTS_KEY,
    # Built after the incident step, so the report names the incident it opened.
    dg.AssetKey(["ops", "incidents"]),
]


def report_metadata(url: str) -> tuple[dict[str, dg.MetadataValue], str]:
    """The asset's metadata and a one-line description, from the triage report at `url`."""
    try:
        with connect(url) as conn:
            report = build_report(conn)
    except TriageError as err:
        text = f"No triage report: {err}"
        return {"report": dg.MetadataValue.md(text)}, text
    # The five-line summary first (readable without a click), then the report and the chart
    # as Markdown the UI renders, the PNG embedded (a local path means nothing to a browser).
    metadata: dict[str, dg.MetadataValue] = {
        **report_summary_metadata(report.markdown),
        "report": dg.MetadataValue.md(report.with_inline_chart()),
    }
    chart = report.chart_markdown()
    if chart:
        metadata["chart"] = dg.MetadataValue.md(chart)
    if report.spike_id:
        metadata["spike_id"] = dg.MetadataValue.text(report.spike_id)
    title = report.markdown.split("\n", 1)[0].lstrip("# ")
    return metadata, title


def incident_report_assets(asset_keys: set[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """The report asset, when the marts it reads are assets of this code location."""
    deps = [key for key in READS if key in asset_keys]
    if COST_SPIKES not in deps:
        return []

    @dg.asset(
        key=dg.AssetKey(["ops", "incident_report"]),
        deps=deps,
        group_name=INCIDENTS_GROUP,
        kinds={"python", "markdown"},
        description=(
            "The Cost Spike Runbook worked through for the latest spike (`costwatch triage`): "
            "each step's finding with its numbers, the ranked causes, the mitigation, and a "
            "chart of hourly cost against baseline."
        ),
    )
    def incident_report(
        context: AssetExecutionContext, database: PostgresResource
    ) -> dg.MaterializeResult:
        metadata, title = report_metadata(database.url)
        context.log.info(f"triage report: {title}")
        context.log_event(
            dg.AssetObservation(
                asset_key=COST_SPIKES,
                description=title,
                metadata={"triage_report": metadata["report"]},
            )
        )
        return dg.MaterializeResult(metadata=metadata)

    return [incident_report]

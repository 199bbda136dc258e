"""The incident step in Dagster: the `ops/incidents` asset of the pass, the sensors that launch
runs when it has work, the failure hook, and the `cost_spikes` asset check.

The asset does the work (runbook steps 7-8: open, update, escalate, resolve, reopen, follow up,
cost cap, alert delivery) with the run's log and metadata. Sensors only launch runs, with a
`run_key`, and say why they skip.
"""

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import psycopg
from dagster import AssetExecutionContext

from orchestration.core.database import DatabaseError, connect, first_line
from orchestration.defs import ops_views
from orchestration.defs.decision_marts import DECISION_MARTS_KEY
from orchestration.defs.resources import PostgresResource
from orchestration.runbook.incidents import engine

COST_SPIKES = dg.AssetKey(["marts", "cost_spikes"])
SPIKE_DIAGNOSIS = dg.AssetKey(["marts", "spike_diagnosis"])
COST_BASELINE = dg.AssetKey(["marts", "cost_baseline_hourly"])
FEATURE_BASELINE = dg.AssetKey(["marts", "feature_cost_baseline_hourly"])
INCIDENTS = dg.AssetKey(["ops", "incidents"])
# The detection models: a failed build or error check of one of them stops the incident step.
DETECTION = (COST_BASELINE, COST_SPIKES, SPIKE_DIAGNOSIS)
INCIDENTS_JOB_NAME = "costwatch_incidents"


def utcnow() -> datetime:
    """The incident step's clock (tests replace it)."""
    return datetime.now(UTC)


def failed_detection_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Error-severity checks of the detection models that failed in this run."""
    failed = []
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    for entry in records:
        evaluation = entry.dagster_event.event_specific_data
        if (
            evaluation.asset_key in DETECTION
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            failed.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return failed


def run_incident_step(
    context: AssetExecutionContext, database: PostgresResource
) -> dg.MaterializeResult:
    failed = failed_detection_checks(context.instance, context.run_id)
    error = f"detection checks failed: {', '.join(failed)}" if failed else None
    url = database.url
    report = engine.tick(
        url,
        now=utcnow(),
        settings=database.incident_settings(),
        log=context.log,
        pipeline_error=error,
        run_id=context.run_id,
    )
    context.log.info(report.summary())
    with connect(url) as conn:  # what the UI shows first: the incidents as they stand now
        metadata: dict[str, Any] = ops_views.incident_metadata(conn)
    metadata.update(
        {
            "summary": report.summary(),
            **report.metadata(),
            "problems": "; ".join([*report.problems, *report.errors, *([error] if error else [])]),
            "next_due_at": report.next_due_at.isoformat() if report.next_due_at else "",
        }
    )
    return dg.MaterializeResult(metadata=metadata)


def incident_assets(asset_keys: set[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """`ops/incidents`, when the detection models are assets of this code location."""
    if COST_SPIKES not in asset_keys:
        return []
    # (on Spark, after the copy of the marts it reads into PostgreSQL)
    deps = [key for key in (*DETECTION, FEATURE_BASELINE, DECISION_MARTS_KEY) if key in asset_keys]

    @dg.asset(
        key=INCIDENTS,
        deps=deps,
        group_name=ops_views.INCIDENTS_GROUP,
        kinds={"python", "postgres"},
        description=(
            "Runbook steps 7-8: one incident per spike of marts.cost_spikes, opened once its "
            "diagnosis is built; updated, escalated, resolved, reopened and followed up; the "
            "cost cap; every alert delivered and retried. Only a pipeline_failed alert when the "
            "detection models or their error checks failed."
        ),
    )
    def incidents(
        context: AssetExecutionContext, database: PostgresResource
    ) -> dg.MaterializeResult:
        return run_incident_step(context, database)

    return [incidents]


@dg.failure_hook(required_resource_keys={"database"})
def pipeline_failed_hook(context: dg.HookContext) -> None:
    """A step of the pass failed (a dbt model, an expectation suite): queue `pipeline_failed`,
    since the incident step downstream of it will not run."""
    message = first_line(context.op_exception) if context.op_exception else "a step failed"
    error = f"step {context.step_key} of run {context.run_id[:8]} failed: {message}"
    try:
        database = context.resources.database
        report = engine.notify_pipeline_failure(
            database.url,
            error=error,
            run_id=context.run_id,
            now=utcnow(),
            settings=database.incident_settings(),
        )
        context.log.info(report.summary())
    except DatabaseError as err:
        context.log.error(f"pipeline_failed alert not queued: {first_line(err)}")


# --------------------------------------------------------------------------- sensors


def _cursor(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def evaluate_due_sensor(
    context: dg.SensorEvaluationContext, now: datetime | None = None
) -> dg.SensorResult:
    """Launch the incident step when the last one said work falls due (a retry, an escalation
    age, a follow-up) and that moment has come."""
    now = now or utcnow()
    records = context.instance.fetch_materializations(INCIDENTS, limit=1).records
    if not records:
        return dg.SensorResult(skip_reason="ops/incidents was never materialized")
    materialization = records[0].asset_materialization
    due_text = materialization.metadata.get("next_due_at") if materialization else None
    due_at = due_text.value if due_text is not None else ""
    if not due_at:
        return dg.SensorResult(skip_reason="no retry, escalation or follow-up pending")
    if datetime.fromisoformat(due_at) > now:
        return dg.SensorResult(skip_reason=f"next retry, escalation or follow-up at {due_at}")
    cursor = _cursor(context.cursor)
    if cursor.get("launched_for") == due_at:
        return dg.SensorResult(skip_reason=f"a run for {due_at} was already requested")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"incidents-due-{due_at}")],
        cursor=json.dumps({"launched_for": due_at}),
    )


@dg.sensor(
    name="incident_due_sensor",
    job_name=INCIDENTS_JOB_NAME,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches the incident step when an alert retry, escalation or follow-up is due.",
)
def incident_due_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    return evaluate_due_sensor(context)


def raw_data_marker(url: str) -> str | None:
    """What changes when the application writes raw events: the newest `created_at`."""
    with connect(url) as conn:
        row = conn.execute("select max(created_at) from raw.inference_events").fetchone()
    return row[0].isoformat() if row and row[0] is not None else None


def evaluate_raw_data_sensor(context: dg.SensorEvaluationContext, url: str) -> dg.SensorResult:
    """Launch a pass when raw events newer than the last launched pass arrived."""
    try:
        marker = raw_data_marker(url)
    except DatabaseError as err:
        return dg.SensorResult(skip_reason=f"database unavailable: {first_line(err)}")
    except psycopg.errors.UndefinedTable:
        return dg.SensorResult(skip_reason="no raw tables yet: run `costwatch db init`")
    except psycopg.Error as err:  # the database went away mid-query, a permission: next tick
        return dg.SensorResult(skip_reason=f"raw events unreadable: {first_line(err)}")
    if marker is None:
        return dg.SensorResult(skip_reason="no raw events yet")
    if _cursor(context.cursor).get("newest") == marker:
        return dg.SensorResult(skip_reason=f"no raw events newer than {marker}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"raw-{marker}")],
        cursor=json.dumps({"newest": marker}),
    )


def raw_data_sensor_for(job_name: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="raw_data_sensor",
        job_name=job_name,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches a pass when new raw events arrived (at most every 5 minutes).",
    )
    def raw_data_sensor(
        context: dg.SensorEvaluationContext, database: PostgresResource
    ) -> dg.SensorResult:
        return evaluate_raw_data_sensor(context, database.url)

    return raw_data_sensor


@dg.run_failure_sensor(
    name="pipeline_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on-call (once an hour per channel) when a costwatch run dies.",
)
def pipeline_failure_alert(context: dg.RunFailureSensorContext, database: PostgresResource) -> None:
    run = context.dagster_run
    message = context.failure_event.message or "the run failed"
    error = f"run {run.run_id[:8]} of {run.job_name} failed: {first_line(message)}"
    report = engine.notify_pipeline_failure(
        database.url,
        error=error,
        run_id=run.run_id,
        now=utcnow(),
        log=context.log,
        settings=database.incident_settings(),
    )
    context.log.info(report.summary())


def incident_jobs(asset_keys: Iterable[dg.AssetKey]) -> list[Any]:
    if INCIDENTS not in set(asset_keys):
        return []
    return [
        dg.define_asset_job(
            INCIDENTS_JOB_NAME,
            # and what reads its tables (ops/alerts, the report), so the UI stays current
            selection=dg.AssetSelection.assets(INCIDENTS).downstream(),
            description="The incident step: alert retries, escalations, follow-ups; then the "
            "alerts and the report.",
        )
    ]

"""The Dagster side: the incident sensor, the run-failure alert and the `cost_spikes` check.

The sensors hold no logic of their own: they call the same `engine.tick` that `costwatch run`
calls after a pass. The incident sensor's cursor remembers the last materializations of
`marts/cost_spikes` and `marts/spike_diagnosis` it saw and when the engine next has work
without new data (an alert retry, an incident old enough to escalate), so a tick with nothing
to do costs two event-log lookups and no database query.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from orchestration.database import DatabaseError, connect, first_line
from orchestration.incidents import engine, payloads, store
from orchestration.resources import PostgresResource

COST_SPIKES = dg.AssetKey(["marts", "cost_spikes"])
SPIKE_DIAGNOSIS = dg.AssetKey(["marts", "spike_diagnosis"])
WATCHED = (COST_SPIKES, SPIKE_DIAGNOSIS)
SPIKE_CHECK_NAME = "no_sustained_spike_open"


def utcnow() -> datetime:
    """The sensors' clock (tests replace it)."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------- incident sensor


def _latest_storage_ids(instance: dg.DagsterInstance) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for key in WATCHED:
        records = instance.fetch_materializations(key, limit=1).records
        out[key.to_user_string()] = records[0].storage_id if records else None
    return out


def parse_cursor(cursor: str | None) -> dict[str, Any]:
    try:
        value = json.loads(cursor) if cursor else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def evaluate_incident_sensor(
    context: dg.SensorEvaluationContext, url: str, now: datetime | None = None
) -> dg.SensorResult:
    """Run a tick when the detection marts changed or work fell due; else skip, saying why."""
    now = now or utcnow()
    cursor = parse_cursor(context.cursor)
    seen = _latest_storage_ids(context.instance)
    new_data = [key for key, storage_id in seen.items() if storage_id != cursor.get(key)]
    due_at = cursor.get("due")
    due = due_at is not None and datetime.fromisoformat(due_at) <= now
    if cursor and not new_data and not due:
        waiting = f"; next retry or escalation check at {due_at}" if due_at else ""
        return dg.SensorResult(
            skip_reason=f"no new materialization of {' or '.join(seen)}{waiting}",
            cursor=context.cursor,
        )
    try:
        report = engine.tick(url, now=now, log=context.log)
    except DatabaseError as err:
        return dg.SensorResult(skip_reason=f"database unavailable: {first_line(err)}")
    next_cursor = {**seen, "due": report.next_due_at.isoformat() if report.next_due_at else None}
    if report.skipped and "lock" in report.skipped:
        next_cursor = {**cursor, "due": now.isoformat()}  # try again next tick
    return dg.SensorResult(skip_reason=report.summary(), cursor=json.dumps(next_cursor))


@dg.sensor(
    name="incident_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Runbook steps 7-8: opens one incident per spike in marts.cost_spikes, escalates it "
        "after an hour of rising cost, resolves it after two quiet hours, sends and retries "
        "alerts, applies the cost cap."
    ),
)
def incident_sensor(
    context: dg.SensorEvaluationContext, database: PostgresResource
) -> dg.SensorResult:
    return evaluate_incident_sensor(context, database.url)


@dg.run_failure_sensor(
    name="pipeline_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on-call (once an hour per channel) when a costwatch run fails.",
)
def pipeline_failure_alert(context: dg.RunFailureSensorContext, database: PostgresResource) -> None:
    run = context.dagster_run
    message = context.failure_event.message or "the run failed"
    error = f"run {run.run_id[:8]} of {run.job_name} failed: {first_line(message)}"
    report = engine.notify_pipeline_failure(
        database.url, error=error, run_id=run.run_id, now=utcnow(), log=context.log
    )
    context.log.info(report.summary())


incident_sensors = [incident_sensor, pipeline_failure_alert]


# --------------------------------------------------------------------------- asset check

_OPEN_SPIKES = """
select
    s.spike_id, s.spike_start, s.hours, s.excess_cost_usd, s.pct_above_baseline, s.is_ongoing,
    d.cause, d.feature, d.tool_name, d.trigger_type, d.model, d.contribution_usd, d.evidence,
    i.incident_id, i.status as incident_status
from marts.cost_spikes as s
left join marts.spike_diagnosis as d on d.spike_id = s.spike_id and d.rank = 1
left join ops.incidents as i on i.spike_id = s.spike_id
where s.is_ongoing or i.status = 'open' or i.incident_id is null
order by s.spike_start desc
"""


def open_spike_check(url: str) -> dg.AssetCheckResult:
    """Fails (warning) while a sustained spike is open: ongoing, or not yet followed by the two
    quiet complete hours that resolve its incident (the engine's own rule, on the same data)."""
    with connect(url) as conn:
        missing = store.missing_tables(conn, (*store.DETECTION_MARTS, "ops.incidents"))
        if missing:
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"nothing to check yet: {', '.join(missing)} missing",
            )
        rows = [
            row
            for row in store.fetch_dicts(conn, _OPEN_SPIKES)
            if row["is_ongoing"] or not engine.back_under_threshold(conn, row["spike_start"])
        ]
    if not rows:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"open_spikes": 0},
            description="no sustained cost spike open",
        )
    top = rows[0]
    detail = payloads.root_cause_detail(top, top["excess_cost_usd"]) if top["cause"] else None
    metadata: dict[str, Any] = {
        "open_spikes": len(rows),
        "spike_id": top["spike_id"],
        "spike_start": dg.MetadataValue.timestamp(top["spike_start"]),
        "spike_hours": int(top["hours"] or 0),
        "excess_cost_usd": float(top["excess_cost_usd"] or 0),
        "pct_above_baseline": float(top["pct_above_baseline"] or 0),
        "root_cause": top["cause"] or "undiagnosed",
        "ongoing": bool(top["is_ongoing"]),
    }
    if detail:
        metadata["root_cause_detail"] = detail
    if top["incident_id"] is not None:
        metadata["incident_id"] = int(top["incident_id"])
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=(
            f"cost spike {top['spike_id']} since {top['spike_start']:%Y-%m-%d %H:%M} UTC: "
            f"${float(top['excess_cost_usd'] or 0):,.2f} excess, root cause "
            f"{top['cause'] or 'undiagnosed'}"
        ),
    )


def spike_asset_checks(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    """The `cost_spikes` check, when the detection models are part of the dbt project."""
    keys = {key for asset in assets for key in asset.keys}
    if COST_SPIKES not in keys:
        return []
    deps = [SPIKE_DIAGNOSIS] if SPIKE_DIAGNOSIS in keys else []

    @dg.asset_check(
        asset=COST_SPIKES,
        name=SPIKE_CHECK_NAME,
        additional_deps=deps,
        blocking=False,
        description=(
            "Warns while a sustained cost spike is open: its start, excess and root cause are "
            "in the metadata, so the spike shows on the asset, not only in the alert."
        ),
    )
    def no_sustained_spike_open(database: PostgresResource) -> dg.AssetCheckResult:
        return open_spike_check(database.url)

    return [no_sustained_spike_open]

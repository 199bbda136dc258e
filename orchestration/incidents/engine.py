"""One tick of the incident sensors: what runbook steps 7-8 and its escalation do by hand.

A tick, given a database and `now`:
1. opens one incident per spike in `marts.cost_spikes` (root cause, detail and fix from
   `marts.spike_diagnosis`, severity from the excess, follow-up a day later), and queues its
   `opened` alert on every channel;
2. escalates an incident open longer than `escalate_after_minutes` whose hourly cost still rises;
3. resolves an incident once the two newest complete hours since its start are under the spike
   threshold;
4. applies the cost cap (when on);
5. delivers every alert that is due: new ones, and failed ones whose back-off has passed.

Ticks are serialised by an advisory lock and every write is idempotent (unique spike_id, unique
(channel, kind, dedup_key)), so a sensor tick and `costwatch run` at once never double anything.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from orchestration.database import connect, first_line
from orchestration.incidents import channels, costcap, payloads, store
from orchestration.incidents.settings import IncidentSettings, SettingsError

TICK_LOCK_KEY = "costwatch.incidents"
LOCK_WAIT_SECONDS = 30.0
FOLLOW_UP = timedelta(hours=24)
RESOLVE_AFTER_HOURS = 2

_log = logging.getLogger("costwatch.incidents")


@dataclass
class TickReport:
    """What one tick did; `summary()` is the line `costwatch run` prints."""

    skipped: str | None = None
    opened: list[str] = field(default_factory=list)
    recorded_quietly: int = 0
    escalated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    still_open: int = 0
    sent: int = 0
    failed: int = 0
    gave_up: int = 0
    actions: list[str] = field(default_factory=list)
    next_due_at: datetime | None = None
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts: list[str] = []
        if self.skipped:
            parts.append(f"skipped ({self.skipped})")
        else:
            opened = f"{len(self.opened)} opened"
            if self.opened:
                opened += f" ({', '.join(self.opened)})"
            parts.append(opened)
            if self.escalated:
                parts.append(f"{len(self.escalated)} escalated")
            if self.resolved:
                parts.append(f"{len(self.resolved)} resolved")
            if self.recorded_quietly:
                parts.append(f"{self.recorded_quietly} past spikes recorded without alerts")
            parts.append(f"{self.still_open} open")
        alerts = f"{self.sent} alerts sent"
        if self.failed:
            alerts += f", {self.failed} failed (retry later)"
        if self.gave_up:
            alerts += f", {self.gave_up} failed for good"
        parts.append(alerts)
        parts += self.actions
        parts += [f"error: {e}" for e in self.errors]
        return "incidents: " + ", ".join(parts)


# --------------------------------------------------------------------------- entry points


def evaluate_after_pass(url: str, pass_succeeded: bool, error: str | None) -> str | None:
    """What `costwatch run` calls after a pass: one tick, plus a `pipeline_failed` alert."""
    try:
        report = tick(url, pipeline_error=None if pass_succeeded else (error or "the pass failed"))
    except psycopg.Error as err:  # a mart with unexpected columns, a lost connection
        _log.error(f"incident sensors failed: {first_line(err)}")
        return f"incidents: could not evaluate: {first_line(err)}"
    return report.summary()


def deliver_pending(
    url: str, settings: IncidentSettings, now: datetime | None = None
) -> TickReport:
    """Deliver what is due now, under the tick's lock (for `costwatch incidents resolve`)."""
    now = now or datetime.now(UTC)
    report = TickReport()
    with _tick_lock(url) as conn:
        if conn is None:
            report.skipped = "another incident tick holds the lock; it will deliver them"
            return report
        return deliver_due(conn, settings, now, report)


def tick(
    url: str,
    now: datetime | None = None,
    settings: IncidentSettings | None = None,
    log: Any = None,
    pipeline_error: str | None = None,
    run_id: str | None = None,
) -> TickReport:
    """One evaluation of the incident sensors' logic against the database at `url`."""
    now = now or datetime.now(UTC)
    log = log or _log
    report = TickReport()
    try:
        settings = settings or IncidentSettings.from_env()
    except SettingsError as err:
        report.skipped = str(err)
        log.error(f"incident sensors skipped: {err}")
        return report
    with _tick_lock(url) as conn:
        if conn is None:
            report.skipped = "another incident tick holds the lock"
            return report
        if pipeline_error is not None:
            _queue_pipeline_failed(conn, settings, now, pipeline_error, run_id)
        missing = store.missing_tables(conn, store.DETECTION_MARTS)
        if missing:
            report.skipped = (
                f"detection marts missing: {', '.join(missing)} (no pass built them yet)"
            )
            log.info(f"incident sensors: {report.skipped}")
        else:
            _evaluate_spikes(conn, settings, now, report, log)
            _apply_cost_cap(conn, settings, now, report, log)
        deliver_due(conn, settings, now, report, log)
        report.still_open = len(store.open_incidents(conn))
        report.next_due_at = _next_due(conn, settings, now)
    return report


@contextlib.contextmanager
def _tick_lock(url: str) -> Iterator[psycopg.Connection | None]:
    """A connection holding the tick's advisory lock (None if another tick kept it 30 s)."""
    conn = connect(url, autocommit=True)
    try:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while not conn.execute(
            "select pg_try_advisory_lock(hashtext(%s))", (TICK_LOCK_KEY,)
        ).fetchone()[0]:
            if time.monotonic() >= deadline:
                yield None
                return
            time.sleep(0.2)
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()  # ends the session, releasing the lock


# --------------------------------------------------------------------------- incidents


def incident_values(
    spike: Mapping[str, Any],
    diagnoses: Sequence[Mapping[str, Any]],
    now: datetime,
    settings: IncidentSettings | None = None,
) -> dict[str, Any]:
    """The incident row for a spike: runbook step 8's record, filled from the diagnosis."""
    root = diagnoses[0] if diagnoses else {}
    cause = root.get("cause") or "undiagnosed"
    settings = settings or IncidentSettings()
    severity = payloads.severity_for(
        spike.get("excess_cost_usd"),
        spike.get("pct_above_baseline"),
        settings.severity_thresholds_usd,
    )
    values = {
        "spike_id": spike["spike_id"],
        "status": "open",
        "severity": severity,
        "opened_at": now,
        "spike_start": spike.get("spike_start"),
        "root_cause": cause,
        "root_cause_detail": payloads.root_cause_detail(root, spike.get("excess_cost_usd"))
        if root
        else "no cause found in marts.spike_diagnosis: work the runbook by hand",
        "mitigation_recommended": payloads.mitigation_for(
            root.get("cause"),
            feature=root.get("feature"),
            tool_name=root.get("tool_name"),
            trigger_type=root.get("trigger_type"),
            model=root.get("model"),
            fallback=root.get("recommended_fix"),
        ),
        "alert_created": False,
        "follow_up_at": now + FOLLOW_UP,
        "excess_cost_usd": spike.get("excess_cost_usd"),
        "pct_above_baseline": spike.get("pct_above_baseline"),
    }
    return values


def report_markdown(
    conn: psycopg.Connection,
    incident: Mapping[str, Any],
    spike: Mapping[str, Any],
    diagnoses: Sequence[Mapping[str, Any]],
) -> str:
    """The incident's `report_md`: the triage report `costwatch triage` prints (short summary
    when it cannot be built, so a report never stops an incident from opening)."""
    return incident_report(conn, incident, spike, diagnoses)[0]


def incident_report(
    conn: psycopg.Connection,
    incident: Mapping[str, Any],
    spike: Mapping[str, Any],
    diagnoses: Sequence[Mapping[str, Any]],
) -> tuple[str, bytes | None]:
    """`report_md` and `chart_png` of an incident being opened (orchestration.triage)."""
    from orchestration.triage import incident_report as triage_report

    report = triage_report(conn, spike["spike_id"], incident)
    if report is None:
        return payloads.summary_report(incident, spike, diagnoses), None
    return report.markdown, report.chart_png


def _evaluate_spikes(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    report: TickReport,
    log: Any,
) -> None:
    spikes = store.spikes(conn)
    latest = store.complete_hours(conn, limit=1)
    latest_hour = latest[0] if latest else None
    by_spike = store.diagnoses(conn, [s["spike_id"] for s in spikes])
    known = store.known_spike_ids(conn, [s["spike_id"] for s in spikes])
    for spike in spikes:
        diagnoses = by_spike.get(spike["spike_id"], [])
        if spike["spike_id"] in known:
            store.refresh_open_incident(
                conn,
                spike,
                payloads.severity_for(
                    spike.get("excess_cost_usd"),
                    spike.get("pct_above_baseline"),
                    settings.severity_thresholds_usd,
                ),
            )
            continue
        with conn.transaction():
            _open(conn, settings, now, spike, diagnoses, latest_hour, report, log)
    for incident in store.open_incidents(conn):
        # Each state change and its alerts commit together: a crash never loses an alert.
        with conn.transaction():
            _advance(conn, settings, now, incident, report, log)


def _advance(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    incident: dict[str, Any],
    report: TickReport,
    log: Any,
) -> None:
    """Resolve an open incident when its cost is back down, else escalate it if due."""
    incident_id = incident["incident_id"]
    if back_under_threshold(conn, incident["spike_start"]):
        if store.mark_resolved(conn, incident_id, now, "costwatch"):
            report.resolved.append(incident_id)
            log.info(
                f"incident {incident_id} ({incident['spike_id']}) resolved: cost under the "
                f"spike threshold for {RESOLVE_AFTER_HOURS} complete hours"
            )
            queue_incident_alerts(conn, incident_id, "resolved", now, settings)
        return
    if _should_escalate(conn, incident, settings, now) and store.mark_escalated(
        conn, incident_id, now
    ):
        report.escalated.append(incident_id)
        log.warning(
            f"incident {incident_id} ({incident['spike_id']}) escalated: open "
            f"{settings.escalate_after_minutes:g} minutes and cost still rising"
        )
        queue_incident_alerts(conn, incident_id, "escalated", now, settings)


def _open(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    spike: dict[str, Any],
    diagnoses: list[dict[str, Any]],
    latest_hour: dict[str, Any] | None,
    report: TickReport,
    log: Any,
) -> None:
    values = incident_values(spike, diagnoses, now, settings)
    values["opened_hour"] = latest_hour["hour"] if latest_hour else None
    values["opened_hour_excess_usd"] = store.excess(latest_hour)
    # A spike that ended long before the newest data (a backfill, a first install) is
    # recorded for the log but pages nobody.
    spike_end = spike.get("spike_end") or spike.get("spike_start")
    quiet = (
        latest_hour is not None
        and not spike.get("is_ongoing")
        and spike_end is not None
        and latest_hour["hour"] - spike_end > timedelta(hours=settings.alert_window_hours)
    )
    if quiet:
        values.update(status="resolved", resolved_at=now, resolved_by="costwatch (past spike)")
    values["report_md"], values["chart_png"] = incident_report(conn, values, spike, diagnoses)
    incident_id = store.insert_incident(conn, values)
    if incident_id is None:
        return  # another tick opened it first
    if quiet:
        report.recorded_quietly += 1
        log.info(f"incident {incident_id} recorded for past spike {spike['spike_id']} (no alert)")
        return
    root = diagnoses[0] if diagnoses else {}
    subject = root.get("trigger_type") or root.get("tool_name") or root.get("feature") or ""
    report.opened.append(f"{spike['spike_id']}: {values['root_cause']} {subject}".strip())
    log.warning(
        f"incident {incident_id} opened for spike {spike['spike_id']} "
        f"({values['severity']}): {values['root_cause_detail']}"
    )
    queue_incident_alerts(conn, incident_id, "opened", now, settings)


def back_under_threshold(conn: psycopg.Connection, spike_start: datetime) -> bool:
    """Whether a spike is over: what resolves its incident, and what the asset check asks."""
    hours = store.complete_hours(conn, limit=RESOLVE_AFTER_HOURS, since=spike_start)
    return _back_under_threshold(hours)


def _back_under_threshold(hours: list[dict[str, Any]]) -> bool:
    """The two newest complete hours since the spike began are consecutive and not spike hours."""
    if len(hours) < RESOLVE_AFTER_HOURS:
        return False
    if any(h["is_spike_hour"] for h in hours):
        return False
    return hours[0]["hour"] - hours[-1]["hour"] == timedelta(hours=RESOLVE_AFTER_HOURS - 1)


def _should_escalate(
    conn: psycopg.Connection, incident: dict[str, Any], settings: IncidentSettings, now: datetime
) -> bool:
    """Open past the limit, and the cost still rising: the newest complete hour (newer than
    when it opened) is a spike hour costing more than the hour before, or its excess is no
    lower than when the incident opened."""
    if incident["escalated_at"] is not None:
        return False
    if now - incident["opened_at"] < timedelta(minutes=settings.escalate_after_minutes):
        return False
    hours = store.complete_hours(conn, limit=2)
    if not hours or not hours[0]["is_spike_hour"]:
        return False
    newest = hours[0]
    if incident["opened_hour"] is not None and newest["hour"] <= incident["opened_hour"]:
        return False  # no new complete hour since it opened: no evidence either way
    rising = len(hours) == 2 and float(newest["total_cost_usd"] or 0) > float(
        hours[1]["total_cost_usd"] or 0
    )
    newest_excess = store.excess(newest)
    opened_excess = incident["opened_hour_excess_usd"]
    not_receding = (
        newest_excess is not None
        and opened_excess is not None
        and newest_excess >= float(opened_excess)
    )
    return rising or not_receding


# --------------------------------------------------------------------------- alerts


def queue_incident_alerts(
    conn: psycopg.Connection,
    incident_id: int,
    kind: str,
    now: datetime,
    settings: IncidentSettings,
) -> None:
    """One alert of `kind` per channel (the log always; each external channel when set)."""
    incident = store.incident(conn, incident_id)
    if incident is None:
        return
    messages = payloads.incident_payloads(incident, kind)
    key = payloads.dedup_key(incident["spike_id"])
    for channel in ("log", *settings.channels):
        store.queue_alert(
            conn,
            incident_id=incident_id,
            channel=channel,
            kind=kind,
            dedup_key=key,
            payload=messages[channel],
            now=now,
        )


def _queue_pipeline_failed(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    error: str,
    run_id: str | None,
) -> None:
    error = payloads.redact_secrets(first_line(error), settings.secrets)
    messages = payloads.pipeline_failed_payloads(error, now, run_id)
    key = payloads.pipeline_dedup_key(now)
    for channel in ("log", *settings.channels):
        store.queue_alert(
            conn,
            incident_id=None,
            channel=channel,
            kind="pipeline_failed",
            dedup_key=key,
            payload=messages[channel],
            now=now,
        )


def notify_pipeline_failure(
    url: str, error: str, run_id: str | None = None, now: datetime | None = None, log: Any = None
) -> TickReport:
    """What the run-failure sensor does: a `pipeline_failed` alert, then any due retries."""
    return tick(url, now=now, log=log, pipeline_error=error, run_id=run_id)


def deliver_due(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    report: TickReport | None = None,
    log: Any = None,
) -> TickReport:
    """Attempt every due alert once; record each outcome and when to try again."""
    report = report if report is not None else TickReport()
    log = log or _log
    for alert in store.due_alerts(conn, now):
        attempts = alert["attempts"] + 1
        if alert["channel"] == "log":
            _log_alert(log, alert)
            result = channels.Delivery(ok=True)
        elif alert["channel"] not in settings.channels:
            result = channels.Delivery(
                ok=False,
                error=f"channel {alert['channel']} is no longer configured",
                permanent=True,
            )
        else:
            result = channels.deliver(alert["channel"], alert["payload"], settings)
        retry = result.retryable(attempts)
        store.record_attempt(
            conn,
            alert["alert_id"],
            ok=result.ok,
            now=now,
            http_status=result.http_status,
            error=result.error,
            retryable=retry,
            next_attempt_at=now + payloads.backoff(attempts) if retry else None,
        )
        if result.ok:
            report.sent += 1
            if alert["kind"] == "opened" and alert["incident_id"] is not None:
                store.set_alert_created(conn, alert["incident_id"])
        elif retry:
            report.failed += 1
            log.warning(
                f"alert {alert['alert_id']} ({alert['channel']} {alert['kind']}) failed, "
                f"attempt {attempts}, retry after {payloads.backoff(attempts)}: {result.error}"
            )
        else:
            report.gave_up += 1
            log.error(
                f"alert {alert['alert_id']} ({alert['channel']} {alert['kind']}) failed for good "
                f"after {attempts} attempts: {result.error}"
            )
    return report


def _log_alert(log: Any, alert: Mapping[str, Any]) -> None:
    payload = alert["payload"] or {}
    if alert["kind"] == "pipeline_failed":
        log.error(f"ALERT costwatch pipeline failed: {payload.get('error')}")
        return
    log.warning(
        f"ALERT {payload.get('event')} #{payload.get('incident_id')} {payload.get('spike_id')} "
        f"({payload.get('severity')}): {payload.get('root_cause_detail')}; "
        f"excess ${float(payload.get('excess_cost_usd') or 0):,.2f} "
        f"since {payload.get('spike_start')}"
    )


# --------------------------------------------------------------------------- cost cap, scheduling


def _apply_cost_cap(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    report: TickReport,
    log: Any,
) -> None:
    open_ones = store.open_incidents(conn)
    incident_id = open_ones[-1]["incident_id"] if open_ones else None
    try:
        with conn.transaction():
            decision = costcap.apply_cost_cap(conn, settings, now, incident_id)
    except psycopg.Error as err:
        report.errors.append(f"cost cap: {first_line(err)}")
        log.error(f"cost cap failed: {first_line(err)}")
        return
    if decision is not None:
        report.actions.append(decision.describe())
        log.warning(decision.describe())


def _next_due(
    conn: psycopg.Connection, settings: IncidentSettings, now: datetime
) -> datetime | None:
    """The earliest moment a tick has work without new data: a retry, or an escalation age."""
    candidates = [
        store.next_retry_at(conn),
        store.next_escalation_check(conn, timedelta(minutes=settings.escalate_after_minutes), now),
    ]
    due = [c for c in candidates if c is not None]
    return min(due) if due else None


__all__ = [
    "TickReport",
    "deliver_due",
    "evaluate_after_pass",
    "notify_pipeline_failure",
    "tick",
]

"""An incident's life, runbook steps 7-8: open, update, escalate, resolve, reopen, follow up.

Every number and verdict comes from the marts (spike hours, baselines, causes, elevation); this
module only decides which state change they call for and queues its alerts. Each state change
and its alerts commit together, so a crash never loses an alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from orchestration.runbook.incidents import delivery, findings, store
from orchestration.runbook.incidents.settings import IncidentSettings
from orchestration.runbook.incidents.severity import dedup_key, severity_for
from orchestration.runbook.incidents.tick_report import TickReport
from orchestration.runbook.incidents.transitions import (
    RESOLVE_AFTER_HOURS,
    back_under_threshold,
    should_escalate,
)
from orchestration.runbook.triage.report import incident_report as triage_report

FOLLOW_UP = timedelta(hours=24)
# A spike starting this soon after its incident was resolved reopens it instead of paging anew.
PAST_SPIKE = "costwatch (past spike)"


def incident_values(
    spike: Mapping[str, Any],
    diagnoses: Sequence[Mapping[str, Any]],
    now: datetime,
    settings: IncidentSettings | None = None,
) -> dict[str, Any]:
    """The incident row for a spike: runbook step 8's record, filled from the diagnosis."""
    settings = settings or IncidentSettings()
    values = {
        "spike_id": spike["spike_id"],
        "dedup_key": dedup_key(spike["spike_id"]),
        "status": "open",
        "severity": severity_for(
            spike.get("excess_cost_usd"),
            spike.get("pct_above_baseline"),
            settings.severity_thresholds_usd,
        ),
        "opened_at": now,
        "spike_start": spike.get("spike_start"),
        "spike_end": spike.get("spike_end"),
        **cause_values(spike, diagnoses),
        "alert_created": False,
        "follow_up_at": now + FOLLOW_UP,
        "excess_cost_usd": spike.get("excess_cost_usd"),
        "pct_above_baseline": spike.get("pct_above_baseline"),
    }
    return values


def cause_values(
    spike: Mapping[str, Any], diagnoses: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Root cause, its detail and its fix, from the spike's rank-1 diagnosis."""
    root = diagnoses[0] if diagnoses else {}
    return {
        "root_cause": root.get("cause") or "undiagnosed",
        "root_cause_detail": findings.root_cause_detail(root, spike.get("excess_cost_usd"))
        if root
        else "no cause found in marts.spike_diagnosis: work the runbook by hand",
        "mitigation_recommended": findings.mitigation_for(
            root.get("cause"),
            feature=root.get("feature"),
            tool_name=root.get("tool_name"),
            trigger_type=root.get("trigger_type"),
            model=root.get("model"),
            fallback=root.get("recommended_fix"),
        ),
    }


def incident_report(
    conn: psycopg.Connection,
    incident: Mapping[str, Any],
    spike: Mapping[str, Any],
    diagnoses: Sequence[Mapping[str, Any]],
) -> tuple[str, bytes | None]:
    """`report_md` and `chart_png` of an incident (a short summary when the triage report
    cannot be built, so a report never stops an incident from opening)."""
    report = triage_report(conn, spike["spike_id"], incident)
    if report is None:
        return findings.summary_report(incident, spike, diagnoses), None
    return report.markdown, report.chart_png


def refresh_report(
    conn: psycopg.Connection, incident_id: int, spike: Mapping[str, Any] | None = None
) -> None:
    """`report_md` follows every change of the incident."""
    incident = store.incident(conn, incident_id)
    if incident is None:
        return
    spike = spike or {"spike_id": incident["spike_id"], **incident}
    diagnoses = store.diagnoses(conn, [incident["spike_id"]]).get(incident["spike_id"], [])
    markdown, chart = incident_report(conn, incident, spike, diagnoses)
    store.set_report(conn, incident_id, markdown, chart)


def evaluate_spikes(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    report: TickReport,
    log: Any,
) -> None:
    """Open, follow, update and reopen one incident per spike; then resolve or escalate."""
    spikes = store.spikes(conn)
    latest = store.complete_hours(conn, limit=1)
    latest_hour = latest[0] if latest else None
    by_spike = store.diagnoses(conn, [s["spike_id"] for s in spikes])
    live_ids = {s["spike_id"] for s in spikes}
    for spike in spikes:
        diagnoses = by_spike.get(spike["spike_id"], [])
        with conn.transaction():
            incidents = store.incidents_by_spike(conn)
            followed = {p for i in incidents.values() for p in i.get("previous_spike_ids") or []}
            if spike["spike_id"] not in incidents and spike["spike_id"] in followed:
                continue  # an earlier id of an incident that now follows a later spike
            incident = incidents.get(spike["spike_id"]) or _moved(
                spike, incidents, live_ids, timedelta(hours=settings.reopen_within_hours)
            )
            if incident is None:
                _open(conn, settings, now, spike, diagnoses, latest_hour, report, log)
                continue
            if incident["spike_id"] != spike["spike_id"]:
                log.info(
                    f"incident {incident['incident_id']}: spike {incident['spike_id']} is now "
                    f"{spike['spike_id']} (late data moved its start)"
                )
                store.rekey(conn, incident["incident_id"], spike)
                live_ids.add(incident["spike_id"])
            _follow(conn, settings, now, incident, spike, diagnoses, report, log)
    for incident in store.open_incidents(conn):
        with conn.transaction():
            _advance(conn, settings, now, incident, report, log)


def _overlaps(incident: Mapping[str, Any], spike: Mapping[str, Any]) -> bool:
    start, end = incident["spike_start"], incident.get("spike_end") or incident["spike_start"]
    s_start = spike["spike_start"]
    s_end = spike.get("spike_end") or s_start
    if start is None or s_start is None:
        return False
    return start <= s_end and s_start <= end


def _moved(
    spike: Mapping[str, Any],
    incidents: Mapping[str, dict[str, Any]],
    live_ids: set[str],
    reopen_within: timedelta,
) -> dict[str, Any] | None:
    """The incident of this spike under its old id (late data moved its start), or an incident
    resolved less than `reopen_within` before this spike began (reopen); None for a new spike."""
    orphans = [i for sid, i in incidents.items() if sid not in live_ids]
    for incident in orphans:
        if _overlaps(incident, spike):
            return incident
    for incident in incidents.values():
        resolved_hour = incident.get("resolved_hour")
        if (
            incident["status"] == "resolved"
            and incident.get("resolved_by") != PAST_SPIKE
            and resolved_hour is not None
            and spike["spike_start"] is not None
            and abs(spike["spike_start"] - resolved_hour) <= reopen_within
        ):
            return incident
    return None


def _follow(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    incident: dict[str, Any],
    spike: dict[str, Any],
    diagnoses: list[dict[str, Any]],
    report: TickReport,
    log: Any,
) -> None:
    """An incident already known: reopen it, or follow its spike's size and cause."""
    incident_id = incident["incident_id"]
    if incident["status"] == "resolved":
        if incident.get("resolved_by") == PAST_SPIKE:
            return
        resolved_hour = incident.get("resolved_hour")
        spike_end = spike.get("spike_end") or spike["spike_start"]
        if resolved_hour is None or spike_end is None or spike_end < resolved_hour:
            return
        if store.mark_reopened(conn, incident_id, now):
            report.reopened.append(incident_id)
            log.warning(f"incident {incident_id} reopened: spike hours after its resolve")
            delivery.queue_incident_alerts(conn, incident_id, "reopened", now, settings)
            refresh_report(conn, incident_id, spike)
        return
    severity = severity_for(
        spike.get("excess_cost_usd"),
        spike.get("pct_above_baseline"),
        settings.severity_thresholds_usd,
    )
    store.refresh_open_incident(conn, spike, severity)
    cause = cause_values(spike, diagnoses)
    if cause["root_cause"] != incident["root_cause"] and diagnoses:
        store.update_cause(conn, incident_id, cause)
        report.updated.append(incident_id)
        log.warning(
            f"incident {incident_id}: root cause {incident['root_cause']} -> {cause['root_cause']}"
        )
        delivery.queue_incident_alerts(conn, incident_id, "updated", now, settings)
        refresh_report(conn, incident_id, spike)
    elif diagnoses and any(cause[k] != incident.get(k) for k in cause):
        # Same cause, its figures moved with the spike (the detail quotes the excess): the
        # incident says what the marts say now, without another alert.
        store.update_cause(conn, incident_id, cause)


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
        values.update(status="resolved", resolved_at=now, resolved_by=PAST_SPIKE)
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
    delivery.queue_incident_alerts(conn, incident_id, "opened", now, settings)


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
        newest = store.complete_hours(conn, limit=1)
        hour = newest[0]["hour"] if newest else None
        if store.mark_resolved(conn, incident_id, now, "costwatch", hour):
            report.resolved.append(incident_id)
            log.info(
                f"incident {incident_id} ({incident['spike_id']}) resolved: cost under the "
                f"spike threshold for {RESOLVE_AFTER_HOURS} complete hours"
            )
            delivery.queue_incident_alerts(conn, incident_id, "resolved", now, settings)
            refresh_report(conn, incident_id)
        return
    if should_escalate(conn, incident, settings, now) and store.mark_escalated(
        conn, incident_id, now
    ):
        report.escalated.append(incident_id)
        log.warning(
            f"incident {incident_id} ({incident['spike_id']}) escalated: open "
            f"{settings.escalate_after_minutes:g} minutes and cost still rising"
        )
        delivery.queue_incident_alerts(conn, incident_id, "escalated", now, settings)
        refresh_report(conn, incident_id)

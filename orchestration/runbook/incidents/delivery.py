"""Queue and deliver alerts: every attempt claimed, bounded, recorded; nothing blocks the rest.

- One alert per channel per kind per incident (per alert cycle); leadership's channels get only
  escalations.
- Per incident and channel, alerts go out in kind order (opened before escalated before resolved).
- A resolve supersedes the incident's still-pending trigger events on PagerDuty.
- A channel whose variable is missing in this process is skipped: its alerts stay pending for a
  process that has it, they are not failed.
- `alert_created` becomes true when an on-call channel delivered the `opened` alert (or the log
  did, when no external channel is configured).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from orchestration.core.database import first_line
from orchestration.runbook.incidents import alert_store, channels, payloads, retry, severity, store
from orchestration.runbook.incidents.settings import IncidentSettings

_log = logging.getLogger("costwatch.incidents")


@dataclass
class DeliveryCounts:
    sent: int = 0
    failed: int = 0  # will be retried
    gave_up: int = 0
    skipped: int = 0  # channel not configured in this process


def alert_channels(kind: str, settings: IncidentSettings) -> list[str]:
    """Where an alert of `kind` goes: the log, on-call's channels, and leadership on escalation."""
    out = ["log", *settings.channels]
    if kind == "escalated":
        out += settings.leadership_channels
    if kind == "acknowledged":
        out = ["log", *(["pagerduty"] if "pagerduty" in settings.channels else [])]
    return out


def queue_incident_alerts(
    conn: psycopg.Connection,
    incident_id: int,
    kind: str,
    now: datetime,
    settings: IncidentSettings,
) -> None:
    """One alert of `kind` per channel, in the incident's current alert cycle."""
    incident = store.incident(conn, incident_id)
    if incident is None:
        return
    messages = payloads.incident_payloads(incident, kind)
    key = severity.incident_dedup_key(incident)
    cycle = incident.get("alert_cycle") or 0
    targets = alert_channels(kind, settings)
    if kind == "follow_up" and incident.get("follow_up_result") == "fixed":
        targets = [c for c in targets if c != "pagerduty"]  # nothing to page about
    if kind == "resolved":
        alert_store.supersede_pagerduty(conn, incident_id, cycle)
    for channel in targets:
        alert_store.queue_alert(
            conn,
            incident_id=incident_id,
            channel=channel,
            kind=kind,
            dedup_key=key,
            payload=messages[channel],
            now=now,
            cycle=cycle,
        )


def queue_pipeline_failed(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    error: str,
    run_id: str | None,
) -> None:
    """A `pipeline_failed` alert on every channel (once an hour per channel)."""
    error = retry.redact_secrets(first_line(error), settings.secrets)
    messages = payloads.pipeline_failed_payloads(error, now, run_id)
    key = severity.pipeline_dedup_key(now)
    for channel in ("log", *settings.channels):
        alert_store.queue_alert(
            conn,
            incident_id=None,
            channel=channel,
            kind="pipeline_failed",
            dedup_key=key,
            payload=messages[channel],
            now=now,
        )


def deliver_due(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    log: Any = None,
) -> DeliveryCounts:
    """Attempt every due alert once (autocommit connection: each claim commits before sending)."""
    counts = DeliveryCounts()
    log = log or _log
    seen: set[int] = set()
    # Rounds: once an incident's alert is sent on a channel, its next one is due in the next
    # round; a failed one keeps the later ones waiting until its retry.
    for _round in range(len(alert_store.KIND_ORDER) + 1):
        due = [a for a in alert_store.due_alerts(conn, now) if a["alert_id"] not in seen]
        if not due:
            break
        for alert in due:
            seen.add(alert["alert_id"])
            if not settings.configured(alert["channel"]):
                counts.skipped += 1
                continue
            lease = retry.backoff(alert["attempts"] + 1)
            attempts = alert_store.claim(conn, alert["alert_id"], now, lease)
            if attempts is None:
                continue  # another process is delivering it
            _attempt(conn, settings, now, alert, attempts, counts, log)
    return counts


def _attempt(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    alert: dict[str, Any],
    attempts: int,
    counts: DeliveryCounts,
    log: Any,
) -> None:
    channel = alert["channel"]
    if channel == "log":
        _log_alert(log, alert)
        result = channels.Delivery(ok=True)
    else:
        result = channels.deliver(channel, alert["payload"], settings)
    retryable = result.retryable(attempts)
    error = retry.redact_secrets(result.error, settings.secrets) if result.error else None
    alert_store.record_attempt(
        conn,
        alert["alert_id"],
        ok=result.ok,
        now=now,
        http_status=result.http_status,
        error=error,
        retryable=retryable,
        next_attempt_at=now + retry.backoff(attempts) if retryable else None,
    )
    what = f"alert {alert['alert_id']} ({channel} {alert['kind']})"
    if result.ok:
        counts.sent += 1
        on_call = channel in settings.channels or (channel == "log" and not settings.channels)
        if alert["kind"] in ("opened", "reopened") and alert["incident_id"] and on_call:
            alert_store.set_alert_created(conn, alert["incident_id"])
    elif retryable:
        counts.failed += 1
        log.warning(f"{what} failed, attempt {attempts}, retry later: {error}")
    else:
        counts.gave_up += 1
        log.error(f"{what} failed for good after {attempts} attempts: {error}")


def _log_alert(log: Any, alert: Mapping[str, Any]) -> None:
    payload = alert["payload"] or {}
    if alert["kind"] == "pipeline_failed":
        log.error(f"ALERT costwatch pipeline failed: {payload.get('error')}")
        return
    log.warning(
        f"ALERT {payload.get('event')} #{payload.get('incident_id')} {payload.get('spike_id')} "
        f"({payload.get('severity')}): {payload.get('root_cause_detail')}; "
        f"excess ${float(payload.get('excess_cost_usd') or 0):,.2f} "
        f"since {payload.get('spike_start')} [{payload.get('dedup_key')}]"
    )

"""SQL for `ops.alerts`: queue, claim, record, supersede.

An alert is `pending` until it is `sent`, given up (`failed`) or `superseded`. Before each
attempt it is claimed: its attempt counted and its next attempt moved past the back-off, in a
committed statement. A process killed between sending and recording therefore leaves it pending
and due again later (at least once; every message carries its `dedup_key`), never lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from orchestration.runbook.incidents.store import fetch_dicts

# The order in which one incident's alerts reach one channel, within one alert cycle (a reopen
# starts the next cycle).
KIND_ORDER = (
    "opened",
    "reopened",
    "updated",
    "escalated",
    "acknowledged",
    "resolved",
    "follow_up",
)


def queue_alert(
    conn: psycopg.Connection,
    *,
    incident_id: int | None,
    channel: str,
    kind: str,
    dedup_key: str,
    payload: dict[str, Any],
    now: datetime,
    cycle: int = 0,
) -> bool:
    """Record an alert to send (pending, due now). False when it already exists."""
    row = conn.execute(
        "insert into ops.alerts (incident_id, channel, kind, dedup_key, status, attempts, "
        "payload, error, next_attempt_at, retryable, created_at, cycle) "
        "values (%s, %s, %s, %s, 'pending', 0, %s, null, %s, true, %s, %s) "
        "on conflict (channel, kind, dedup_key, cycle) do nothing returning alert_id",
        (incident_id, channel, kind, dedup_key, Jsonb(payload), now, now, cycle),
    ).fetchone()
    return row is not None


def _order(alert: dict[str, Any]) -> tuple:
    kind = alert["kind"]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return (alert["cycle"], rank, alert["alert_id"])


def due_alerts(conn: psycopg.Connection, now: datetime) -> list[dict[str, Any]]:
    """Pending alerts due now, at most one per incident and channel: the first in kind order
    (a later one waits for it to be sent, given up or superseded)."""
    rows = fetch_dicts(
        conn,
        "select alert_id, incident_id, channel, kind, dedup_key, attempts, payload, cycle, "
        "next_attempt_at from ops.alerts where status = 'pending' order by alert_id",
    )
    heads: dict[tuple, dict[str, Any]] = {}
    due = []
    for row in rows:
        if row["incident_id"] is None:
            if row["next_attempt_at"] is None or row["next_attempt_at"] <= now:
                due.append(row)
            continue
        key = (row["incident_id"], row["channel"])
        if key not in heads or _order(row) < _order(heads[key]):
            heads[key] = row
    due += [
        row
        for row in heads.values()
        if row["next_attempt_at"] is None or row["next_attempt_at"] <= now
    ]
    return sorted(due, key=lambda r: (r["incident_id"] or 0, *_order(r)))


def claim(conn: psycopg.Connection, alert_id: int, now: datetime, lease: timedelta) -> int | None:
    """Take an alert for one attempt (committed before sending); its attempt number, or None
    when another process took it first."""
    row = conn.execute(
        "update ops.alerts set attempts = attempts + 1, claimed_at = %s, next_attempt_at = %s "
        "where alert_id = %s and status = 'pending' "
        "and coalesce(next_attempt_at, '-infinity') <= %s returning attempts",
        (now, now + lease, alert_id, now),
    ).fetchone()
    return row[0] if row else None


def record_attempt(
    conn: psycopg.Connection,
    alert_id: int,
    *,
    ok: bool,
    now: datetime,
    http_status: int | None,
    error: str | None,
    retryable: bool,
    next_attempt_at: datetime | None,
) -> None:
    """Record the outcome of a claimed attempt; a failure is also appended to `failures`."""
    failure = [] if ok else [{"at": now.isoformat(), "http_status": http_status, "error": error}]
    status = "sent" if ok else ("pending" if retryable else "failed")
    conn.execute(
        "update ops.alerts set status = %(status)s, "
        "sent_at = case when %(ok)s then %(now)s else sent_at end, http_status = %(http)s, "
        "error = %(error)s, retryable = %(retryable)s, next_attempt_at = %(next)s, "
        "failures = failures || %(failure)s where alert_id = %(id)s and status = 'pending'",
        {
            "status": status,
            "ok": ok,
            "now": now,
            "http": http_status,
            "error": error,
            "retryable": retryable and not ok,
            "next": next_attempt_at,
            "failure": Jsonb(failure),
            "id": alert_id,
        },
    )


def supersede_pagerduty(conn: psycopg.Connection, incident_id: int, cycle: int) -> int:
    """A resolve makes PagerDuty's still-pending trigger events of the incident pointless."""
    return conn.execute(
        "update ops.alerts set status = 'superseded', retryable = false, "
        "error = 'superseded by the resolve' where incident_id = %s and channel = 'pagerduty' "
        "and status = 'pending' and cycle <= %s and kind <> 'resolved'",
        (incident_id, cycle),
    ).rowcount


def set_alert_created(conn: psycopg.Connection, incident_id: int) -> None:
    conn.execute(
        "update ops.incidents set alert_created = true where incident_id = %s "
        "and not alert_created",
        (incident_id,),
    )


def next_retry_at(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute(
        "select min(next_attempt_at) from ops.alerts where status = 'pending'"
    ).fetchone()
    return row[0] if row else None


def pending_count(conn: psycopg.Connection) -> int:
    return conn.execute("select count(*) from ops.alerts where status = 'pending'").fetchone()[0]


def alerts_for(conn: psycopg.Connection, incident_id: int) -> list[dict[str, Any]]:
    return fetch_dicts(
        conn,
        "select alert_id, channel, kind, status, attempts, sent_at, next_attempt_at, retryable, "
        "http_status, error from ops.alerts where incident_id = %s order by alert_id",
        (incident_id,),
    )


def actions_for(conn: psycopg.Connection, incident_id: int) -> list[dict[str, Any]]:
    return fetch_dicts(
        conn,
        "select action_id, taken_at, action, feature, dry_run, detail from ops.actions "
        "where incident_id = %s order by action_id",
        (incident_id,),
    )

"""SQL for the incident engine: the detection marts it reads and the `ops` tables it writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

DETECTION_MARTS = ("marts.cost_spikes", "marts.spike_diagnosis", "marts.cost_baseline_hourly")


def missing_tables(conn: psycopg.Connection, tables: tuple[str, ...]) -> list[str]:
    rows = conn.execute(
        "select t from unnest(%s::text[]) as t where to_regclass(t) is null", (list(tables),)
    ).fetchall()
    return [r[0] for r in rows]


def fetch_dicts(conn: psycopg.Connection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


# --------------------------------------------------------------------------- marts


def spikes(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return fetch_dicts(conn, "select * from marts.cost_spikes order by spike_start")


def diagnoses(conn: psycopg.Connection, spike_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    rows = fetch_dicts(
        conn,
        "select * from marts.spike_diagnosis where spike_id = any(%s) order by spike_id, rank",
        (spike_ids,),
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["spike_id"], []).append(row)
    return out


def complete_hours(
    conn: psycopg.Connection, limit: int = 2, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The newest complete hours (newest first), optionally only those at or after `since`."""
    return fetch_dicts(
        conn,
        "select hour, total_cost_usd, baseline_cost_usd, is_spike_hour "
        "from marts.cost_baseline_hourly "
        "where is_complete and (%(since)s::timestamptz is null or hour >= %(since)s) "
        "order by hour desc limit %(limit)s",
        {"since": since, "limit": limit},
    )


def excess(hour: dict[str, Any] | None) -> float | None:
    if not hour or hour.get("baseline_cost_usd") is None:
        return None
    return float(hour["total_cost_usd"] or 0) - float(hour["baseline_cost_usd"])


# --------------------------------------------------------------------------- incidents


def known_spike_ids(conn: psycopg.Connection, spike_ids: list[str]) -> set[str]:
    rows = conn.execute(
        "select spike_id from ops.incidents where spike_id = any(%s)", (spike_ids,)
    ).fetchall()
    return {r[0] for r in rows}


def insert_incident(conn: psycopg.Connection, values: dict[str, Any]) -> int | None:
    """Insert unless the spike already has an incident; the new id, or None."""
    columns = list(values)
    row = conn.execute(
        f"insert into ops.incidents ({', '.join(columns)}) "  # noqa: S608 - our own column names
        f"values ({', '.join('%(' + c + ')s' for c in columns)}) "
        "on conflict (spike_id) do nothing returning incident_id",
        values,
    ).fetchone()
    return row[0] if row else None


def incident(conn: psycopg.Connection, incident_id: int) -> dict[str, Any] | None:
    rows = fetch_dicts(conn, "select * from ops.incidents where incident_id = %s", (incident_id,))
    return rows[0] if rows else None


def open_incidents(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return fetch_dicts(
        conn, "select * from ops.incidents where status = 'open' order by incident_id"
    )


def list_incidents(conn: psycopg.Connection, limit: int = 50) -> list[dict[str, Any]]:
    return fetch_dicts(
        conn,
        "select i.*, (select count(*) from ops.alerts a where a.incident_id = i.incident_id "
        "and a.status = 'sent') as alerts_sent, (select count(*) from ops.alerts a "
        "where a.incident_id = i.incident_id and a.status = 'failed') as alerts_failed "
        "from ops.incidents i order by i.opened_at desc, i.incident_id desc limit %s",
        (limit,),
    )


def refresh_open_incident(conn: psycopg.Connection, spike: dict[str, Any], severity: str) -> None:
    """An open incident follows its growing spike: excess, percentage, severity (never down)."""
    conn.execute(
        "update ops.incidents set excess_cost_usd = %(excess)s, pct_above_baseline = %(pct)s, "
        "severity = case when array_position(array['low','medium','high','critical'], %(sev)s) "
        "  > coalesce(array_position(array['low','medium','high','critical'], severity), 0) "
        "  then %(sev)s else severity end, updated_at = now() "
        "where spike_id = %(spike_id)s and status = 'open' "
        "and excess_cost_usd is distinct from %(excess)s",
        {
            "excess": spike.get("excess_cost_usd"),
            "pct": spike.get("pct_above_baseline"),
            "sev": severity,
            "spike_id": spike["spike_id"],
        },
    )


def mark_escalated(conn: psycopg.Connection, incident_id: int, now: datetime) -> bool:
    row = conn.execute(
        "update ops.incidents set escalated_at = %s, updated_at = now() "
        "where incident_id = %s and status = 'open' and escalated_at is null returning 1",
        (now, incident_id),
    ).fetchone()
    return row is not None


def mark_resolved(conn: psycopg.Connection, incident_id: int, now: datetime, by: str) -> bool:
    row = conn.execute(
        "update ops.incidents set status = 'resolved', resolved_at = %s, resolved_by = %s, "
        "updated_at = now() where incident_id = %s and status = 'open' returning 1",
        (now, by, incident_id),
    ).fetchone()
    return row is not None


def mark_acknowledged(conn: psycopg.Connection, incident_id: int, now: datetime, by: str) -> bool:
    row = conn.execute(
        "update ops.incidents set acknowledged_at = coalesce(acknowledged_at, %s), "
        "acknowledged_by = coalesce(acknowledged_by, %s), updated_at = now() "
        "where incident_id = %s returning 1",
        (now, by, incident_id),
    ).fetchone()
    return row is not None


def set_alert_created(conn: psycopg.Connection, incident_id: int) -> None:
    conn.execute(
        "update ops.incidents set alert_created = true where incident_id = %s "
        "and not alert_created",
        (incident_id,),
    )


# --------------------------------------------------------------------------- alerts


def queue_alert(
    conn: psycopg.Connection,
    *,
    incident_id: int | None,
    channel: str,
    kind: str,
    dedup_key: str,
    payload: dict[str, Any],
    now: datetime,
) -> bool:
    """Record an alert to send (attempts 0, due now). False when it already exists."""
    row = conn.execute(
        "insert into ops.alerts (incident_id, channel, kind, dedup_key, status, attempts, "
        "payload, error, next_attempt_at, retryable, created_at) "
        "values (%s, %s, %s, %s, 'failed', 0, %s, 'not sent yet', %s, true, %s) "
        "on conflict (channel, kind, dedup_key) do nothing returning alert_id",
        (incident_id, channel, kind, dedup_key, Jsonb(payload), now, now),
    ).fetchone()
    return row is not None


def due_alerts(conn: psycopg.Connection, now: datetime) -> list[dict[str, Any]]:
    return fetch_dicts(
        conn,
        "select alert_id, incident_id, channel, kind, dedup_key, attempts, payload "
        "from ops.alerts where status = 'failed' and retryable "
        "and coalesce(next_attempt_at, '-infinity') <= %s order by alert_id",
        (now,),
    )


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
    """Record one delivery attempt; a failure is also appended to the alert's `failures`."""
    failure = [] if ok else [{"at": now.isoformat(), "http_status": http_status, "error": error}]
    conn.execute(
        "update ops.alerts set attempts = attempts + 1, status = %(status)s, "
        "sent_at = case when %(ok)s then %(now)s else sent_at end, http_status = %(http)s, "
        "error = %(error)s, retryable = %(retryable)s, next_attempt_at = %(next)s, "
        "failures = failures || %(failure)s where alert_id = %(id)s",
        {
            "status": "sent" if ok else "failed",
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


def next_retry_at(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute(
        "select min(next_attempt_at) from ops.alerts where status = 'failed' and retryable"
    ).fetchone()
    return row[0] if row else None


def next_escalation_check(
    conn: psycopg.Connection, escalate_after: timedelta, now: datetime
) -> datetime | None:
    """When the next open, unescalated incident becomes old enough to escalate."""
    row = conn.execute(
        "select min(opened_at + %s) from ops.incidents where status = 'open' "
        "and escalated_at is null and opened_at + %s > %s",
        (escalate_after, escalate_after, now),
    ).fetchone()
    return row[0] if row else None


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

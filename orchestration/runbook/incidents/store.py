"""SQL for the incident step: the detection marts it reads, and `ops.incidents`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

# What the incident step cannot work without; the diagnosis it reads when it is there (an engine
# that does not build it yet: every incident undiagnosed, its cause "work the runbook by hand").
DETECTION_MARTS = ("marts.cost_spikes", "marts.cost_baseline_hourly")
DIAGNOSIS_MART = "marts.spike_diagnosis"


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
    if missing_tables(conn, (DIAGNOSIS_MART,)):
        return {}
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


def mark_resolved(
    conn: psycopg.Connection, incident_id: int, now: datetime, by: str, hour: datetime | None = None
) -> bool:
    """Resolve an open incident; `hour` is the newest complete hour then (reopen compares to it)."""
    row = conn.execute(
        "update ops.incidents set status = 'resolved', resolved_at = %s, resolved_by = %s, "
        "resolved_hour = %s, updated_at = now() where incident_id = %s and status = 'open' "
        "returning 1",
        (now, by, hour, incident_id),
    ).fetchone()
    return row is not None


def mark_reopened(conn: psycopg.Connection, incident_id: int, now: datetime) -> bool:
    """Open a resolved incident again, in a new alert cycle (its alerts go out once more)."""
    row = conn.execute(
        "update ops.incidents set status = 'open', reopened_at = %s, resolved_at = null, "
        "resolved_by = null, escalated_at = null, alert_cycle = alert_cycle + 1, "
        "updated_at = now() where incident_id = %s and status = 'resolved' returning 1",
        (now, incident_id),
    ).fetchone()
    return row is not None


def rekey(conn: psycopg.Connection, incident_id: int, spike: dict[str, Any]) -> None:
    """Late data moved the spike's start: the incident follows it (its dedup_key stays)."""
    conn.execute(
        "update ops.incidents set previous_spike_ids = array_append(previous_spike_ids, "
        "spike_id), spike_id = %s, spike_start = %s, spike_end = %s, updated_at = now() "
        "where incident_id = %s",
        (spike["spike_id"], spike["spike_start"], spike.get("spike_end"), incident_id),
    )


def update_cause(conn: psycopg.Connection, incident_id: int, values: dict[str, Any]) -> None:
    """The diagnosis changed (or arrived): the incident's cause, detail and fix follow it."""
    conn.execute(
        "update ops.incidents set root_cause = %(root_cause)s, "
        "root_cause_detail = %(root_cause_detail)s, "
        "mitigation_recommended = %(mitigation_recommended)s, updated_at = now() "
        "where incident_id = %(incident_id)s",
        {**values, "incident_id": incident_id},
    )


def set_report(conn: psycopg.Connection, incident_id: int, report_md: str, chart: Any) -> None:
    conn.execute(
        "update ops.incidents set report_md = %s, chart_png = coalesce(%s, chart_png) "
        "where incident_id = %s",
        (report_md, chart, incident_id),
    )


def set_follow_up(conn: psycopg.Connection, incident_id: int, result: str, now: datetime) -> bool:
    row = conn.execute(
        "update ops.incidents set follow_up_result = %s, followed_up_at = %s, updated_at = now() "
        "where incident_id = %s and follow_up_result is null returning 1",
        (result, now, incident_id),
    ).fetchone()
    return row is not None


def follow_ups_due(conn: psycopg.Connection, now: datetime) -> list[dict[str, Any]]:
    return fetch_dicts(
        conn,
        "select * from ops.incidents where follow_up_result is null and follow_up_at <= %s "
        "and resolved_by is distinct from 'costwatch (past spike)' order by incident_id",
        (now,),
    )


def incidents_by_spike(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    return {r["spike_id"]: r for r in fetch_dicts(conn, "select * from ops.incidents")}


def mark_acknowledged(conn: psycopg.Connection, incident_id: int, now: datetime, by: str) -> bool:
    row = conn.execute(
        "update ops.incidents set acknowledged_at = coalesce(acknowledged_at, %s), "
        "acknowledged_by = coalesce(acknowledged_by, %s), updated_at = now() "
        "where incident_id = %s returning 1",
        (now, by, incident_id),
    ).fetchone()
    return row is not None


def next_escalation_check(
    conn: psycopg.Connection, escalate_after: timedelta, now: datetime
) -> datetime | None:
    """When the next open, unescalated, unacknowledged incident becomes old enough to escalate."""
    row = conn.execute(
        "select min(coalesce(reopened_at, opened_at) + %s) from ops.incidents "
        "where status = 'open' and escalated_at is null and acknowledged_at is null "
        "and coalesce(reopened_at, opened_at) + %s > %s",
        (escalate_after, escalate_after, now),
    ).fetchone()
    return row[0] if row else None


def next_follow_up(conn: psycopg.Connection, now: datetime) -> datetime | None:
    row = conn.execute(
        "select min(follow_up_at) from ops.incidents where follow_up_result is null "
        "and follow_up_at > %s and resolved_by is distinct from 'costwatch (past spike)'",
        (now,),
    ).fetchone()
    return row[0] if row else None

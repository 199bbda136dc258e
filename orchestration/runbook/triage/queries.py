"""What the triage report reads: marts only (and the incident log), as plain dicts.

Every number and verdict comes from dbt: `marts.spike_summary` (the on-call summary),
`marts.spike_causes` (the ranked causes in the catalogue's words, each with its part of the one
excess figure), `marts.spike_runbook_steps` (steps 2-6: before, after, change, is_signal) and
`marts.cost_baseline_hourly` (step 1 and the chart). Nothing here computes a window, a baseline
or a threshold, so `COSTWATCH_VAR_*` overrides reach the report through dbt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

REQUIRED_MARTS = (
    "marts.cost_hourly",
    "marts.cost_baseline_hourly",
    "marts.cost_spikes",
    "marts.spike_diagnosis",
    "marts.spike_runbook_steps",
    "marts.spike_causes",
    "marts.spike_summary",
)
CHART_HOURS = 48
# Known spike ids listed when `--spike` names none of them.
KNOWN_SPIKES_SHOWN = 10


@dataclass
class TriageData:
    """Everything the report quotes, read once; the sections are built from it."""

    newest_hour: datetime | None
    spike: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None  # marts.spike_summary
    causes: list[dict[str, Any]] = field(default_factory=list)  # marts.spike_causes, by rank
    steps: list[dict[str, Any]] = field(default_factory=list)  # marts.spike_runbook_steps
    hours: list[dict[str, Any]] = field(default_factory=list)  # the chart's window, oldest first
    spike_hours: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)  # the diagnosis' evidence
    incident: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)  # ops.alerts of the incident
    summary_hours: list[dict[str, Any]] = field(default_factory=list)  # no-spike path

    def step(self, number: int) -> list[dict[str, Any]]:
        return [row for row in self.steps if row["step"] == number]


def fetch(conn: psycopg.Connection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def missing_tables(conn: psycopg.Connection, tables: tuple[str, ...]) -> list[str]:
    rows = conn.execute(
        "select t from unnest(%s::text[]) as t where to_regclass(t) is null", (list(tables),)
    ).fetchall()
    return [r[0] for r in rows]


def spike_row(conn: psycopg.Connection, spike_id: str | None) -> dict[str, Any] | None:
    """The given spike, or the latest one; None when there is none (or no such id)."""
    if spike_id is None:
        rows = fetch(conn, "select * from marts.cost_spikes order by spike_start desc limit 1")
    else:
        rows = fetch(conn, "select * from marts.cost_spikes where spike_id = %s", (spike_id,))
    return rows[0] if rows else None


def known_spike_ids(conn: psycopg.Connection, limit: int = KNOWN_SPIKES_SHOWN) -> list[str]:
    """The newest spike ids, newest first (for a `--spike` that names none of them)."""
    rows = conn.execute(
        "select spike_id from marts.cost_spikes order by spike_start desc limit %s", (limit,)
    ).fetchall()
    return [r[0] for r in rows]


def chart_window(
    newest: datetime | None, spike: Mapping[str, Any] | None
) -> tuple[datetime, datetime]:
    """The 48 hours to draw: up to the newest hour, or around the spike when it is older."""
    end = newest or (spike or {}).get("spike_end")
    if spike is not None and end is not None:
        spike_end = spike["spike_end"]
        if spike["spike_start"] < end - timedelta(hours=CHART_HOURS - 8):
            end = min(end, spike_end + timedelta(hours=8))
    assert end is not None
    return end - timedelta(hours=CHART_HOURS - 1), end


def evidence(row: Mapping[str, Any]) -> Mapping[str, Any]:
    value = row.get("evidence")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    return value if isinstance(value, Mapping) else {}


def _stamp(value: Any) -> Any:
    """A timestamp from jsonb evidence (ISO text) as a datetime, when it parses."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return value


def load(conn: psycopg.Connection, spike: dict[str, Any] | None) -> TriageData:
    newest = conn.execute("select max(hour) from marts.cost_baseline_hourly").fetchone()[0]
    data = TriageData(newest_hour=newest, spike=spike)
    if newest is None:
        return data
    start, end = chart_window(newest, spike)
    data.hours = fetch(
        conn,
        "select b.hour, b.total_cost_usd, b.baseline_cost_usd, b.pct_above_baseline, "
        "b.is_spike_hour, b.is_complete, b.spike_id, c.requests, c.unique_users, "
        "c.avg_cost_per_request_usd "
        "from marts.cost_baseline_hourly as b left join marts.cost_hourly as c using (hour) "
        "where b.hour between %s and %s order by b.hour",
        (start, end),
    )
    if spike is None:
        data.summary_hours = data.hours
        return data
    spike_id = spike["spike_id"]
    rows = fetch(conn, "select * from marts.spike_summary where spike_id = %s", (spike_id,))
    data.summary = rows[0] if rows else None
    data.causes = fetch(
        conn, "select * from marts.spike_causes where spike_id = %s order by rank", (spike_id,)
    )
    data.steps = fetch(
        conn,
        "select * from marts.spike_runbook_steps where spike_id = %s "
        "order by step, subject_rank nulls first, sort_order",
        (spike_id,),
    )
    data.spike_hours = fetch(
        conn,
        "select hour, total_cost_usd, baseline_cost_usd, pct_above_baseline, is_spike_hour "
        "from marts.cost_baseline_hourly where spike_id = %s order by hour",
        (spike_id,),
    )
    root = fetch(
        conn,
        "select evidence from marts.spike_diagnosis where spike_id = %s order by rank limit 1",
        (spike_id,),
    )
    if root:
        changes = evidence(root[0]).get("change_events")
        data.changes = sorted(
            ({**c, "changed_at": _stamp(c.get("changed_at"))} for c in changes or []
             if isinstance(c, Mapping)),
            key=lambda c: str(c.get("changed_at")),
        )  # fmt: skip
    if not missing_tables(conn, ("ops.incidents",)):
        rows = fetch(
            conn,
            "select incident_id, status, severity, opened_at, root_cause, root_cause_detail, "
            "mitigation_recommended, mitigation_applied, alert_created, acknowledged_at, "
            "follow_up_at, resolved_at from ops.incidents where spike_id = %s",
            (spike_id,),
        )
        data.incident = rows[0] if rows else None
    if data.incident and not missing_tables(conn, ("ops.alerts",)):
        data.alerts = fetch(
            conn,
            "select channel, kind, status, count(*) as alerts from ops.alerts "
            "where incident_id = %s group by channel, kind, status order by channel, kind",
            (data.incident["incident_id"],),
        )
    return data

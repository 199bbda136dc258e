"""What the triage report reads: the marts, the change log and the incident, as plain dicts.

Each runbook step's numbers compare the spike window (its complete hours) with its baseline
window, as `marts.spike_diagnosis` does: for every spike hour, the same hour of day on the
previous `spike_baseline_days` days that were complete, had data and belonged to no spike, each
weighted 1/n, so a baseline sum is the expected value over the spike's hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

REQUIRED_MARTS = (
    "marts.cost_hourly",
    "marts.recompute_hourly",
    "marts.trigger_hourly",
    "marts.tokens_hourly",
    "marts.feature_cost_hourly",
    "marts.tool_failures_hourly",
    "marts.cost_baseline_hourly",
    "marts.cost_spikes",
    "marts.spike_diagnosis",
)
CHART_HOURS = 48
CHANGE_LOOKBACK = timedelta(hours=24)


def baseline_days() -> int:
    """dbt's `spike_baseline_days`, with costwatch's `COSTWATCH_VAR_` override."""
    from orchestration.settings import dbt_vars

    try:
        return int(dbt_vars().get("spike_baseline_days", 7))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 7


_WINDOWS = """
with spike_slots as (
    select hour as slot_hour
    from marts.cost_baseline_hourly
    where spike_id = %(spike_id)s and is_complete and has_data
),
baseline_slots as (
    select spike_slots.slot_hour, earlier.hour
    from spike_slots
    cross join generate_series(1, %(days)s) as days_back (n)
    inner join marts.cost_baseline_hourly as earlier
        on earlier.hour = spike_slots.slot_hour - days_back.n * interval '1 day'
    where earlier.is_complete and earlier.has_data and earlier.spike_id is null
),
observations as (
    select slot_hour, count(*) as n from baseline_slots group by slot_hour
),
windows as (
    select 'after' as period, s.slot_hour as hour, 1.0::float8 as weight
    from spike_slots as s inner join observations as o on o.slot_hour = s.slot_hour
    union all
    select 'before' as period, b.hour, 1.0::float8 / o.n as weight
    from baseline_slots as b inner join observations as o on o.slot_hour = b.slot_hour
)
"""

_TRAFFIC = (
    _WINDOWS
    + """
select w.period,
       sum(w.weight) as hours,
       sum(w.weight * c.requests) as requests,
       sum(w.weight * c.unique_users) as unique_users,
       sum(w.weight * c.total_cost_usd) as cost_usd
from windows as w inner join marts.cost_hourly as c on c.hour = w.hour
group by w.period
"""
)

_RECOMPUTE = (
    _WINDOWS
    + """
select w.period,
       sum(w.weight * r.total) as total,
       sum(w.weight * r.hidden) as hidden,
       sum(w.weight * r.hidden_cost_usd) as hidden_cost_usd
from windows as w inner join marts.recompute_hourly as r on r.hour = w.hour
group by w.period
"""
)

_TRIGGERS = (
    _WINDOWS
    + """
select w.period, t.trigger_type as key,
       sum(w.weight * t.requests) as requests,
       sum(w.weight * t.cost_usd) as cost_usd
from windows as w inner join marts.trigger_hourly as t on t.hour = w.hour
group by w.period, t.trigger_type
"""
)

_TOKENS = (
    _WINDOWS
    + """
select w.period,
       sum(w.weight * c.requests * t.avg_input_tokens) / nullif(sum(w.weight * c.requests), 0)
           as avg_input_tokens,
       sum(w.weight * c.requests * t.avg_output_tokens) / nullif(sum(w.weight * c.requests), 0)
           as avg_output_tokens,
       sum(w.weight * t.p95_input_tokens) / nullif(sum(w.weight), 0) as p95_input_tokens,
       sum(w.weight * t.p95_output_tokens) / nullif(sum(w.weight), 0) as p95_output_tokens
from windows as w
inner join marts.tokens_hourly as t on t.hour = w.hour
inner join marts.cost_hourly as c on c.hour = w.hour
group by w.period
"""
)

_FEATURES = (
    _WINDOWS
    + """
select w.period, f.feature as key,
       sum(w.weight * f.requests) as requests,
       sum(w.weight * f.total_cost_usd) as cost_usd
from windows as w inner join marts.feature_cost_hourly as f on f.hour = w.hour
group by w.period, f.feature
"""
)

_TOOLS = (
    _WINDOWS
    + """
select w.period, t.tool_name as key,
       sum(w.weight * t.total_calls) as calls,
       sum(w.weight * t.failures) as failures,
       sum(w.weight * t.total_retries) as retries
from windows as w inner join marts.tool_failures_hourly as t on t.hour = w.hour
group by w.period, t.tool_name
"""
)


@dataclass
class TriageData:
    """Everything the report quotes, read once; the sections are built from it."""

    newest_hour: datetime | None
    spike: dict[str, Any] | None = None
    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    hours: list[dict[str, Any]] = field(default_factory=list)  # the chart's window, oldest first
    spike_hours: list[dict[str, Any]] = field(default_factory=list)
    traffic: dict[str, dict[str, Any]] = field(default_factory=dict)  # period -> sums
    recompute: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    triggers: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # key -> period
    features: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tools: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    incident: dict[str, Any] | None = None
    summary_hours: list[dict[str, Any]] = field(default_factory=list)  # no-spike path


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


def _by_period(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row.pop("period"): row for row in rows}


def _by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        period, key = row.pop("period"), row.pop("key")
        out.setdefault(key, {})[period] = row
    return out


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
    params = {"spike_id": spike["spike_id"], "days": baseline_days()}
    data.diagnoses = fetch(
        conn,
        "select * from marts.spike_diagnosis where spike_id = %s order by rank",
        (spike["spike_id"],),
    )
    data.spike_hours = fetch(
        conn,
        "select hour, total_cost_usd, baseline_cost_usd, pct_above_baseline, is_spike_hour "
        "from marts.cost_baseline_hourly where spike_id = %s order by hour",
        (spike["spike_id"],),
    )
    data.traffic = _by_period(fetch(conn, _TRAFFIC, params))
    data.recompute = _by_period(fetch(conn, _RECOMPUTE, params))
    data.tokens = _by_period(fetch(conn, _TOKENS, params))
    data.triggers = _by_key(fetch(conn, _TRIGGERS, params))
    data.features = _by_key(fetch(conn, _FEATURES, params))
    data.tools = _by_key(fetch(conn, _TOOLS, params))
    if not missing_tables(conn, ("raw.change_events",)):
        data.changes = fetch(
            conn,
            "select changed_at, kind, feature, description from raw.change_events "
            "where changed_at >= %s and changed_at < %s order by changed_at",
            (spike["spike_start"] - CHANGE_LOOKBACK, spike["spike_start"]),
        )
    if not missing_tables(conn, ("ops.incidents",)):
        rows = fetch(
            conn,
            "select incident_id, status, severity, opened_at, root_cause, root_cause_detail, "
            "mitigation_recommended, mitigation_applied, alert_created, follow_up_at, "
            "resolved_at from ops.incidents where spike_id = %s",
            (spike["spike_id"],),
        )
        data.incident = rows[0] if rows else None
    return data

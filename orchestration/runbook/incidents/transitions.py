"""When an open incident moves on: its spike is back under the threshold (resolve), or it is
past the escalation delay with the cost still rising (escalate). Read from the detection marts'
complete hours; the verdict of each hour (`is_spike_hour`) is dbt's."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from orchestration.runbook.incidents import store
from orchestration.runbook.incidents.settings import IncidentSettings

RESOLVE_AFTER_HOURS = 2


def back_under_threshold(conn: psycopg.Connection, spike_start: datetime) -> bool:
    """Whether a spike is over: what resolves its incident, and what the asset check asks."""
    hours = store.complete_hours(conn, limit=RESOLVE_AFTER_HOURS, since=spike_start)
    return quiet_hours(hours)


def quiet_hours(hours: list[dict[str, Any]]) -> bool:
    """The two newest complete hours since the spike began are consecutive and not spike hours."""
    if len(hours) < RESOLVE_AFTER_HOURS:
        return False
    if any(h["is_spike_hour"] for h in hours):
        return False
    return hours[0]["hour"] - hours[-1]["hour"] == timedelta(hours=RESOLVE_AFTER_HOURS - 1)


def should_escalate(
    conn: psycopg.Connection, incident: dict[str, Any], settings: IncidentSettings, now: datetime
) -> bool:
    """Open past the limit, not acknowledged, and the cost still rising: the newest complete
    hour (newer than when it opened) is a spike hour costing more than the hour before, or its
    excess is no lower than when the incident opened."""
    if not settings.escalation_enabled or incident["escalated_at"] is not None:
        return False
    if incident.get("acknowledged_at") is not None:
        return False
    since = incident.get("reopened_at") or incident["opened_at"]
    if now - since < timedelta(minutes=settings.escalate_after_minutes):
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

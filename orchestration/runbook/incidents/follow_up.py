"""Runbook step 8, "verify fix": a day after opening, is the root cause's own metric still up?

The verdict is dbt's: `marts.feature_cost_baseline_hourly.is_elevated` for the root cause's
feature in the newest complete hour (the spike thresholds of the detection vars), or, for a
cause with no feature, `marts.cost_baseline_hourly.is_spike_hour`. Python only reads it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from orchestration.runbook.incidents import delivery, store
from orchestration.runbook.incidents.lifecycle import refresh_report
from orchestration.runbook.incidents.settings import IncidentSettings
from orchestration.runbook.incidents.tick_report import TickReport

FEATURE_BASELINE = "marts.feature_cost_baseline_hourly"


def verdict(conn: psycopg.Connection, incident: dict[str, Any]) -> str | None:
    """`fixed` or `still_elevated` from the marts; None while they cannot say."""
    newest = store.complete_hours(conn, limit=1)
    if not newest:
        return None
    hour = newest[0]["hour"]
    diagnoses = store.diagnoses(conn, [incident["spike_id"]]).get(incident["spike_id"], [])
    feature = diagnoses[0].get("feature") if diagnoses else None
    if feature and not store.missing_tables(conn, (FEATURE_BASELINE,)):
        row = conn.execute(
            "select is_elevated from marts.feature_cost_baseline_hourly "
            "where hour = %s and feature = %s",
            (hour, feature),
        ).fetchone()
        elevated = bool(row and row[0])
    else:
        elevated = bool(newest[0]["is_spike_hour"])
    return "still_elevated" if elevated else "fixed"


def follow_up_due(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    report: TickReport,
    log: Any,
) -> None:
    for incident in store.follow_ups_due(conn, now):
        result = verdict(conn, incident)
        if result is None:
            continue
        with conn.transaction():
            if not store.set_follow_up(conn, incident["incident_id"], result, now):
                continue
            report.followed_up.append(f"#{incident['incident_id']} {result}")
            log.info(f"incident {incident['incident_id']} follow-up: {result}")
            delivery.queue_incident_alerts(
                conn, incident["incident_id"], "follow_up", now, settings
            )
            refresh_report(conn, incident["incident_id"])

"""The runbook's escalation query as a guarded action: disable the feature carrying the excess.

    UPDATE feature_flags SET enabled = false WHERE feature = 'expensive_feature'
    AND (SELECT SUM(cost_usd) FROM inference_events
         WHERE created_at > NOW() - INTERVAL '1 hour') > 1000;

Off by default; once on, dry-run by default. It looks at the last complete hour of the marts
(not the wall clock), decides at most once per hour, never touches a protected feature, and
writes every decision to `ops.actions`, dry-run or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from orchestration.incidents import store
from orchestration.incidents.settings import IncidentSettings

ACTOR = "costwatch cost cap"
ACTION_DISABLE = "cost_cap_disable_feature"
ACTION_NO_CANDIDATE = "cost_cap_no_candidate"

# Per feature: its cost in the hour, and the median of the same hour of day over the 7 days before.
_FEATURE_EXCESS_MARTS = """
with current_hour as (
    select feature, total_cost_usd as cost_usd
    from marts.feature_cost_hourly where hour = %(hour)s
),
baseline as (
    select feature, percentile_cont(0.5) within group (order by total_cost_usd) as baseline_usd
    from marts.feature_cost_hourly
    where hour in (select %(hour)s - make_interval(days => d) from generate_series(1, 7) as d)
    group by feature
)
select
    c.feature,
    c.cost_usd::float8 as cost_usd,
    coalesce(b.baseline_usd, 0)::float8 as baseline_usd
from current_hour as c left join baseline as b on b.feature = c.feature
"""

_FEATURE_EXCESS_RAW = """
with hourly as (
    select feature, date_trunc('hour', created_at) as hour, sum(cost_usd) as cost_usd
    from raw.inference_events
    where created_at >= %(hour)s - interval '7 days' and created_at < %(hour)s + interval '1 hour'
      and extract(hour from created_at at time zone 'UTC')
        = extract(hour from %(hour)s at time zone 'UTC')
    group by 1, 2
),
current_hour as (select feature, cost_usd from hourly where hour = %(hour)s),
baseline as (
    select feature, percentile_cont(0.5) within group (order by cost_usd) as baseline_usd
    from hourly where hour < %(hour)s group by feature
)
select
    c.feature,
    c.cost_usd::float8 as cost_usd,
    coalesce(b.baseline_usd, 0)::float8 as baseline_usd
from current_hour as c left join baseline as b on b.feature = c.feature
"""


@dataclass(frozen=True)
class CapDecision:
    action: str
    feature: str | None
    dry_run: bool
    hour: datetime
    hour_cost_usd: float

    def describe(self) -> str:
        if self.action == ACTION_NO_CANDIDATE:
            return (
                f"cost cap: ${self.hour_cost_usd:,.2f} in {self.hour:%H:%M}, no feature to disable"
            )
        verb = "would disable" if self.dry_run else "disabled"
        return (
            f"cost cap: {verb} feature {self.feature} "
            f"(${self.hour_cost_usd:,.2f} in {self.hour:%H:%M})"
        )


def feature_excess(conn: psycopg.Connection, hour: datetime) -> list[dict[str, Any]]:
    """Features of `hour` by excess over their own baseline, largest first, with their flags."""
    sql = (
        _FEATURE_EXCESS_MARTS
        if not store.missing_tables(conn, ("marts.feature_cost_hourly",))
        else _FEATURE_EXCESS_RAW
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, {"hour": hour}).fetchall()
        flags = {
            r["feature"]: r
            for r in cur.execute(
                "select feature, enabled, protected from app.feature_flags"
            ).fetchall()
        }
    for row in rows:
        flag = flags.get(row["feature"], {})
        row["excess_usd"] = row["cost_usd"] - row["baseline_usd"]
        row["enabled"] = flag.get("enabled", True)
        row["protected"] = flag.get("protected", False)
    return sorted(rows, key=lambda r: r["excess_usd"], reverse=True)


def apply_cost_cap(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    incident_id: int | None = None,
) -> CapDecision | None:
    """Decide (once per complete hour) whether to disable a feature; record the decision."""
    if not settings.cost_cap_enabled:
        return None
    latest = store.complete_hours(conn, limit=1)
    if not latest:
        return None
    hour = latest[0]["hour"]
    hour_cost = float(latest[0]["total_cost_usd"] or 0)
    if hour_cost <= settings.cost_cap_usd:
        return None
    decided = conn.execute(
        "select 1 from ops.actions where action like 'cost\\_cap\\_%%' and detail->>'hour' = %s",
        (hour.isoformat(),),
    ).fetchone()
    if decided:
        return None
    features = feature_excess(conn, hour)
    skipped = [
        {"feature": f["feature"], "excess_usd": round(f["excess_usd"], 6), "reason": "protected"}
        for f in features
        if f["protected"] and f["excess_usd"] > 0
    ]
    candidates = [
        f for f in features if not f["protected"] and f["enabled"] and f["excess_usd"] > 0
    ]
    detail: dict[str, Any] = {
        "hour": hour.isoformat(),
        "hour_cost_usd": hour_cost,
        "cost_cap_usd": settings.cost_cap_usd,
        "skipped": skipped,
    }
    if not candidates:
        detail["reason"] = "no enabled, unprotected feature carries excess cost"
        _record(
            conn, incident_id, now, ACTION_NO_CANDIDATE, None, settings.cost_cap_dry_run, detail
        )
        return CapDecision(ACTION_NO_CANDIDATE, None, settings.cost_cap_dry_run, hour, hour_cost)
    top = candidates[0]
    detail.update(
        feature_cost_usd=top["cost_usd"],
        feature_baseline_usd=top["baseline_usd"],
        feature_excess_usd=top["excess_usd"],
    )
    if not settings.cost_cap_dry_run:
        disabled = conn.execute(
            "update app.feature_flags set enabled = false, updated_at = %s, updated_by = %s "
            "where feature = %s and not protected returning 1",
            (now, ACTOR, top["feature"]),
        ).fetchone()
        if not disabled:
            conn.execute(
                "insert into app.feature_flags (feature, enabled, updated_at, updated_by) "
                "values (%s, false, %s, %s) on conflict (feature) do nothing",
                (top["feature"], now, ACTOR),
            )
        if incident_id is not None:
            conn.execute(
                "update ops.incidents set mitigation_applied = concat_ws('; ', "
                "mitigation_applied, %s::text), updated_at = now() where incident_id = %s",
                (
                    f"cost cap disabled feature {top['feature']} at {now:%Y-%m-%d %H:%M} UTC",
                    incident_id,
                ),
            )
    _record(
        conn, incident_id, now, ACTION_DISABLE, top["feature"], settings.cost_cap_dry_run, detail
    )
    return CapDecision(ACTION_DISABLE, top["feature"], settings.cost_cap_dry_run, hour, hour_cost)


def _record(
    conn: psycopg.Connection,
    incident_id: int | None,
    now: datetime,
    action: str,
    feature: str | None,
    dry_run: bool,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        "insert into ops.actions (incident_id, taken_at, action, feature, dry_run, detail) "
        "values (%s, %s, %s, %s, %s, %s)",
        (incident_id, now, action, feature, dry_run, Jsonb(detail)),
    )

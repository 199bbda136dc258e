"""The runbook's escalation query as a guarded action: disable the feature carrying the excess.

    UPDATE feature_flags SET enabled = false WHERE feature = 'expensive_feature'
    AND (SELECT SUM(cost_usd) FROM inference_events
         WHERE created_at > NOW() - INTERVAL '1 hour') > 1000;

Off by default; once on, dry-run by default. It looks at the last complete hour of the marts
(not the wall clock), decides at most once per incident and hour, and disables only a feature
registered in `app.feature_flags`, not protected, carrying at least half of the hour's excess
(marts.feature_cost_baseline_hourly); otherwise nothing, and the decision says why. Every
decision is a row in `ops.actions`, dry-run or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from orchestration.runbook.incidents import store
from orchestration.runbook.incidents.settings import IncidentSettings

ACTOR = "costwatch cost cap"
ACTION_DISABLE = "cost_cap_disable_feature"
ACTION_NO_CANDIDATE = "cost_cap_no_candidate"

# Per feature: its cost in the hour against its own baseline (marts.feature_cost_baseline_hourly,
# built by dbt), and whether app.feature_flags registers it.
_FEATURE_EXCESS = """
select
    b.feature,
    b.total_cost_usd::float8 as cost_usd,
    coalesce(b.baseline_cost_usd, 0)::float8 as baseline_usd,
    b.excess_cost_usd::float8 as excess_usd,
    f.feature is not null as registered,
    coalesce(f.enabled, true) as enabled,
    coalesce(f.protected, false) as protected
from marts.feature_cost_baseline_hourly as b
left join app.feature_flags as f on f.feature = b.feature
where b.hour = %(hour)s
order by b.excess_cost_usd desc, b.feature
"""


@dataclass(frozen=True)
class CapDecision:
    action: str
    feature: str | None
    dry_run: bool
    hour: datetime
    hour_cost_usd: float
    reason: str = ""

    def describe(self) -> str:
        if self.action == ACTION_NO_CANDIDATE:
            return (
                f"cost cap: ${self.hour_cost_usd:,.2f} in {self.hour:%H:%M}, nothing disabled: "
                f"{self.reason}"
            )
        verb = "would disable" if self.dry_run else "disabled"
        return (
            f"cost cap: {verb} feature {self.feature} "
            f"(${self.hour_cost_usd:,.2f} in {self.hour:%H:%M})"
        )


def feature_excess(conn: psycopg.Connection, hour: datetime) -> list[dict[str, Any]]:
    """Features of `hour` by excess over their own baseline, largest first, with their flags."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_FEATURE_EXCESS, {"hour": hour}).fetchall()


def choose(features: list[dict[str, Any]], hour_excess: float) -> tuple[dict | None, str]:
    """The feature carrying most of the hour's excess, when it may be disabled: registered,
    enabled, not protected, and carrying at least half of the excess. Else None and why."""
    if not features or features[0]["excess_usd"] <= 0:
        return None, "no feature costs more than its baseline"
    top = features[0]
    name = top["feature"]
    if hour_excess > 0 and top["excess_usd"] < hour_excess / 2:
        return None, (
            f"feature {name} carries ${top['excess_usd']:,.2f} of ${hour_excess:,.2f} excess, "
            "less than half"
        )
    if not top["registered"]:
        return None, f"feature {name} is not registered in app.feature_flags"
    if top["protected"]:
        return None, f"feature {name} is protected"
    if not top["enabled"]:
        return None, f"feature {name} is already disabled"
    return top, f"feature {name} carries ${top['excess_usd']:,.2f} of ${hour_excess:,.2f} excess"


def apply_cost_cap(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    incident_id: int | None = None,
) -> CapDecision | None:
    """Decide (once per incident and complete hour) whether to disable a feature; record it."""
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
        "select 1 from ops.actions where action like 'cost\\_cap\\_%%' and detail->>'hour' = %s "
        "and incident_id is not distinct from %s",
        (hour.isoformat(), incident_id),
    ).fetchone()
    if decided:
        return None
    if store.missing_tables(conn, ("marts.feature_cost_baseline_hourly",)):
        return None
    features = feature_excess(conn, hour)
    baseline = latest[0].get("baseline_cost_usd")
    hour_excess = hour_cost - float(baseline) if baseline is not None else hour_cost
    top, reason = choose(features, hour_excess)
    detail: dict[str, Any] = {
        "hour": hour.isoformat(),
        "hour_cost_usd": hour_cost,
        "hour_excess_usd": hour_excess,
        "cost_cap_usd": settings.cost_cap_usd,
        "reason": reason,
        "features": [
            {k: f[k] for k in ("feature", "excess_usd", "registered", "protected")}
            for f in features[:5]
        ],
    }
    if top is None:
        _record(
            conn, incident_id, now, ACTION_NO_CANDIDATE, None, settings.cost_cap_dry_run, detail
        )
        return CapDecision(
            ACTION_NO_CANDIDATE, None, settings.cost_cap_dry_run, hour, hour_cost, reason
        )
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
        detail["disabled"] = disabled is not None
        if incident_id is not None and disabled is not None:
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
    return CapDecision(
        ACTION_DISABLE, top["feature"], settings.cost_cap_dry_run, hour, hour_cost, reason
    )


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

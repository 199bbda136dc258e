"""The `cost_spikes` asset check: warns while a sustained spike is open, with its numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg

from orchestration.core.database import connect
from orchestration.core.formatting import money, pct
from orchestration.defs.incidents import COST_SPIKES, INCIDENTS, SPIKE_DIAGNOSIS
from orchestration.defs.resources import PostgresResource
from orchestration.runbook.incidents import findings, store, transitions

SPIKE_CHECK_NAME = "no_sustained_spike_open"

# --------------------------------------------------------------------------- asset check

_OPEN_SPIKES = """
select
    s.spike_id, s.spike_start, s.hours, s.excess_cost_usd, s.pct_above_baseline, s.is_ongoing,
    d.cause, d.feature, d.tool_name, d.trigger_type, d.model, d.contribution_usd, d.evidence,
    i.incident_id, i.status as incident_status
from marts.cost_spikes as s
left join {diagnosis} as d on d.spike_id = s.spike_id and d.rank = 1
left join ops.incidents as i on i.spike_id = s.spike_id
where s.is_ongoing or i.status = 'open' or i.incident_id is null
order by s.spike_start desc
"""
# An engine without the diagnosis yet: every spike undiagnosed.
_NO_DIAGNOSIS = (
    "(select null::text as spike_id, null::integer as rank, null::text as cause,"
    " null::text as feature, null::text as tool_name, null::text as trigger_type,"
    " null::text as model, null::numeric as contribution_usd, null::jsonb as evidence)"
)


def open_spike_check(url: str) -> dg.AssetCheckResult:
    """Fails (warning) while a sustained spike is open: ongoing, or not yet followed by the two
    quiet complete hours that resolve its incident (the engine's own rule, on the same data)."""
    with connect(url) as conn:
        missing = store.missing_tables(conn, (*store.DETECTION_MARTS, "ops.incidents"))
        if missing:
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"nothing to check yet: {', '.join(missing)} missing",
            )
        undiagnosed = store.missing_tables(conn, (store.DIAGNOSIS_MART,))
        sql = _OPEN_SPIKES.format(diagnosis=_NO_DIAGNOSIS if undiagnosed else store.DIAGNOSIS_MART)
        rows = [
            row
            for row in store.fetch_dicts(conn, sql)
            if row["is_ongoing"] or not transitions.back_under_threshold(conn, row["spike_start"])
        ]
    if not rows:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"open_spikes": 0},
            description="no sustained cost spike open",
        )
    top = rows[0]
    detail = findings.root_cause_detail(top, top["excess_cost_usd"]) if top["cause"] else None
    metadata: dict[str, Any] = {
        "open_spikes": len(rows),
        "spike_id": top["spike_id"],
        "spike_start": dg.MetadataValue.timestamp(top["spike_start"]),
        "spike_hours": int(top["hours"] or 0),
        # formatted as the report and the alert word them: $47.86, +97%
        "excess_cost_usd": dg.MetadataValue.text(money(top["excess_cost_usd"] or 0)),
        "pct_above_baseline": dg.MetadataValue.text(f"+{pct(top['pct_above_baseline'] or 0)}"),
        "root_cause": top["cause"] or "undiagnosed",
        "ongoing": bool(top["is_ongoing"]),
    }
    if detail:
        metadata["root_cause_detail"] = detail
    if top["incident_id"] is not None:
        metadata["incident"] = f"#{top['incident_id']} ({top['incident_status']})"
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=(
            f"cost spike {top['spike_id']} since {top['spike_start']:%Y-%m-%d %H:%M} UTC: "
            f"${float(top['excess_cost_usd'] or 0):,.2f} excess, root cause "
            f"{top['cause'] or 'undiagnosed'}"
        ),
    )


def spike_asset_checks(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    """The `cost_spikes` check, when the detection models are part of the dbt project."""
    keys = {key for asset in assets for key in asset.keys}
    if COST_SPIKES not in keys:
        return []
    # after the incident step when it is there, so the check names the incident the pass
    # opened (the step only acts on error checks; this one warns)
    deps = [key for key in (SPIKE_DIAGNOSIS, INCIDENTS) if key in keys]

    @dg.asset_check(
        asset=COST_SPIKES,
        name=SPIKE_CHECK_NAME,
        additional_deps=deps,
        blocking=False,
        description=(
            "Warns while a sustained cost spike is open: its start, excess and root cause are "
            "in the metadata, so the spike shows on the asset, not only in the alert."
        ),
    )
    def no_sustained_spike_open(database: PostgresResource) -> dg.AssetCheckResult:
        return open_spike_check(database.url)

    return [no_sustained_spike_open]

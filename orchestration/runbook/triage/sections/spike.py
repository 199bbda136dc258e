"""The report's header and runbook step 1: is the spike real (cost against its baseline)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestration.core.formatting import (
    escape_md,
    hour_label,
    money,
    signed_pct,
    table,
    when,
)
from orchestration.runbook.triage.sections.common import (
    Row,
    cause_label,
)


def header(spike: Row, causes: Sequence[Row]) -> list[str]:
    title = cause_label(causes[0]) if causes else "undiagnosed"
    return [f"# Cost spike {escape_md(spike['spike_id'])}: {title}"]


def step1(spike: Row, spike_hours: Sequence[Row]) -> list[str]:
    hours = int(spike.get("hours") or len(spike_hours))
    state = "ongoing" if spike.get("is_ongoing") else f"ended {when(spike.get('spike_end'))}"
    lines = [
        "## Step 1: Confirm the spike",
        "",
        f"**Finding:** real and sustained, not a one-hour blip: {hours} hours above the "
        f"baseline (the same hour on earlier days of its day type, weekday or weekend, scaled "
        f"to the recent level: `marts.cost_baseline_hourly`), starting "
        f"**{when(spike.get('spike_start'))}** ({state}), peak at {when(spike.get('peak_hour'))}. "
        f"It cost {money(spike.get('total_cost_usd'))} against a baseline of "
        f"{money(spike.get('baseline_cost_usd'))} (`marts.cost_spikes`).",
        "",
    ]
    rows = [
        (
            hour_label(h["hour"]),
            money(h.get("total_cost_usd")),
            money(h.get("baseline_cost_usd")),
            signed_pct(h.get("pct_above_baseline")),
            "yes" if h.get("is_spike_hour") else "no",
        )
        for h in spike_hours
    ]
    lines += table(("hour (UTC)", "cost", "baseline", "over baseline", "spike hour"), rows)
    return lines

"""What the steps found: the change events before the spike, the causes in the catalogue's words,
the mitigation (step 7), the follow-up (step 8), and the report when there is no spike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestration.core.formatting import (
    escape_md,
    hour_label,
    money,
    number,
    pct,
    signed_pct,
    table,
    when,
)
from orchestration.runbook.triage.sections.common import (
    Row,
    as_float,
    cause_label,
)
from orchestration.runbook.triage.summary import key_number


def changes_section(changes: Sequence[Row]) -> list[str]:
    lines = ["## Changes in the 24 hours before the start (`raw.change_events`)", ""]
    if not changes:
        return [*lines, "None recorded."]
    rows = [
        (
            when(c.get("changed_at")),
            escape_md(c.get("kind")),
            escape_md(c.get("feature") or ""),
            escape_md(c.get("description") or ""),
        )
        for c in changes
    ]
    return [*lines, *table(("changed at", "kind", "feature", "description"), rows, "llll")]


def causes_section(causes: Sequence[Row], summary: Row | None) -> list[str]:
    lines = ["## Causes, ranked (`marts.spike_causes`)", ""]
    if not causes:
        return [*lines, "No cause found: work the runbook by hand from step 1."]
    summary = summary or {}
    root = causes[0]
    rows = [
        (
            int(c.get("rank") or 0),
            escape_md(c.get("cause")),
            f"**{escape_md(c['detail'])}**" if c.get("detail") else "",
            money(c.get("excess_usd")),
            pct(c.get("share_of_excess")),
            key_number(c) or "",
        )
        for c in causes
    ]
    unexplained = summary.get("unexplained_usd")
    if unexplained is not None and abs(float(unexplained)) >= 0.005:
        label = "not explained" if float(unexplained) > 0 else "offset (other costs fell)"
        rows.append(("", label, "", money(unexplained), "", ""))
    return [
        *lines,
        f"**Root cause:** {cause_label(root)}, explaining {money(root.get('excess_usd'))} "
        f"({pct(root.get('share_of_excess'))}) of the spike's "
        f"{money(summary.get('excess_cost_usd'))} excess.",
        "",
        *table(("rank", "cause", "on", "excess explained", "share", "key number"), rows, "rllrrl"),
    ]


def step7(causes: Sequence[Row]) -> list[str]:
    root = causes[0] if causes else {}
    lines = ["## Step 7: Immediate mitigation", ""]
    if not root:
        return [*lines, "No cause found: follow the runbook from step 1."]
    return [
        *lines,
        f"For the root cause, {cause_label(root)} (`seeds/cause_catalogue.csv`):",
        "",
        str(root.get("recommended_fix") or root.get("action") or ""),
    ]


def alert_deliveries(alerts: Sequence[Row]) -> str:
    """Where the incident's alerts went: `log: opened sent; slack: opened failed`."""
    if not alerts:
        return "none queued yet"
    parts = [
        f"{escape_md(a.get('channel'))}: {escape_md(a.get('kind'))} {escape_md(a.get('status'))}"
        for a in alerts
    ]
    external = {a.get("channel") for a in alerts} - {"log"}
    text = "; ".join(parts)
    if not external:
        text += (
            ". The console log only: set `COSTWATCH_SLACK_WEBHOOK_URL`, "
            "`COSTWATCH_ALERT_WEBHOOK_URL` or `COSTWATCH_PAGERDUTY_ROUTING_KEY` to page someone"
        )
    return text


def step8(
    causes: Sequence[Row],
    incident: Row | None,
    alerts: Sequence[Row] = (),
) -> list[str]:
    root = causes[0] if causes else {}
    lines = ["## Step 8: Document and monitor", ""]
    if incident is None:
        cause = cause_label(root) if root else "undiagnosed"
        return [
            *lines,
            f"- **Root cause:** {cause}",
            "- **Mitigation applied:** none recorded (no incident yet: the incident sensor "
            "opens one on the next pass)",
            "- **Alert created:** No",
            "- **Follow-up scheduled for:** when the incident opens (opened + 24 h)",
        ]
    applied = incident.get("mitigation_applied")
    status = escape_md(incident.get("status") or "open")
    severity = escape_md(incident.get("severity") or "n/a")
    if incident.get("incident_id"):
        opened = f"#{incident['incident_id']} ({status}, severity {severity})"
        alerted = "Yes" if incident.get("alert_created") else "No"
        alerted += f"; {alert_deliveries(alerts)}"
    else:  # the report of an incident being opened
        opened = f"opened with this report ({status}, severity {severity})"
        alerted = (
            "Yes (the opened alert is queued on every channel)"
            if status == "open"
            else "No (a past spike, recorded without paging)"
        )
    return [
        *lines,
        f"- **Incident:** {opened}",
        f"- **Root cause:** {escape_md(incident.get('root_cause') or 'undiagnosed')}"
        + (
            f": {cause_label(root)}, explaining {money(root.get('excess_usd'))} of the "
            "excess (see the ranked causes)"
            if root
            else ""
        ),
        f"- **Mitigation recommended:** {cause_label(root) if root else 'see step 7'} fix (step 7)",
        f"- **Mitigation applied:** {escape_md(applied) if applied else 'not yet recorded'}",
        f"- **Alert created:** {alerted}",
        f"- **Follow-up scheduled for:** {when(incident.get('follow_up_at'))}",
    ]


def no_spike(newest: Any, hours: Sequence[Row]) -> list[str]:
    """Step 1's confirmation query over the last 48 hours, when there is nothing to triage."""
    total = sum(as_float(h.get("total_cost_usd")) for h in hours)
    requests = sum(as_float(h.get("requests")) for h in hours)
    over = [h for h in hours if h.get("pct_above_baseline") is not None]
    worst = max(over, key=lambda h: as_float(h["pct_above_baseline"]), default=None)
    lines = [
        "# No cost spike",
        "",
        f"No sustained cost spike in `marts.cost_spikes` (data up to {when(newest)}).",
        "",
        f"Last {len(hours)} hours: {money(total)} for {number(requests)} requests"
        + (
            f"; the hour furthest above its baseline was {when(worst['hour'])} at "
            f"{signed_pct(worst['pct_above_baseline'])}."
            if worst
            else "."
        ),
        "",
        "## Step 1: Confirm the spike (last 48 hours, `marts.cost_hourly`)",
        "",
    ]
    rows = [
        (
            hour_label(h["hour"]),
            number(h.get("requests")),
            number(h.get("unique_users")),
            money(h.get("total_cost_usd")),
            money(h.get("avg_cost_per_request_usd"), 5),
            money(h.get("baseline_cost_usd")),
            signed_pct(h.get("pct_above_baseline")),
        )
        for h in hours
    ]
    return lines + table(
        (
            "hour (UTC)",
            "requests",
            "unique users",
            "total cost",
            "avg cost/request",
            "baseline",
            "over baseline",
        ),
        rows,
    )

"""On-call's first screen: the five-line summary of a spike, from `marts.spike_summary`.

Pure: a summary row (and the incident, when there is one) in, Markdown lines out. The same
lines open the triage report, the Slack message and the end of `make demo`; every number in
them is a column of the mart (dbt computed it), this module only words and formats them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestration.core.formatting import escape_md, money, number, pct, when

# How a runbook metric (marts.spike_runbook_steps.metric) reads in a sentence.
METRIC_LABELS = {
    "requests_per_hour": "requests per hour",
    "unique_users_per_hour": "unique users per hour",
    "cost_per_hour": "cost per hour",
    "cost_per_request": "cost per request",
    "hidden_ratio": "hidden-recompute ratio",
    "hidden_cost_usd": "hidden recompute cost",
    "cost_usd": "cost over the spike's hours",
    "avg_input_tokens": "avg input tokens",
    "p95_input_tokens": "p95 input tokens",
    "avg_output_tokens": "avg output tokens",
    "p95_output_tokens": "p95 output tokens",
    "share_of_cost_change": "share of the cost change",
    "calls_per_hour": "calls per hour",
    "failure_rate": "failure rate",
    "avg_retries": "avg retries",
}
SUMMARY_LABELS = ("Incident", "Excess", "Cause", "Likely trigger", "Action")


def value(amount: Any, unit: str | None) -> str:
    """A metric value in its unit (marts.spike_runbook_steps.unit)."""
    if unit == "ratio":
        return pct(amount, 1)
    if unit == "usd":
        return money(amount)
    if unit == "tokens":
        return number(amount)
    return number(amount, 1)


def key_number(row: Mapping[str, Any], prefix: str = "key_") -> str:
    """`hidden-recompute ratio 5.1% -> 50.1%`: a cause's key number, before -> after."""
    metric = row.get(f"{prefix}metric")
    if not metric or row.get(f"{prefix}after") is None:
        return ""
    unit = row.get(f"{prefix}unit")
    subject = row.get(f"{prefix}subject")
    label = METRIC_LABELS.get(str(metric), escape_md(metric))
    if subject and metric in ("cost_usd", "failure_rate", "avg_retries", "calls_per_hour"):
        label = f"{escape_md(subject)} {label}"
    return (
        f"{label} {value(row.get(f'{prefix}before'), unit)} -> "
        f"{value(row.get(f'{prefix}after'), unit)}"
    )


def cause_name(title: Any, detail: Any) -> str:
    """`hidden recompute (**auto\\_save**)`: the catalogue's title and what it is pinned on."""
    name = escape_md(title or "undiagnosed")
    return f"{name} (**{escape_md(detail)}**)" if detail else name


def ack_command(incident: Mapping[str, Any] | None) -> str:
    if incident and incident.get("incident_id"):
        return f"`costwatch incidents ack {incident['incident_id']}`"
    return "`costwatch incidents list`, then `costwatch incidents ack ID`"


def incident_line(summary: Mapping[str, Any], incident: Mapping[str, Any] | None) -> str:
    hours = int(summary.get("hours") or 0)
    since = f"since {when(summary.get('spike_start'))} ({hours} hours)"
    state = (
        f"ongoing {since}"
        if summary.get("is_ongoing")
        else f"over: {since}, ended {when(summary.get('spike_end'))}"
    )
    if incident is None:
        return f"- **Incident:** none yet (the next pass's incident step opens it); {state}"
    severity = escape_md(incident.get("severity") or "n/a")
    status = escape_md(incident.get("status") or "open")
    if incident.get("incident_id"):
        name = f"#{incident['incident_id']}"
        if incident.get("acknowledged_at"):
            status += ", acknowledged"
    else:
        name = "opened with this report"
    return f"- **Incident:** {name} ({status}, severity {severity}); {state}"


def excess_line(summary: Mapping[str, Any]) -> str:
    now = ""
    if summary.get("is_ongoing") and summary.get("latest_hour_excess_usd") is not None:
        now = (
            f"; **{money(summary['latest_hour_excess_usd'])} per hour now** (the newest complete "
            f"hour, {when(summary.get('latest_hour'))})"
        )
    return (
        f"- **Excess:** **{money(summary.get('excess_cost_usd'))}** so far, "
        f"**{pct(summary.get('pct_above_baseline'))} over baseline**{now}"
    )


def cause_line(summary: Mapping[str, Any]) -> str:
    if not summary.get("root_cause"):
        return "- **Cause:** none found in `marts.spike_diagnosis`: work the runbook by hand"
    name = cause_name(summary.get("root_cause_title"), summary.get("root_cause_detail"))
    key = key_number(summary)
    unexplained = float(summary.get("unexplained_usd") or 0)
    rest = (
        f", {money(unexplained)} not explained"
        if unexplained >= 0.005
        else (f" (other costs fell by {money(-unexplained)})" if unexplained <= -0.005 else "")
    )
    return (
        f"- **Cause:** {name}{f': {key}' if key else ''}; explains "
        f"{money(summary.get('root_cause_excess_usd'))} "
        f"({pct(summary.get('root_cause_share_of_excess'))}) of the excess{rest}"
    )


def trigger_line(summary: Mapping[str, Any]) -> str:
    if not summary.get("trigger_kind"):
        return (
            "- **Likely trigger:** no change recorded in `raw.change_events` in the 24 hours "
            "before the start"
        )
    hours = summary.get("trigger_hours_before_start")
    before = f"{float(hours):.1f} hours before the start, " if hours is not None else ""
    feature = (
        f" on **{escape_md(summary['trigger_feature'])}**" if summary.get("trigger_feature") else ""
    )
    return (
        f"- **Likely trigger:** {escape_md(summary['trigger_kind'])} change{feature} "
        f"({before}{when(summary.get('trigger_changed_at'))}): "
        f"{escape_md(summary.get('trigger_description') or '')}"
    )


def action_line(summary: Mapping[str, Any], incident: Mapping[str, Any] | None) -> str:
    action = summary.get("action") or "follow the runbook from step 1"
    return f"- **Action:** {action}. Acknowledge: {ack_command(incident)}"


def summary_lines(
    summary: Mapping[str, Any] | None, incident: Mapping[str, Any] | None = None
) -> list[str]:
    """The five lines, as a Markdown bullet list; [] when the mart has no row."""
    if not summary:
        return []
    return [
        incident_line(summary, incident),
        excess_line(summary),
        cause_line(summary),
        trigger_line(summary),
        action_line(summary, incident),
    ]


def summary_from_markdown(markdown: str | None) -> dict[str, str]:
    """The summary's lines of a stored report (`ops.incidents.report_md`), by label, so a
    channel message quotes the report's own words."""
    out: dict[str, str] = {}
    for line in (markdown or "").splitlines():
        if line.startswith("## "):
            break
        for label in SUMMARY_LABELS:
            prefix = f"- **{label}:** "
            if line.startswith(prefix):
                out[label] = line.removeprefix(prefix)
    return out

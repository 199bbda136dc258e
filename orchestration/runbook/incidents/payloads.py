"""Each channel's message for an incident: the contract's webhook JSON, Slack's blocks,
PagerDuty's Events API v2, and the pipeline_failed alert.

Pure: nothing here touches the network, the database or the clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orchestration.core.formatting import escape_slack, strip_control
from orchestration.runbook.incidents.findings import alert_money, alert_pct, alert_when
from orchestration.runbook.incidents.severity import (
    PAGERDUTY_SEVERITY,
    incident_dedup_key,
    pipeline_dedup_key,
)
from orchestration.runbook.triage.summary import summary_from_markdown

EVENTS = {
    "opened": "incident.opened",
    "updated": "incident.updated",
    "escalated": "incident.escalated",
    "acknowledged": "incident.acknowledged",
    "resolved": "incident.resolved",
    "reopened": "incident.reopened",
    "follow_up": "incident.follow_up",
}


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def webhook_payload(incident: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The contract's generic webhook JSON (section 6)."""
    return {
        "event": EVENTS[kind],
        "incident_id": incident["incident_id"],
        "spike_id": incident["spike_id"],
        "spike_start": _iso(incident.get("spike_start")),
        "severity": incident.get("severity"),
        "root_cause": incident.get("root_cause"),
        "root_cause_detail": incident.get("root_cause_detail"),
        "excess_cost_usd": _float(incident.get("excess_cost_usd")),
        "pct_above_baseline": _float(incident.get("pct_above_baseline")),
        "mitigation_recommended": incident.get("mitigation_recommended"),
        "dedup_key": incident_dedup_key(incident),
        **({"follow_up_result": incident.get("follow_up_result")} if kind == "follow_up" else {}),
    }


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


_HEADLINES = {
    "opened": ":rotating_light: Cost spike: {cause}",
    "escalated": ":fire: ESCALATED, cost still rising: {cause}",
    "resolved": ":white_check_mark: Resolved, cost back under the threshold: {cause}",
    "updated": ":mag: Cause found for the cost spike: {cause}",
    "acknowledged": ":eyes: Acknowledged: {cause}",
    "reopened": ":rotating_light: Reopened, the cost spike is back: {cause}",
    "follow_up": ":clipboard: Follow-up, 24 h later: {cause}",
}


def md_to_slack(text: str) -> str:
    """A line of the report's Markdown as Slack mrkdwn: `**bold**` -> `*bold*`, backslash
    escapes dropped, `&<>` escaped (the report's entities are already escaped)."""
    out = re.sub(r"\*\*(.+?)\*\*", r"*\1*", strip_control(text))
    out = re.sub(r"\\([\\`*_\[\]|~#\-+=.)])", r"\1", out)
    return out.replace("<", "&lt;").replace(">", "&gt;")


def slack_summary(incident: Mapping[str, Any], kind: str = "opened") -> str:
    """The on-call summary in mrkdwn: the incident from its row; the excess from its report when
    the alert is the opening one (with the cost per hour now), else the row's live figure; the
    cause, likely trigger and action from its report's summary (marts.spike_summary)."""
    report = summary_from_markdown(incident.get("report_md"))
    incident_id = incident["incident_id"]
    excess = f"*Excess:* {alert_money(incident.get('excess_cost_usd'))} so far " + (
        f"({alert_pct(incident.get('pct_above_baseline'))} above baseline)"
    )
    if kind == "opened" and report.get("Excess"):
        excess = f"*Excess:* {md_to_slack(report['Excess'])}"
    lines = [
        f"*Incident #{incident_id}* ({escape_slack(incident.get('severity'))}), spike "
        f"`{escape_slack(incident['spike_id'])}`, since {alert_when(incident.get('spike_start'))}",
        excess,
    ]
    if report.get("Cause"):
        lines.append(f"*Cause:* {md_to_slack(report['Cause'])}")
    else:
        cause = incident.get("root_cause_detail") or incident.get("root_cause") or "unknown"
        lines.append(f"*Cause:* {escape_slack(cause)}")
    if report.get("Likely trigger"):
        lines.append(f"*Likely trigger:* {md_to_slack(report['Likely trigger'])}")
    if report.get("Action"):
        action = report["Action"].split(" Acknowledge: ")[0]
        lines.append(f"*Action:* {md_to_slack(action)}")
    lines.append(f"*Acknowledge:* `costwatch incidents ack {incident_id}`")
    return "\n".join(lines)


def slack_payload(incident: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A Slack incoming-webhook message on-call can act on: the five-line summary, the fix."""
    cause = incident.get("root_cause") or "unknown cause"
    # Names from the data (feature, tool) reach Slack: escaped for mrkdwn, one line each.
    headline = _HEADLINES[kind].format(cause=strip_control(cause))
    facts = slack_summary(incident, kind)
    text = f"{escape_slack(headline)}\n{facts}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": facts[:3000]}},
    ]
    if kind == "follow_up":
        verdict = incident.get("follow_up_result") or "unknown"
        text += f"\n*Follow-up:* {escape_slack(verdict)}"
    if kind not in ("resolved", "acknowledged", "follow_up"):
        fix = escape_slack(incident.get("mitigation_recommended") or "", keep_newlines=True)
        text += f"\n*Fix:* {fix}"
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Fix:*\n{fix}"[:3000]}}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"`costwatch incidents show {incident['incident_id']}` · "
                    f"`{escape_slack(incident_dedup_key(incident))}`",
                }
            ],
        }
    )
    return {"text": text, "blocks": blocks}


def pagerduty_payload(incident: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """An Events API v2 event, without its routing key (added on the wire, never stored)."""
    key = incident_dedup_key(incident)
    if kind == "resolved":
        return {"event_action": "resolve", "dedup_key": key}
    if kind == "acknowledged":
        return {"event_action": "acknowledge", "dedup_key": key}
    severity = (
        "critical"
        if kind == "escalated"
        else PAGERDUTY_SEVERITY.get(str(incident.get("severity")), "warning")
    )
    prefix = {"escalated": "ESCALATED: ", "reopened": "REOPENED: ", "follow_up": "STILL ELEVATED: "}
    prefix = prefix.get(kind, "")
    summary = (
        f"{prefix}LLM cost spike {alert_money(incident.get('excess_cost_usd'))} over baseline "
        f"since "
        f"{alert_when(incident.get('spike_start'))}: {incident.get('root_cause')}"
    )
    return {
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": summary[:1024],
            "source": "costwatch",
            "severity": severity,
            "timestamp": _iso(incident.get("spike_start")),
            "component": "llm-inference",
            "group": "cost",
            "class": incident.get("root_cause"),
            "custom_details": webhook_payload(incident, kind),
        },
    }


def pipeline_failed_payloads(error: str | None, at: datetime, run_id: str | None = None) -> dict:
    """The messages for a failed pass, per channel (no incident behind them)."""
    key = pipeline_dedup_key(at)
    reason = error or "the costwatch pass failed"
    generic = {
        "event": "pipeline.failed",
        "error": reason,
        "run_id": run_id,
        "failed_at": at.isoformat(),
        "dedup_key": key,
    }
    text = f":warning: costwatch pipeline failed: {reason} (`{key}`)"
    return {
        "webhook": generic,
        "slack": {
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        },
        "pagerduty": {
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": f"costwatch pipeline failed: {reason}"[:1024],
                "source": "costwatch",
                "severity": "error",
                "timestamp": at.isoformat(),
                "component": "costwatch",
                "group": "pipeline",
                "custom_details": generic,
            },
        },
        "log": generic,
        "leadership_slack": {"text": text},
        "leadership_webhook": generic,
    }


def incident_payloads(incident: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The stored (secret-free) payload for each channel (leadership's reuse on-call's formats)."""
    return {
        "webhook": webhook_payload(incident, kind),
        "slack": slack_payload(incident, kind),
        "pagerduty": pagerduty_payload(incident, kind),
        "log": webhook_payload(incident, kind),
        "leadership_slack": slack_payload(incident, kind),
        "leadership_webhook": webhook_payload(incident, kind),
    }

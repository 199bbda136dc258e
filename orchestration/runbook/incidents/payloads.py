"""Pure builders: severity, the runbook's fix for a cause, each channel's message, retry policy.

Nothing here touches the network, the database or the clock, so all of it is unit-tested alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from orchestration.core.formatting import escape_slack, strip_control
from orchestration.runbook.triage import catalogue
from orchestration.runbook.triage.summary import summary_from_markdown

# --------------------------------------------------------------------------- severity

# Excess cost of the spike (USD) at or above which an incident gets each severity.
SEVERITY_THRESHOLDS_USD: tuple[tuple[str, float], ...] = (
    ("critical", 500.0),
    ("high", 100.0),
    ("medium", 25.0),
)
PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


# Excess as a fraction of the baseline cost of the spike's hours, for each severity: doubling
# the spend is serious at any scale, even before the absolute amount is.
SEVERITY_RATIOS: tuple[tuple[str, float], ...] = (("critical", 3.0), ("high", 1.0), ("medium", 0.5))
_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def severity_for(
    excess_cost_usd: float | None,
    pct_above_baseline: float | None = None,
    thresholds: tuple[tuple[str, float], ...] = SEVERITY_THRESHOLDS_USD,
) -> str:
    """The higher of two readings of the excess cost: in USD (critical >= $500, high >= $100,
    medium >= $25) and relative to baseline (critical >= +300%, high >= +100%, medium >= +50%)."""
    excess = float(excess_cost_usd or 0.0)
    ratio = float(pct_above_baseline or 0.0)
    by_usd = next((name for name, floor in thresholds if excess >= floor), "low")
    by_ratio = next((name for name, floor in SEVERITY_RATIOS if ratio >= floor), "low")
    return max(by_usd, by_ratio, key=_RANK.__getitem__) if excess > 0 else "low"


def parse_severity_thresholds(text: str) -> tuple[tuple[str, float], ...]:
    """`"25,100,500"` (medium, high, critical floors in USD) -> thresholds, highest first."""
    try:
        medium, high, critical = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"expected three increasing USD amounts 'medium,high,critical', got {text!r}"
        ) from None
    if not 0 <= medium <= high <= critical:
        raise ValueError(f"expected three increasing USD amounts, got {text!r}")
    return (("critical", critical), ("high", high), ("medium", medium))


def dedup_key(spike_id: str) -> str:
    """One key per spike, shared by every channel and kind (PagerDuty groups on it)."""
    return f"costwatch-{spike_id}"


def incident_dedup_key(incident: Mapping[str, Any]) -> str:
    """The incident's own key (kept when late data moves its spike's start)."""
    return incident.get("dedup_key") or dedup_key(incident["spike_id"])


def pipeline_dedup_key(at: datetime) -> str:
    """A failing pipeline alerts once per hour, whether `costwatch run` or a sensor saw it."""
    return f"costwatch-pipeline-failed-{at:%Y%m%dT%H}"


# --------------------------------------------------------------------------- the runbook's fixes


def mitigation_for(
    cause: str | None,
    *,
    feature: str | None = None,
    tool_name: str | None = None,
    trigger_type: str | None = None,
    model: str | None = None,
    fallback: str | None = None,
) -> str:
    """The runbook's fix for `cause` in the cause catalogue's words (the same text dbt puts in
    `marts.spike_diagnosis.recommended_fix`); `fallback` for a cause the catalogue lacks."""
    detail = trigger_type or tool_name or feature or model
    return (
        catalogue.fix(cause, detail)
        or fallback
        or "No runbook fix for this cause: follow the runbook from step 1."
    )


def _money(value: Any) -> str:
    return f"${float(value or 0):,.2f}"


def _pct(value: Any) -> str:
    return f"{float(value or 0) * 100:.0f}%"


# A name from the data (a feature, a tool) shown in an alert: long enough to recognise, never a
# 100 KB value that would push a Slack section past its 3,000 characters and get it rejected.
NAME_MAX_CHARS = 120


def clip(text: Any, limit: int = NAME_MAX_CHARS) -> str:
    value = str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def cause_subject(diagnosis: Mapping[str, Any]) -> str | None:
    """The column a cause fills (feature, tool, trigger type or model), as `name=value`."""
    for column in ("trigger_type", "tool_name", "feature", "model"):
        if diagnosis.get(column):
            return f"{column}={clip(diagnosis[column])}"
    return None


def _num(value: Any, kind: str) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "?"
    if kind == "pct":
        return f"{number * 100:.1f}%"
    if kind == "usd":
        return f"${number:,.2f}" if abs(number) >= 0.1 else f"${number:.4f}"
    return f"{number:,.0f}" if abs(number) >= 100 else f"{number:.3g}"


def _change(node: Any, label: str, kind: str = "num", before="before", after="after") -> str | None:
    if not isinstance(node, Mapping) or before not in node or after not in node:
        return None
    return f"{label} {_num(node[before], kind)} -> {_num(node[after], kind)}"


def _evidence(evidence: Any) -> Mapping[str, Any]:
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except json.JSONDecodeError:
            return {}
    return evidence if isinstance(evidence, Mapping) else {}


def key_facts(diagnosis: Mapping[str, Any]) -> list[str]:
    """The numbers an on-call engineer would quote for this cause (before -> after the spike)."""
    ev = _evidence(diagnosis.get("evidence"))
    cause = diagnosis.get("cause")
    tokens = ev.get("tokens") if isinstance(ev.get("tokens"), Mapping) else {}
    facts: list[str | None] = []
    if cause == "hidden_recompute":
        facts.append(_change(ev.get("hidden_ratio"), "hidden-recompute ratio", "pct"))
        trigger = (ev.get("triggers") or {}).get(diagnosis.get("trigger_type") or "")
        facts.append(
            _change(trigger, f"{diagnosis.get('trigger_type')} requests", before="requests_before",
                    after="requests_after")
        )  # fmt: skip
    elif cause == "context_bloat":
        facts.append(_change(tokens.get("avg_input"), "avg input tokens"))
        facts.append(_change(tokens.get("p95_input"), "p95 input tokens"))
    elif cause == "output_growth":
        facts.append(_change(tokens.get("avg_output"), "avg output tokens"))
        model = (ev.get("models") or {}).get(diagnosis.get("model") or "")
        facts.append(
            _change(model, f"{diagnosis.get('model')} share", "pct", "share_before", "share_after")
        )
    elif cause == "tool_retry_storm":
        tool = (ev.get("tools") or {}).get(diagnosis.get("tool_name") or "")
        name = diagnosis.get("tool_name")
        facts.append(
            _change(
                tool, f"{name} failure rate", "pct", "failure_rate_before", "failure_rate_after"
            )
        )
        facts.append(
            _change(tool, f"{name} avg retries", "num", "avg_retries_before", "avg_retries_after")
        )
    elif cause == "feature_concentration":
        feature = (ev.get("features") or {}).get(diagnosis.get("feature") or "")
        facts.append(
            _change(feature, f"{diagnosis.get('feature')} cost", "usd", "cost_before_usd",
                    "cost_after_usd")
        )  # fmt: skip
    elif cause == "traffic_increase":
        facts.append(_change(ev.get("requests_per_hour"), "requests/hour"))
        facts.append(_change(ev.get("unique_users"), "unique users"))
        facts.append(_change(ev.get("top_users_share"), "top users' share", "pct"))
        agents = ev.get("top_user_agents")
        if isinstance(agents, list) and agents and isinstance(agents[0], Mapping):
            top = agents[0]
            facts.append(
                f"top user agent {str(top.get('user_agent'))[:60]!r} "
                f"({_num(top.get('share_after'), 'pct')} of requests)"
            )
    facts.append(_change(ev.get("cost_per_request_usd"), "cost/request", "usd"))
    facts += change_events(ev)
    return [f for f in facts if f]


def change_events(evidence: Any) -> list[str]:
    """Changes (deploys, model versions, prompts, UX, config) in the 24 hours before the spike."""
    events = _evidence(evidence).get("change_events")
    out = []
    for event in events if isinstance(events, list) else []:
        if isinstance(event, Mapping):
            when = str(event.get("changed_at") or "")[:16].replace("T", " ")
            out.append(f"change {event.get('kind')} at {when}: {event.get('description')}")
    return out


def evidence_highlights(evidence: Any, limit: int = 6) -> list[str]:
    """The first few scalar facts of a diagnosis' evidence, one short line each."""
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except json.JSONDecodeError:
            return [evidence[:200]]
    out: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if len(out) >= limit:
            return
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list):
            if value and all(not isinstance(v, Mapping | list) for v in value):
                out.append(f"{prefix}: {', '.join(str(v) for v in value[:5])}")
            elif value:
                out.append(f"{prefix}: {json.dumps(value[:2], default=str)[:160]}")
        elif value is not None:
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            out.append(f"{prefix}: {shown[:160]}")

    walk("", evidence)
    return out[:limit]


def root_cause_detail(diagnosis: Mapping[str, Any], excess_cost_usd: Any) -> str:
    """One readable line: what the cause is about, its key number, its share of THE excess
    (marts.cost_spikes.excess_cost_usd; the share is dbt's, `evidence.share_of_excess`)."""
    cause = diagnosis.get("cause") or "unknown"
    subject = cause_subject(diagnosis)
    ev = _evidence(diagnosis.get("evidence"))
    text = f"{cause}{f' ({subject})' if subject else ''}"
    facts = [f for f in key_facts(diagnosis) if not f.startswith(("cost/request", "change "))]
    if facts:
        text += f": {facts[0]};"
    share = ev.get("share_of_excess")
    if share is not None:
        # Other costs may fall meanwhile, so a cause can explain more than the whole excess.
        part = "all" if float(share) >= 1 else f"{float(share):.0%}"
        text += f" explains {part} of the {_money(excess_cost_usd)} excess cost"
    else:
        text += f" the spike's excess is {_money(excess_cost_usd)}"
    changes = change_events(diagnosis.get("evidence"))
    if changes:
        text += f"; after {changes[0].removeprefix('change ')}"
    return text


def summary_report(
    incident: Mapping[str, Any],
    spike: Mapping[str, Any],
    diagnoses: Sequence[Mapping[str, Any]],
) -> str:
    """A concise Markdown report for `ops.incidents.report_md` (until the triage report lands)."""
    lines = [
        f"# Cost spike {spike['spike_id']}",
        "",
        f"- **Severity:** {incident.get('severity')}",
        f"- **Started:** {_when(spike.get('spike_start'))} ({spike.get('hours')} hours, "
        f"peak {_when(spike.get('peak_hour'))}, "
        f"{'ongoing' if spike.get('is_ongoing') else 'ended'})",
        f"- **Cost:** {_money(spike.get('total_cost_usd'))} against a baseline of "
        f"{_money(spike.get('baseline_cost_usd'))}: {_money(spike.get('excess_cost_usd'))} excess, "
        f"{_pct(spike.get('pct_above_baseline'))} above baseline",
        f"- **Root cause:** {incident.get('root_cause')}: {incident.get('root_cause_detail')}",
        "",
        "## Causes found",
        "",
        "| rank | cause | on | explains |",
        "| --- | --- | --- | --- |",
    ]
    for d in diagnoses:
        lines.append(
            f"| {d.get('rank')} | {d.get('cause')} | {cause_subject(d) or ''} | "
            f"{_money(d.get('contribution_usd'))} |"
        )
    if diagnoses:
        highlights = key_facts(diagnoses[0]) or evidence_highlights(diagnoses[0].get("evidence"))
        if highlights:
            lines += ["", "## Evidence (root cause)", ""]
            lines += [f"- {h}" for h in highlights]
    lines += ["", "## Mitigation (runbook step 7)", "", str(incident.get("mitigation_recommended"))]
    lines += [
        "",
        "## Follow-up (runbook step 8)",
        "",
        f"- Root cause recorded in the incident log; alert created; follow-up at "
        f"{_when(incident.get('follow_up_at'))}.",
    ]
    return "\n".join(lines) + "\n"


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return str(value) if value is not None else "?"


# --------------------------------------------------------------------------- channel messages

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
    excess = f"*Excess:* {_money(incident.get('excess_cost_usd'))} so far " + (
        f"({_pct(incident.get('pct_above_baseline'))} above baseline)"
    )
    if kind == "opened" and report.get("Excess"):
        excess = f"*Excess:* {md_to_slack(report['Excess'])}"
    lines = [
        f"*Incident #{incident_id}* ({escape_slack(incident.get('severity'))}), spike "
        f"`{escape_slack(incident['spike_id'])}`, since {_when(incident.get('spike_start'))}",
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
        f"{prefix}LLM cost spike {_money(incident.get('excess_cost_usd'))} over baseline since "
        f"{_when(incident.get('spike_start'))}: {incident.get('root_cause')}"
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


# --------------------------------------------------------------------------- retry policy

BACKOFF_BASE_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 3600.0
MAX_ATTEMPTS = 30  # transient failures: about a day of retries at the capped interval
TRANSIENT_4XX = {408, 425, 429}


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt after `attempts` failures: 30 s, 60 s, 2 min, ... capped 1 h."""
    exponent = max(attempts - 1, 0)
    seconds = min(BACKOFF_BASE_SECONDS * (2 ** min(exponent, 20)), BACKOFF_MAX_SECONDS)
    return timedelta(seconds=seconds)


def is_retryable(http_status: int | None, attempts: int) -> bool:
    """Timeouts, connection errors and 5xx retry (up to MAX_ATTEMPTS); other 4xx never do."""
    if attempts >= MAX_ATTEMPTS:
        return False
    if http_status is None or http_status >= 500:
        return True
    return http_status in TRANSIENT_4XX


# --------------------------------------------------------------------------- secrets

_URL = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)


def redact_secrets(text: str, secrets: Sequence[str]) -> str:
    """Remove every secret, the path of every secret URL, and the path of any other URL."""
    out = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        out = out.replace(secret, "***")
        try:
            parts = urlsplit(secret)
        except ValueError:
            continue
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(tail) > 1:
            out = out.replace(tail, "/***")
    return _URL.sub(lambda m: _scrub_url(m.group(0)), out)


def _scrub_url(url: str) -> str:
    """Keep scheme, host and port of a URL; drop credentials, path and query (tokens live there)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "***"
    base = f"{parts.scheme}://{parts.hostname or '?'}{f':{port}' if port else ''}"
    return base + ("/***" if parts.path not in ("", "/") or parts.query else "")

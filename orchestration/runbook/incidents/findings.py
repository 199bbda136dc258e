"""The diagnosis in on-call's words: the runbook's fix for a cause (the cause catalogue's text),
the key facts and evidence of a root cause, and the incident's summary report.

Pure: nothing here touches the network, the database or the clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from orchestration.runbook.triage import catalogue


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


# The alerts' formats of a figure (a missing one shows as 0 or "?", where the report says n/a).


def alert_money(value: Any) -> str:
    return f"${float(value or 0):,.2f}"


def alert_pct(value: Any) -> str:
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
        text += f" explains {part} of the {alert_money(excess_cost_usd)} excess cost"
    else:
        text += f" the spike's excess is {alert_money(excess_cost_usd)}"
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
        f"- **Started:** {alert_when(spike.get('spike_start'))} ({spike.get('hours')} hours, "
        f"peak {alert_when(spike.get('peak_hour'))}, "
        f"{'ongoing' if spike.get('is_ongoing') else 'ended'})",
        f"- **Cost:** {alert_money(spike.get('total_cost_usd'))} against a baseline of "
        f"{alert_money(spike.get('baseline_cost_usd'))}: "
        f"{alert_money(spike.get('excess_cost_usd'))} excess, "
        f"{alert_pct(spike.get('pct_above_baseline'))} above baseline",
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
            f"{alert_money(d.get('contribution_usd'))} |"
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
        f"{alert_when(incident.get('follow_up_at'))}.",
    ]
    return "\n".join(lines) + "\n"


def alert_when(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return str(value) if value is not None else "?"

"""The triage report's sections, one per runbook step, built from plain dicts (no SQL here).

Inputs are what `queries.load` returns: per-period sums (`before` = the baseline window's
expected value over the spike's hours, `after` = the spike window), keyed by trigger, feature or
tool where the mart has one. Every name from the data goes through `escape_md`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestration.triage.formatting import (
    change,
    code_safe,
    escape_md,
    hour_label,
    money,
    number,
    pct,
    signed_money,
    signed_pct,
    table,
    when,
)

TOP_FEATURES = 5
TOP_TOOLS = 5
TRAFFIC_GROWTH = 0.15  # dbt var diagnosis_traffic_growth
HIDDEN_RATIO_RISE = 0.05  # diagnosis_hidden_ratio_rise
TOKEN_GROWTH = 0.25  # diagnosis_token_growth
TOOL_FAILURE_RATE_RISE = 0.10  # diagnosis_tool_failure_rate_rise

CAUSE_TITLES = {
    "traffic_increase": "traffic increase",
    "hidden_recompute": "hidden recompute",
    "context_bloat": "context bloat",
    "output_growth": "output token growth",
    "feature_concentration": "one feature dominates",
    "tool_retry_storm": "tool retry storm",
}

Sums = Mapping[str, Mapping[str, Any]]


def _f(value: Any) -> float:
    return float(value or 0)


def per_hour(sums: Sums, period: str, column: str) -> float | None:
    """A window sum as a per-hour value (hours = the spike's hours in both periods)."""
    hours = _f((sums.get("after") or {}).get("hours"))
    row = sums.get(period)
    if not row or not hours or row.get(column) is None:
        return None
    return float(row[column]) / hours


def growth(before: Any, after: Any) -> float | None:
    if before is None or after is None or float(before) == 0:
        return None
    return float(after) / float(before) - 1


def cause_subject(diagnosis: Mapping[str, Any]) -> str:
    """What the cause is about (a trigger type, tool, feature or model), escaped; '' if none."""
    for column, label in (
        ("trigger_type", "trigger"),
        ("tool_name", "tool"),
        ("feature", "feature"),
        ("model", "model"),
    ):
        if diagnosis.get(column):
            return f"{label} **{escape_md(diagnosis[column])}**"
    return ""


def cause_label(diagnosis: Mapping[str, Any]) -> str:
    cause = str(diagnosis.get("cause") or "undiagnosed")
    subject = cause_subject(diagnosis)
    title = escape_md(CAUSE_TITLES.get(cause, cause))
    return f"{title} ({subject})" if subject else title


# --------------------------------------------------------------------------- header and step 1


def header(spike: Mapping[str, Any], diagnoses: Sequence[Mapping[str, Any]]) -> list[str]:
    root = diagnoses[0] if diagnoses else {}
    title = cause_label(root) if root else "undiagnosed"
    state = "ongoing" if spike.get("is_ongoing") else f"ended {when(spike.get('spike_end'))}"
    return [
        f"# Cost spike {escape_md(spike['spike_id'])}: {title}",
        "",
        f"- **Started:** {when(spike.get('spike_start'))}",
        f"- **Duration:** {int(spike.get('hours') or 0)} hours ({state}), "
        f"peak at {when(spike.get('peak_hour'))}",
        f"- **Cost:** {money(spike.get('total_cost_usd'))} against a baseline of "
        f"{money(spike.get('baseline_cost_usd'))}",
        f"- **Excess:** **{money(spike.get('excess_cost_usd'))}**, "
        f"**{pct(spike.get('pct_above_baseline'))} over baseline**",
    ]


def step1(spike: Mapping[str, Any], spike_hours: Sequence[Mapping[str, Any]]) -> list[str]:
    hours = int(spike.get("hours") or len(spike_hours))
    lines = [
        "## Step 1: Confirm the spike",
        "",
        f"**Finding:** real and sustained, not a one-hour blip: {hours} hours above the "
        f"baseline (the median of the same hour over the previous days), starting "
        f"**{when(spike.get('spike_start'))}**.",
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


# --------------------------------------------------------------------------- steps 2-4


def step2(traffic: Sums, causes: set[str]) -> list[str]:
    req_b, req_a = per_hour(traffic, "before", "requests"), per_hour(traffic, "after", "requests")
    users_b = per_hour(traffic, "before", "unique_users")
    users_a = per_hour(traffic, "after", "unique_users")
    cost_b, cost_a = per_hour(traffic, "before", "cost_usd"), per_hour(traffic, "after", "cost_usd")
    cpr_b = cost_b / req_b if cost_b is not None and req_b else None
    cpr_a = cost_a / req_a if cost_a is not None and req_a else None
    req_growth = growth(req_b, req_a)
    if "traffic_increase" in causes:
        finding = (
            f"traffic rose ({signed_pct(req_growth)} requests, {change(users_b, users_a)} unique "
            "users per hour): check marketing, viral content, bots (user agents) and abuse."
        )
    elif req_growth is not None and req_growth >= TRAFFIC_GROWTH:
        finding = (
            f"requests rose {signed_pct(req_growth)}, but the diagnosis puts the growth on "
            "another cause (see below)."
        )
    else:
        finding = (
            f"traffic is flat ({signed_pct(req_growth)} requests) while cost per request moved "
            f"{change(cpr_b, cpr_a)}: the problem is cost per request, go on to step 3."
        )
    rows = [
        ("requests per hour", number(req_b, 1), number(req_a, 1), change(req_b, req_a)),
        ("unique users per hour", number(users_b, 1), number(users_a, 1), change(users_b, users_a)),
        ("cost per hour", money(cost_b), money(cost_a), change(cost_b, cost_a)),
        ("cost per request", money(cpr_b, 5), money(cpr_a, 5), change(cpr_b, cpr_a)),
    ]
    return [
        "## Step 2: Rule out a traffic increase",
        "",
        f"**Finding:** {finding}",
        "",
        *table(("per hour (`marts.cost_hourly`)", "baseline", "spike", "change"), rows),
    ]


def step3(
    recompute: Sums, triggers: Mapping[str, Sums], traffic: Sums, causes: set[str]
) -> list[str]:
    before, after = recompute.get("before") or {}, recompute.get("after") or {}
    ratio_b = _f(before.get("hidden")) / _f(before.get("total")) if before.get("total") else None
    ratio_a = _f(after.get("hidden")) / _f(after.get("total")) if after.get("total") else None
    rise = None if ratio_a is None or ratio_b is None else ratio_a - ratio_b
    rows = []
    growths = []
    for trigger in sorted(triggers):
        sums = triggers[trigger]
        hours = _f((traffic.get("after") or {}).get("hours"))
        req_b = _f((sums.get("before") or {}).get("requests")) / hours if hours else None
        req_a = _f((sums.get("after") or {}).get("requests")) / hours if hours else None
        excess = _f((sums.get("after") or {}).get("cost_usd")) - _f(
            (sums.get("before") or {}).get("cost_usd")
        )
        growths.append((excess, trigger))
        rows.append(
            (
                escape_md(trigger),
                number(req_b, 1),
                number(req_a, 1),
                change(req_b, req_a),
                signed_money(excess),
            )
        )
    top = max(growths)[1] if growths else None
    if "hidden_recompute" in causes or (rise is not None and rise >= HIDDEN_RATIO_RISE):
        finding = (
            f"hidden recompute rose: {pct(ratio_b)} -> **{pct(ratio_a)}** of requests "
            f"({rise * 100:+.0f} points), driven by **{escape_md(top)}**. "
            + (
                "The retries are the symptom of the failing tool (step 6)."
                if top == "retry" and "tool_retry_storm" in causes
                else "Check recent UX changes (undo, auto-save), retry loops and auto-save "
                "frequency."
            )
        )
    else:
        finding = f"hidden recompute ratio steady: {pct(ratio_b)} -> {pct(ratio_a)}."
    return [
        "## Step 3: Check hidden recompute",
        "",
        f"**Finding:** {finding}",
        "",
        f"`hidden_ratio` over the window (`marts.recompute_hourly`, sum of hidden / sum of "
        f"total): baseline {pct(ratio_b, 1)}, spike "
        f"{pct(ratio_a, 1)}; hidden cost {money(before.get('hidden_cost_usd'))} -> "
        f"{money(after.get('hidden_cost_usd'))} over the window.",
        "",
        *table(
            (
                "trigger (`marts.trigger_hourly`)",
                "requests/h baseline",
                "requests/h spike",
                "change",
                "excess cost",
            ),
            rows,
        ),
    ]


def step4(tokens: Sums, causes: set[str]) -> list[str]:
    before, after = tokens.get("before") or {}, tokens.get("after") or {}
    rows = []
    moved = {}
    for column, label in (
        ("avg_input_tokens", "avg input tokens"),
        ("p95_input_tokens", "p95 input tokens"),
        ("avg_output_tokens", "avg output tokens"),
        ("p95_output_tokens", "p95 output tokens"),
    ):
        b, a = before.get(column), after.get(column)
        moved[column] = growth(b, a)
        rows.append((label, number(b), number(a), change(b, a)))
    input_growth = max((g for k, g in moved.items() if "input" in k and g is not None), default=0)
    output_growth = max((g for k, g in moved.items() if "output" in k and g is not None), default=0)
    findings = []
    if "context_bloat" in causes or input_growth >= TOKEN_GROWTH:
        findings.append(
            f"input tokens per request rose ({signed_pct(input_growth)}): check context window "
            "management, context appended instead of replaced, prompt template changes."
        )
    if "output_growth" in causes or output_growth >= TOKEN_GROWTH:
        findings.append(
            f"output tokens per request rose ({signed_pct(output_growth)}): check model version, "
            "temperature/sampling and output format changes."
        )
    finding = " ".join(findings) or (
        f"token usage steady (input {signed_pct(moved['avg_input_tokens'])}, output "
        f"{signed_pct(moved['avg_output_tokens'])} per request)."
    )
    return [
        "## Step 4: Check token usage",
        "",
        f"**Finding:** {finding}",
        "",
        *table(("per request (`marts.tokens_hourly`)", "baseline", "spike", "change"), rows),
        "",
        "p95 values are the mean of the hourly p95s over each window.",
    ]


# --------------------------------------------------------------------------- steps 5-6


def feature_rows(features: Mapping[str, Sums], hours: float) -> list[dict[str, Any]]:
    """Features with their window figures, largest excess first."""
    out = []
    for feature, sums in features.items():
        before, after = sums.get("before") or {}, sums.get("after") or {}
        out.append(
            {
                "feature": feature,
                "requests_before": _f(before.get("requests")) / hours if hours else None,
                "requests_after": _f(after.get("requests")) / hours if hours else None,
                "cost_before_usd": _f(before.get("cost_usd")),
                "cost_after_usd": _f(after.get("cost_usd")),
                "excess_usd": _f(after.get("cost_usd")) - _f(before.get("cost_usd")),
            }
        )
    return sorted(out, key=lambda r: (-r["excess_usd"], r["feature"]))


def step5(features: Mapping[str, Sums], traffic: Sums, causes: set[str]) -> list[str]:
    hours = _f((traffic.get("after") or {}).get("hours"))
    ranked = feature_rows(features, hours)
    total_excess = sum(r["excess_usd"] for r in ranked)
    rows = [
        (
            escape_md(r["feature"]),
            number(r["requests_before"], 1),
            number(r["requests_after"], 1),
            money(r["cost_before_usd"]),
            money(r["cost_after_usd"]),
            signed_money(r["excess_usd"]),
            pct(r["excess_usd"] / total_excess) if total_excess > 0 else "n/a",
        )
        for r in ranked[:TOP_FEATURES]
    ]
    if ranked and total_excess > 0:
        top = ranked[0]
        share = top["excess_usd"] / total_excess
        verdict = (
            "one feature drives the cost: check its recent changes, retry logic and token usage."
            if "feature_concentration" in causes or share >= 0.5
            else "the excess is spread over several features."
        )
        finding = (
            f"**{escape_md(top['feature'])}** carries {pct(share)} of the excess "
            f"({signed_money(top['excess_usd'])}); {verdict}"
        )
    else:
        finding = "no feature's cost rose."
    return [
        "## Step 5: Check feature attribution",
        "",
        f"**Finding:** {finding}",
        "",
        *table(
            (
                "feature (`marts.feature_cost_hourly`)",
                "requests/h baseline",
                "requests/h spike",
                "cost baseline",
                "cost spike",
                "excess",
                "share of net excess",
            ),
            rows,
        ),
    ]


def tool_rows(tools: Mapping[str, Sums], hours: float) -> list[dict[str, Any]]:
    """Tools with their window figures, the largest failure-rate rise first."""
    out = []
    for tool, sums in tools.items():
        before, after = sums.get("before") or {}, sums.get("after") or {}
        calls_b, calls_a = _f(before.get("calls")), _f(after.get("calls"))
        row = {
            "tool_name": tool,
            "calls_before": calls_b / hours if hours else None,
            "calls_after": calls_a / hours if hours else None,
            "failures_after": _f(after.get("failures")),
            "failure_rate_before": _f(before.get("failures")) / calls_b if calls_b else None,
            "failure_rate_after": _f(after.get("failures")) / calls_a if calls_a else None,
            "avg_retries_before": _f(before.get("retries")) / calls_b if calls_b else None,
            "avg_retries_after": _f(after.get("retries")) / calls_a if calls_a else None,
        }
        row["failure_rate_rise"] = _f(row["failure_rate_after"]) - _f(row["failure_rate_before"])
        out.append(row)
    return sorted(
        out, key=lambda r: (-r["failure_rate_rise"], -r["failures_after"], r["tool_name"])
    )


def step6(tools: Mapping[str, Sums], traffic: Sums, causes: set[str]) -> list[str]:
    hours = _f((traffic.get("after") or {}).get("hours"))
    ranked = tool_rows(tools, hours)
    failing = [r for r in ranked if r["failure_rate_rise"] >= TOOL_FAILURE_RATE_RISE]
    rows = [
        (
            escape_md(r["tool_name"]),
            number(r["calls_before"], 1),
            number(r["calls_after"], 1),
            pct(r["failure_rate_before"], 1),
            pct(r["failure_rate_after"], 1),
            number(r["avg_retries_before"], 2),
            number(r["avg_retries_after"], 2),
        )
        for r in ranked[:TOP_TOOLS]
    ]
    if failing:
        names = ", ".join(
            f"**{escape_md(r['tool_name'])}** ({pct(r['failure_rate_before'])} -> "
            f"{pct(r['failure_rate_after'])} failures)"
            for r in failing
        )
        finding = (
            f"failing tools: {names}. Check the tool's API, whether retries multiply cost, "
            "and activate the circuit breaker."
        )
    elif "tool_retry_storm" in causes:
        finding = "a tool's retries rose (see the ranked causes)."
    else:
        finding = "no tool's failure rate rose."
    return [
        "## Step 6: Check tool call failures",
        "",
        f"**Finding:** {finding}",
        "",
        *table(
            (
                "tool (`marts.tool_failures_hourly`)",
                "calls/h baseline",
                "calls/h spike",
                "failure rate baseline",
                "failure rate spike",
                "avg retries baseline",
                "avg retries spike",
            ),
            rows,
        ),
    ]


# --------------------------------------------------------------------------- changes, causes


def changes_section(changes: Sequence[Mapping[str, Any]]) -> list[str]:
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


def causes_section(diagnoses: Sequence[Mapping[str, Any]], excess: Any) -> list[str]:
    lines = ["## Causes, ranked (`marts.spike_diagnosis`)", ""]
    if not diagnoses:
        return [*lines, "No cause found: work the runbook by hand from step 1."]
    root = diagnoses[0]
    window_excess = (evidence(root).get("cost_usd") or {}).get("excess")
    rows = [
        (
            int(d.get("rank") or 0),
            escape_md(d.get("cause")),
            cause_subject(d) or "",
            money(d.get("contribution_usd")),
            pct(evidence(d).get("share_of_excess")),
        )
        for d in diagnoses
    ]
    return [
        *lines,
        f"**Root cause:** {cause_label(root)}, explaining {money(root.get('contribution_usd'))} "
        f"of the {money(window_excess)} net excess against the baseline window "
        f"({pct(evidence(root).get('share_of_excess'))}; against the median baseline the spike's "
        f"excess is {money(excess)}).",
        "",
        *table(("rank", "cause", "on", "contribution", "share of excess"), rows, "rllrr"),
    ]


def evidence(diagnosis: Mapping[str, Any]) -> Mapping[str, Any]:
    evidence = diagnosis.get("evidence")
    if isinstance(evidence, str):
        import json

        try:
            evidence = json.loads(evidence)
        except json.JSONDecodeError:
            return {}
    return evidence if isinstance(evidence, Mapping) else {}


# --------------------------------------------------------------------------- steps 7-8


def mitigation_text(diagnosis: Mapping[str, Any]) -> str:
    """The runbook's fix with its configuration (the incidents' wording), names code-safe."""
    from orchestration.incidents.payloads import mitigation_for

    if not diagnosis:
        return "No cause found: follow the runbook from step 1."

    def safe(column: str) -> str | None:
        value = diagnosis.get(column)
        return code_safe(value) if value else None

    return mitigation_for(
        diagnosis.get("cause"),
        feature=safe("feature"),
        tool_name=safe("tool_name"),
        trigger_type=safe("trigger_type"),
        model=safe("model"),
        fallback=diagnosis.get("recommended_fix"),
    )


def step7(diagnoses: Sequence[Mapping[str, Any]]) -> list[str]:
    root = diagnoses[0] if diagnoses else {}
    lines = ["## Step 7: Immediate mitigation", ""]
    if root:
        lines += [f"For the root cause, {cause_label(root)}:", ""]
    return [*lines, mitigation_text(root)]


def step8(
    diagnoses: Sequence[Mapping[str, Any]],
    incident: Mapping[str, Any] | None,
    spike: Mapping[str, Any],
) -> list[str]:
    root = diagnoses[0] if diagnoses else {}
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
            f": {cause_label(root)}, explaining {money(root.get('contribution_usd'))} of the "
            "excess (see the ranked causes)"
            if root
            else ""
        ),
        f"- **Mitigation recommended:** {cause_label(root) if root else 'see step 7'} fix (step 7)",
        f"- **Mitigation applied:** {escape_md(applied) if applied else 'not yet recorded'}",
        f"- **Alert created:** {alerted}",
        f"- **Follow-up scheduled for:** {when(incident.get('follow_up_at'))}",
    ]


# --------------------------------------------------------------------------- no spike


def no_spike(newest: Any, hours: Sequence[Mapping[str, Any]]) -> list[str]:
    """Step 1's confirmation query over the last 48 hours, when there is nothing to triage."""
    total = sum(_f(h.get("total_cost_usd")) for h in hours)
    requests = sum(_f(h.get("requests")) for h in hours)
    over = [h for h in hours if h.get("pct_above_baseline") is not None]
    worst = max(over, key=lambda h: _f(h["pct_above_baseline"]), default=None)
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

"""The triage report's sections, one per runbook step, from the marts' rows (no SQL, no maths).

Steps 2-6 render `marts.spike_runbook_steps` (before, after, change and the runbook's verdict
`is_signal`, all judged by dbt); the causes render `marts.spike_causes` (the catalogue's words,
each cause's part of the one excess figure). Every name from the data goes through `escape_md`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestration.core.formatting import (
    change,
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
from orchestration.runbook.triage.summary import cause_name, key_number

TOP_FEATURES = 5
TOP_TOOLS = 5

Row = Mapping[str, Any]


def _f(value: Any) -> float:
    return float(value or 0)


class Step:
    """One step's rows of marts.spike_runbook_steps: spike-wide metrics and, per subject (a
    trigger type, feature or tool, in the mart's `subject_rank` order), its metrics."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.metrics: dict[str, Row] = {}
        self.subjects: dict[str, dict[str, Row]] = {}
        ranks: dict[str, int] = {}
        for row in rows:
            if row.get("subject") is None:
                self.metrics[row["metric"]] = row
            else:
                self.subjects.setdefault(row["subject"], {})[row["metric"]] = row
                if row.get("subject_rank") is not None:
                    ranks[row["subject"]] = int(row["subject_rank"])
        self.ranked = sorted(self.subjects, key=lambda s: (ranks.get(s, 1 << 30), s))

    def get(self, metric: str, field: str, subject: str | None = None) -> Any:
        row = self.metrics.get(metric) if subject is None else self.subjects[subject].get(metric)
        return (row or {}).get(field)

    def pair(self, metric: str, subject: str | None = None) -> tuple[Any, Any]:
        return self.get(metric, "before", subject), self.get(metric, "after", subject)

    def signal(self, metric: str, subject: str | None = None) -> bool:
        return bool(self.get(metric, "is_signal", subject))


def causes_found(causes: Sequence[Row]) -> set[str]:
    return {str(c.get("cause")) for c in causes}


def cause_label(cause: Row) -> str:
    return cause_name(cause.get("title") or cause.get("cause"), cause.get("detail"))


# --------------------------------------------------------------------------- header and step 1


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
        f"baseline (the median of the same hour over the previous days), starting "
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


def _metric_row(step: Step, metric: str, label: str, kind: str) -> tuple[str, str, str, str]:
    before, after = step.get(metric, "before"), step.get(metric, "after")
    show = {
        "usd": lambda v: money(v),
        "usd5": lambda v: money(v, 5),
        "n1": lambda v: number(v, 1),
        "n0": lambda v: number(v),
    }[kind]
    return (label, show(before), show(after), change(before, after))


# --------------------------------------------------------------------------- steps 2-4


def step2(step: Step, causes: set[str]) -> list[str]:
    growth = step.get("requests_per_hour", "growth")
    users = step.pair("unique_users_per_hour")
    cpr = step.pair("cost_per_request")
    if "traffic_increase" in causes:
        finding = (
            f"traffic rose ({signed_pct(growth)} requests, {change(*users)} unique users per "
            "hour): check marketing, viral content, bots (user agents) and abuse."
        )
    elif step.signal("requests_per_hour"):
        finding = (
            f"requests rose {signed_pct(growth)}, but the diagnosis puts the growth on "
            "another cause (see below)."
        )
    else:
        finding = (
            f"traffic is flat ({signed_pct(growth)} requests) while cost per request moved "
            f"{change(*cpr)}: the problem is cost per request, go on to step 3."
        )
    rows = [
        _metric_row(step, "requests_per_hour", "requests per hour", "n1"),
        _metric_row(step, "unique_users_per_hour", "unique users per hour", "n1"),
        _metric_row(step, "cost_per_hour", "cost per hour", "usd"),
        _metric_row(step, "cost_per_request", "cost per request", "usd5"),
    ]
    return [
        "## Step 2: Rule out a traffic increase",
        "",
        f"**Finding:** {finding}",
        "",
        *table(("per hour (`marts.cost_hourly`)", "baseline", "spike", "change"), rows),
    ]


def step3(step: Step, causes: set[str]) -> list[str]:
    ratio_b, ratio_a = step.get("hidden_ratio", "before"), step.get("hidden_ratio", "after")
    rise = step.get("hidden_ratio", "change")
    rows = [
        (
            escape_md(trigger),
            number(step.get("requests_per_hour", "before", trigger), 1),
            number(step.get("requests_per_hour", "after", trigger), 1),
            change(
                step.get("requests_per_hour", "before", trigger),
                step.get("requests_per_hour", "after", trigger),
            ),
            signed_money(step.get("cost_usd", "change", trigger)),
        )
        for trigger in sorted(step.subjects)
    ]
    top = step.ranked[0] if step.ranked else None
    if "hidden_recompute" in causes or step.signal("hidden_ratio"):
        finding = (
            f"hidden recompute rose: {pct(ratio_b)} -> **{pct(ratio_a)}** of requests "
            f"({_f(rise) * 100:+.0f} points), driven by **{escape_md(top)}**. "
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
        f"total): baseline {pct(ratio_b, 1)}, spike {pct(ratio_a, 1)}; hidden cost "
        f"{money(step.get('hidden_cost_usd', 'before'))} -> "
        f"{money(step.get('hidden_cost_usd', 'after'))} over the window.",
        "",
        *table(
            (
                "trigger (`marts.trigger_hourly`)",
                "requests/h baseline",
                "requests/h spike",
                "change",
                "cost change",
            ),
            rows,
        ),
    ]


def step4(step: Step, causes: set[str]) -> list[str]:
    rows = [
        _metric_row(step, "avg_input_tokens", "avg input tokens", "n0"),
        _metric_row(step, "p95_input_tokens", "p95 input tokens", "n0"),
        _metric_row(step, "avg_output_tokens", "avg output tokens", "n0"),
        _metric_row(step, "p95_output_tokens", "p95 output tokens", "n0"),
    ]

    def most(*metrics: str) -> float | None:
        grown = [step.get(m, "growth") for m in metrics if step.get(m, "growth") is not None]
        return max(grown) if grown else None

    input_moved = step.signal("avg_input_tokens") or step.signal("p95_input_tokens")
    output_moved = step.signal("avg_output_tokens") or step.signal("p95_output_tokens")
    input_growth = most("avg_input_tokens", "p95_input_tokens")
    output_growth = most("avg_output_tokens", "p95_output_tokens")
    findings = []
    if "context_bloat" in causes or input_moved:
        findings.append(
            f"input tokens per request rose ({signed_pct(input_growth)}): "
            "check context window management, context appended instead of replaced, prompt "
            "template changes."
        )
    if "output_growth" in causes or output_moved:
        findings.append(
            f"output tokens per request rose ({signed_pct(output_growth)}): "
            "check model version, temperature/sampling and output format changes."
        )
    finding = " ".join(findings) or (
        f"token usage steady (input {signed_pct(step.get('avg_input_tokens', 'growth'))}, output "
        f"{signed_pct(step.get('avg_output_tokens', 'growth'))} per request)."
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


def step5(step: Step, causes: set[str]) -> list[str]:
    rows = [
        (
            escape_md(feature),
            number(step.get("requests_per_hour", "before", feature), 1),
            number(step.get("requests_per_hour", "after", feature), 1),
            money(step.get("cost_usd", "before", feature)),
            money(step.get("cost_usd", "after", feature)),
            signed_money(step.get("cost_usd", "change", feature)),
            pct(step.get("share_of_cost_change", "after", feature)),
        )
        for feature in step.ranked[:TOP_FEATURES]
    ]
    top = step.ranked[0] if step.ranked else None
    share = step.get("share_of_cost_change", "after", top) if top else None
    if top is not None and share is not None:
        verdict = (
            "one feature drives the cost: check its recent changes, retry logic and token usage."
            if "feature_concentration" in causes or step.signal("share_of_cost_change", top)
            else "the cost change is spread over several features."
        )
        finding = (
            f"**{escape_md(top)}** carries {pct(share)} of the cost change "
            f"({signed_money(step.get('cost_usd', 'change', top))}); {verdict}"
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
                "cost change",
                "share of the change",
            ),
            rows,
        ),
    ]


def step6(step: Step, causes: set[str]) -> list[str]:
    failing = [
        tool
        for tool in step.ranked
        if step.signal("failure_rate", tool) or step.signal("avg_retries", tool)
    ]
    rows = [
        (
            escape_md(tool),
            number(step.get("calls_per_hour", "before", tool), 1),
            number(step.get("calls_per_hour", "after", tool), 1),
            pct(step.get("failure_rate", "before", tool), 1),
            pct(step.get("failure_rate", "after", tool), 1),
            number(step.get("avg_retries", "before", tool), 2),
            number(step.get("avg_retries", "after", tool), 2),
        )
        for tool in step.ranked[:TOP_TOOLS]
    ]
    if failing:
        names = ", ".join(
            f"**{escape_md(tool)}** ({pct(step.get('failure_rate', 'before', tool))} -> "
            f"{pct(step.get('failure_rate', 'after', tool))} failures)"
            for tool in failing
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


# --------------------------------------------------------------------------- steps 7-8


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


# --------------------------------------------------------------------------- no spike


def no_spike(newest: Any, hours: Sequence[Row]) -> list[str]:
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

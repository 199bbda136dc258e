"""Runbook steps 2-6: traffic, hidden recompute, tokens, features and tools, each metric before
and after with dbt's verdict (`is_signal`)."""

from __future__ import annotations

from orchestration.core.formatting import (
    change,
    escape_md,
    money,
    number,
    pct,
    signed_money,
    signed_pct,
    table,
)
from orchestration.runbook.triage.sections.common import (
    TOP_FEATURES,
    TOP_TOOLS,
    Step,
    as_float,
    metric_row,
)


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
        metric_row(step, "requests_per_hour", "requests per hour", "n1"),
        metric_row(step, "unique_users_per_hour", "unique users per hour", "n1"),
        metric_row(step, "cost_per_hour", "cost per hour", "usd"),
        metric_row(step, "cost_per_request", "cost per request", "usd5"),
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
            f"({as_float(rise) * 100:+.0f} points), driven by **{escape_md(top)}**. "
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
        metric_row(step, "avg_input_tokens", "avg input tokens", "n0"),
        metric_row(step, "p95_input_tokens", "p95 input tokens", "n0"),
        metric_row(step, "avg_output_tokens", "avg output tokens", "n0"),
        metric_row(step, "p95_output_tokens", "p95 output tokens", "n0"),
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

"""The triage report's pure parts, without a database: escaping, numbers, sections, the chart,
and the Slack message's escaping of names that come from the data."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest

from orchestration.core.formatting import (
    change,
    escape_md,
    escape_slack,
    money,
    pct,
    signed_money,
    table,
)
from orchestration.runbook.incidents import findings, payloads
from orchestration.runbook.triage import sections as s
from orchestration.runbook.triage.chart import PNG_MAGIC, render_chart
from orchestration.runbook.triage.queries import TriageData
from orchestration.runbook.triage.report import TriageReport, build_markdown

HOSTILE_FEATURE = "*_[x](javascript:y)|&#<script>alert(1)</script>"
HOSTILE_TOOL = "tool`|<b>x</b>\n# heading & *bold*"
MD_SPECIAL = set("\\`*_[]|~#")


def unescaped(text: str) -> list[str]:
    """Markdown-special characters in `text` not preceded by a backslash (entities aside)."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            i += 2
            continue
        if ch in MD_SPECIAL:
            out.append(ch)
        i += 1
    return out


@pytest.mark.parametrize("name", [HOSTILE_FEATURE, HOSTILE_TOOL, "a|b", "<script>", "1. x", "- y"])
def test_escape_md_neutralises_markdown_and_html(name: str) -> None:
    escaped = escape_md(name)
    assert "<" not in escaped and ">" not in escaped
    assert "\n" not in escaped
    assert re.sub(r"&(amp|lt|gt|quot);", "", escaped).count("&") == 0
    assert unescaped(escaped) == []
    assert not re.match(r"\s*(\d+[.)]|[-=])", escaped)
    # nothing is lost: unescaping gives the name back (control characters become spaces)
    plain = re.sub(r"\\(.)", r"\1", escaped)
    for entity, ch in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&amp;", "&")):
        plain = plain.replace(entity, ch)
    assert plain == name.replace("\n", " ")


def test_escaped_names_keep_a_table_row_intact() -> None:
    lines = table(("feature", "cost"), [(escape_md(HOSTILE_FEATURE), "$1.00")])
    # three unescaped pipes in the row: the table still has two columns
    assert len(re.findall(r"(?<!\\)\|", lines[2])) == 3


def test_escape_slack() -> None:
    assert escape_slack("a & b <!channel> <http://x|click>") == (
        "a &amp; b &lt;!channel&gt; &lt;http://x|click&gt;"
    )
    assert escape_slack("one\ntwo\x00\x07three") == "one two  three"
    assert escape_slack("fix:\n```x < 1```", keep_newlines=True) == "fix:\n```x &lt; 1```"


def test_slack_message_escapes_names_from_the_data() -> None:
    incident = {
        "incident_id": 7,
        "spike_id": "spike-2026-10-20T10",
        "severity": "high",
        "spike_start": datetime(2026, 10, 20, 10, tzinfo=UTC),
        "root_cause": "feature_concentration",
        "root_cause_detail": f"feature_concentration (feature={HOSTILE_FEATURE}) explains $3",
        "excess_cost_usd": 3.2,
        "pct_above_baseline": 0.8,
        "mitigation_recommended": findings.mitigation_for(
            "feature_concentration", feature=HOSTILE_FEATURE
        ),
    }
    message = payloads.slack_payload(incident, "opened")
    mrkdwn = [message["text"]] + [
        b["text"]["text"] for b in message["blocks"] if b.get("text", {}).get("type") == "mrkdwn"
    ]
    for text in mrkdwn:
        assert "<script>" not in text and "</script>" not in text
        assert "<" not in text and ">" not in text, text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message["text"]
    assert "```python" in message["text"]  # the fix keeps its lines


def test_numbers() -> None:
    assert money(1234.567) == "$1,234.57"
    assert money(-0.5) == "-$0.50"
    assert signed_money(0.25) == "+$0.25"
    assert pct(0.254) == "25%"
    assert change(10, 12) == "+20%"
    assert change(2, 10) == "x5.0"
    assert change(0, 3) == "new"
    assert money(None) == "n/a"


def _step(step: int, metric: str, subject: str | None, before, after, **extra) -> dict:
    """A row of marts.spike_runbook_steps as dbt writes it."""
    change = None if before is None or after is None else after - before
    return {"step": step, "metric": metric, "subject": subject, "before": before,
            "after": after, "change": change, **extra}  # fmt: skip


def test_sections_escape_names_and_render_the_marts_numbers_and_verdicts() -> None:
    rows5 = [
        _step(5, "requests_per_hour", HOSTILE_FEATURE, 1.0, 20.0, subject_rank=1),
        _step(5, "cost_usd", HOSTILE_FEATURE, 0.1, 3.0, subject_rank=1),
        _step(5, "share_of_cost_change", HOSTILE_FEATURE, None, 1.0357, subject_rank=1,
              is_signal=True),
        _step(5, "cost_usd", "chat", 1.0, 0.9, subject_rank=2),
    ]  # fmt: skip
    rows6 = [
        _step(6, "calls_per_hour", HOSTILE_TOOL, 5.0, 15.0, subject_rank=1),
        _step(6, "failure_rate", HOSTILE_TOOL, 0.0, 0.5, subject_rank=1, is_signal=True),
        _step(6, "avg_retries", HOSTILE_TOOL, 0.0, 1.5, subject_rank=1, is_signal=True),
    ]
    text = "\n".join(s.step5(s.Step(rows5), set()) + s.step6(s.Step(rows6), set()))
    assert "<script>" not in text and "<b>" not in text
    assert escape_md(HOSTILE_FEATURE) in text
    assert escape_md(HOSTILE_TOOL) in text
    # the mart's numbers, as given: cost change, share, failure rates, retries, calls per hour
    assert "+$2.90" in text and pct(1.0357) in text
    assert "| 0.0% | 50.0% |" in text and "1.50" in text and "15.0" in text
    # and its verdicts: dbt's is_signal says the feature dominates and the tool fails
    assert "one feature drives the cost" in text and "failing tools: **" in text
    quiet = [{**r, "is_signal": False} for r in rows5]
    assert "spread over several features" in "\n".join(s.step5(s.Step(quiet), set()))


def test_causes_and_mitigation_escape_names_and_keep_code_blocks_closed() -> None:
    from orchestration.runbook.triage import catalogue

    hostile = "x```\nimport os"
    cause = {
        "rank": 1,
        "cause": "feature_concentration",
        "title": "one feature dominates",
        "detail": hostile,
        "excess_usd": 2.0,
        "share_of_excess": 0.8,
        "recommended_fix": catalogue.fix("feature_concentration", hostile),
    }
    summary = {"excess_cost_usd": 2.5, "unexplained_usd": 0.5}
    text = "\n".join(s.causes_section([cause], summary) + s.step7([cause]))
    assert "80%" in text and "$2.00" in text and "$2.50" in text
    assert "| not explained |" in text and "$0.50" in text
    assert text.count("```") % 2 == 0
    assert "\nimport os" not in text


def test_no_spike_report_lists_the_last_hours() -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    hours = [
        {
            "hour": start + timedelta(hours=i),
            "requests": 100,
            "unique_users": 30,
            "total_cost_usd": 1.0,
            "avg_cost_per_request_usd": 0.01,
            "baseline_cost_usd": 0.9,
            "pct_above_baseline": 1 / 9,
        }
        for i in range(48)
    ]
    text = build_markdown(TriageData(newest_hour=hours[-1]["hour"], summary_hours=hours))
    assert text.startswith("# No cost spike")
    assert "Last 48 hours: $48.00 for 4,800 requests" in text
    assert text.count("\n| 10-0") == 48


def test_chart_is_a_png_even_with_hostile_labels() -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    hours = [
        {
            "hour": start + timedelta(hours=i),
            "total_cost_usd": 1 + (3 if i >= 40 else 0),
            "baseline_cost_usd": 1,
        }
        for i in range(48)
    ]
    png = render_chart(
        hours,
        hours[40]["hour"],
        hours[47]["hour"],
        [("feature_concentration ($x$ " + HOSTILE_FEATURE + ")", 2.5), ("traffic", 0.4)],
        title="spike $a^b$",
    )
    assert png.startswith(PNG_MAGIC)
    import matplotlib.image

    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.shape[0] > 200 and image.shape[1] > 400
    report = TriageReport(markdown="# t\n\n- x\n\n## Step 1\n", chart_png=png)
    inline = report.with_inline_chart()
    assert "![chart](data:image/png;base64,iVBORw0KGgo" in inline
    assert inline.index("![chart]") < inline.index("## Step 1")

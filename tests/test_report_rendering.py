"""On-call's first screen without a database: the five-line summary, the Slack message built
from a stored report, dbt's one line for a quiet pass, the CLI's help and version."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime

from orchestration.cli import build_parser
from orchestration.core.dbt_log import dbt_summary
from orchestration.runbook.incidents import findings, payloads
from orchestration.runbook.triage import catalogue
from orchestration.runbook.triage.summary import summary_from_markdown, summary_lines

SUMMARY = {
    "spike_id": "spike-2026-12-01T11",
    "spike_start": datetime(2026, 12, 1, 11, tzinfo=UTC),
    "spike_end": datetime(2026, 12, 1, 19, tzinfo=UTC),
    "hours": 9,
    "is_ongoing": True,
    "excess_cost_usd": 46.0627,
    "pct_above_baseline": 0.938,
    "latest_hour": datetime(2026, 12, 1, 19, tzinfo=UTC),
    "latest_hour_excess_usd": 4.0509,
    "root_cause": "hidden_recompute",
    "root_cause_title": "hidden recompute",
    "root_cause_detail": "auto_save",
    "root_cause_excess_usd": 41.1524,
    "root_cause_share_of_excess": 0.8934,
    "key_metric": "hidden_ratio",
    "key_unit": "ratio",
    "key_before": 0.0509,
    "key_after": 0.5008,
    "action": catalogue.action("hidden_recompute", "auto_save"),
    "unexplained_usd": 4.9103,
    "trigger_kind": "ux",
    "trigger_changed_at": datetime(2026, 12, 1, 9, 50, tzinfo=UTC),
    "trigger_hours_before_start": 1.16,
    "trigger_description": "auto-save interval lowered 30s -> 5s",
}
INCIDENT = {"incident_id": 3, "status": "open", "severity": "high"}


def test_summary_is_five_lines_with_one_excess_figure() -> None:
    lines = summary_lines(SUMMARY, INCIDENT)
    assert [re.match(r"- \*\*([^:]+):", line)[1] for line in lines] == [
        "Incident", "Excess", "Cause", "Likely trigger", "Action",
    ]  # fmt: skip
    incident, excess, cause, trigger, action = lines
    assert incident.startswith("- **Incident:** #3 (open, severity high); ongoing since 2026-12-01")
    assert "**$46.06** so far" in excess and "**$4.05 per hour now**" in excess
    assert "hidden recompute (**auto\\_save**): hidden-recompute ratio 5.1% -> 50.1%" in cause
    assert "explains $41.15 (89%) of the excess, $4.91 not explained" in cause
    assert "ux change (1.2 hours before the start" in trigger and "30s -&gt; 5s" in trigger
    assert "AUTO_SAVE_INTERVAL_MS = 30000" in action
    assert action.endswith("Acknowledge: `costwatch incidents ack 3`")
    # no dollar figure but the spike's excess and its parts
    dollars = set(re.findall(r"\$[\d,.]+", "\n".join(lines)))
    assert dollars == {"$46.06", "$4.05", "$41.15", "$4.91"}


def test_summary_before_the_incident_and_after_the_spike() -> None:
    over = {**SUMMARY, "is_ongoing": False, "trigger_kind": None}
    incident, excess, _cause, trigger, action = summary_lines(over, None)
    assert "none yet" in incident and "ended 2026-12-01 19:00 UTC" in incident
    assert "per hour now" not in excess
    assert "no change recorded in `raw.change_events`" in trigger
    assert "`costwatch incidents ack ID`" in action
    assert summary_lines(None) == []


def test_slack_message_quotes_the_reports_summary() -> None:
    report = "\n".join(["# Cost spike x: hidden recompute", "", *summary_lines(SUMMARY, None)])
    report += "\n\n## Step 1: Confirm the spike\n\n- **Cause:** not this one\n"
    parsed = summary_from_markdown(report)
    assert set(parsed) == {"Incident", "Excess", "Cause", "Likely trigger", "Action"}
    incident = {
        **INCIDENT,
        "spike_id": SUMMARY["spike_id"],
        "spike_start": SUMMARY["spike_start"],
        "root_cause": "hidden_recompute",
        "excess_cost_usd": 46.0627,
        "pct_above_baseline": 0.938,
        "mitigation_recommended": catalogue.fix("hidden_recompute", "auto_save"),
        "report_md": report,
    }
    text = payloads.slack_payload(incident, "opened")["text"]
    lines = text.splitlines()
    assert lines[1].startswith("*Incident #3* (high)")
    assert lines[2].startswith("*Excess:* *$46.06* so far, *94% over baseline*; *$4.05 per hour")
    resolved = payloads.slack_payload(incident, "resolved")["text"].splitlines()
    assert resolved[2] == "*Excess:* $46.06 so far (94% above baseline)"  # the row's, live
    assert lines[3].startswith("*Cause:* hidden recompute (*auto_save*): hidden-recompute ratio")
    assert lines[4].startswith("*Likely trigger:* ux change") and "30s -&gt; 5s" in lines[4]
    assert lines[5].startswith("*Action:* Rate limit, add confirmation")
    assert lines[6] == "*Acknowledge:* `costwatch incidents ack 3`"
    assert "**" not in text and "\\_" not in text
    assert "```python" in text  # the fix follows, with its code block


def test_catalogue_is_the_only_wording_of_the_fix() -> None:
    rows = catalogue.catalogue()
    assert set(rows) == {
        "traffic_increase", "hidden_recompute", "context_bloat", "output_growth",
        "feature_concentration", "tool_retry_storm",
    }  # fmt: skip
    for cause in rows:
        assert findings.mitigation_for(cause) == catalogue.fix(cause)
    fix = catalogue.fix("tool_retry_storm", "web`search\nx")
    assert "`web'search x`" in fix and fix.count("```") == 2


def test_dbt_summary_is_one_line() -> None:
    log = (
        "\x1b[0m21:54:18  Finished running 1 seed, 40 view models, 55 table models, 180 data "
        "tests in 0 hours 0 minutes and 41.22 seconds (41.22s).\n"
        "\x1b[0m21:54:18  \n"
        "\x1b[0m21:54:18  Done. PASS=276 WARN=0 ERROR=0 SKIP=0 NO-OP=0 TOTAL=276\n"
    )
    line = dbt_summary(log)
    assert line == (
        "dbt: 1 seed, 95 models, 180 tests: ok (PASS=276 WARN=0 ERROR=0 SKIP=0 NO-OP=0 "
        "TOTAL=276) in 41.2s (`costwatch run -v` shows dbt's full log)"
    )
    assert "FAILED" in (dbt_summary(log.replace("ERROR=0", "ERROR=2")) or "")
    assert dbt_summary("no totals here") is None


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_has_help_and_the_top_level_has_examples(capsys) -> None:
    parser = build_parser()
    for p in _parsers(parser):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{p.prog} {action.option_strings or action.dest} has no help"
    text = parser.format_help()
    assert "quick start" in text and "examples:" in text and "costwatch triage" in text
    try:
        parser.parse_args(["--version"])
    except SystemExit:
        pass
    assert re.fullmatch(r"costwatch \d+\.\d+\.\d+\n", capsys.readouterr().out)

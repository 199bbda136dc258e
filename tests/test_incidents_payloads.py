"""Pure logic of the incident package: severity, fixes, payloads, retries, secrets, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestration.runbook.incidents import findings, payloads, retry, severity
from orchestration.runbook.incidents.channels import check_url
from orchestration.runbook.incidents.settings import IncidentSettings

INCIDENT = {
    "incident_id": 7,
    "spike_id": "spike-2026-11-20T03",
    "spike_start": datetime(2026, 11, 20, 3, tzinfo=UTC),
    "severity": "high",
    "root_cause": "hidden_recompute",
    "root_cause_detail": "hidden_recompute (trigger_type=auto_save) explains $80.00 of $100.00",
    "excess_cost_usd": 100.0,
    "pct_above_baseline": 1.5,
    "mitigation_recommended": findings.mitigation_for("hidden_recompute", trigger_type="auto_save"),
}


@pytest.mark.parametrize(
    ("excess", "expected"),
    [(None, "low"), (0, "low"), (24.99, "low"), (25, "medium"), (100, "high"), (500, "critical")],
)
def test_severity_from_excess_cost(excess, expected):
    assert severity.severity_for(excess) == expected


@pytest.mark.parametrize(
    ("excess", "pct", "expected"),
    [(2.42, 0.3, "low"), (2.42, 0.78, "medium"), (2.0, 1.2, "high"), (5, 3.5, "critical"),
     (150, 0.3, "high"), (0, 5.0, "low")],
)  # fmt: skip
def test_severity_is_the_higher_of_usd_and_relative_excess(excess, pct, expected):
    assert severity.severity_for(excess, pct) == expected


def test_each_cause_gets_the_runbooks_fix_with_its_config():
    assert "AUTO_SAVE_INTERVAL_MS = 30000" in findings.mitigation_for("hidden_recompute")
    assert "UNDO_RATE_LIMIT" in findings.mitigation_for("hidden_recompute", trigger_type="undo")
    assert "MAX_CONTEXT_MESSAGES = 10" in findings.mitigation_for("context_bloat")
    tool = findings.mitigation_for("tool_retry_storm", tool_name="web_search")
    assert "MAX_TOOL_RETRIES = 2" in tool and "@circuit" in tool and "web_search" in tool
    feature = findings.mitigation_for("feature_concentration", feature="summarize")
    assert 'FEATURE_FLAGS.get("summarize_throttle")' in feature
    assert "gpt-x" in findings.mitigation_for("output_growth", model="gpt-x")
    assert "rate limit" in findings.mitigation_for("traffic_increase")
    assert findings.mitigation_for("mystery", fallback="do X") == "do X"


def test_webhook_payload_is_the_contracts_json():
    body = payloads.webhook_payload(INCIDENT, "opened")
    assert set(body) == {
        "event", "incident_id", "spike_id", "spike_start", "severity", "root_cause",
        "root_cause_detail", "excess_cost_usd", "pct_above_baseline", "mitigation_recommended",
        "dedup_key",
    }  # fmt: skip
    assert body["event"] == "incident.opened"
    assert body["spike_start"] == "2026-11-20T03:00:00+00:00"
    assert body["dedup_key"] == "costwatch-spike-2026-11-20T03"
    assert payloads.webhook_payload(INCIDENT, "resolved")["event"] == "incident.resolved"


def test_slack_message_says_cause_excess_start_and_fix():
    text = payloads.slack_payload(INCIDENT, "opened")["text"]
    for fact in ("hidden_recompute", "$100.00", "2026-11-20 03:00", "AUTO_SAVE_INTERVAL_MS"):
        assert fact in text
    assert "ESCALATED" in payloads.slack_payload(INCIDENT, "escalated")["text"]
    assert "Resolved" in payloads.slack_payload(INCIDENT, "resolved")["text"]


def test_pagerduty_trigger_and_resolve_share_the_dedup_key():
    trigger = payloads.pagerduty_payload(INCIDENT, "opened")
    resolve = payloads.pagerduty_payload(INCIDENT, "resolved")
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "costwatch-spike-2026-11-20T03"
    assert trigger["payload"]["severity"] == "error"  # high
    assert payloads.pagerduty_payload(INCIDENT, "escalated")["payload"]["severity"] == "critical"
    assert "routing_key" not in trigger  # added on the wire only


def test_backoff_doubles_from_30_seconds_and_caps_at_an_hour():
    assert [retry.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry.backoff(50) == timedelta(hours=1)


def test_retry_policy():
    assert retry.is_retryable(None, 1)  # timeout, connection refused
    assert retry.is_retryable(503, 1)
    assert retry.is_retryable(429, 1)
    assert not retry.is_retryable(404, 1)
    assert not retry.is_retryable(400, 1)
    assert not retry.is_retryable(500, retry.MAX_ATTEMPTS)


def test_secrets_are_redacted_from_error_lines():
    secrets = ["https://hooks.slack.com/services/T0/B0/XyZsecret", "routingkey123"]
    text = (
        "POST https://hooks.slack.com/services/T0/B0/XyZsecret failed; "
        "url: /services/T0/B0/XyZsecret"
        " key routingkey123 and http://user:pw@other.example:8080/path?token=abc"
    )
    out = retry.redact_secrets(text, secrets)
    for leaked in ("XyZsecret", "routingkey123", "token=abc", "pw@"):
        assert leaked not in out
    assert "other.example:8080" in out


def test_report_summary_has_cause_fix_and_evidence():
    spike = {
        "spike_id": "spike-2026-11-20T03", "spike_start": INCIDENT["spike_start"], "hours": 4,
        "peak_hour": INCIDENT["spike_start"], "total_cost_usd": 140, "baseline_cost_usd": 40,
        "excess_cost_usd": 100, "pct_above_baseline": 2.5, "is_ongoing": True,
    }  # fmt: skip
    diagnosis = {
        "rank": 1, "cause": "hidden_recompute", "trigger_type": "auto_save",
        "contribution_usd": 80, "evidence": {"hidden_ratio": {"spike": 0.61, "baseline": 0.12}},
    }  # fmt: skip
    report = findings.summary_report(INCIDENT, spike, [diagnosis])
    assert "hidden_ratio.spike: 0.61" in report
    assert "AUTO_SAVE_INTERVAL_MS" in report and "$100.00 excess" in report


def test_settings_defaults_and_errors():
    settings = IncidentSettings.from_env({})
    assert settings.channels == [] and not settings.cost_cap_enabled and settings.cost_cap_dry_run
    assert settings.cost_cap_usd == 1000 and settings.escalate_after_minutes == 60
    on = IncidentSettings.from_env(
        {"COSTWATCH_COST_CAP_ENABLED": "true", "COSTWATCH_SLACK_WEBHOOK_URL": "http://x/y"}
    )
    assert on.cost_cap_enabled and on.cost_cap_dry_run and on.channels == ["slack"]
    # An unreadable setting disables only what it configures, and is named in one line.
    bad_usd = IncidentSettings.from_env(
        {"COSTWATCH_COST_CAP_ENABLED": "true", "COSTWATCH_COST_CAP_USD": "lots"}
    )
    assert not bad_usd.cost_cap_enabled and bad_usd.escalation_enabled
    assert bad_usd.problems == ("COSTWATCH_COST_CAP_USD must be a number, got 'lots'",)
    bad_flag = IncidentSettings.from_env({"COSTWATCH_COST_CAP_ENABLED": "maybe"})
    assert not bad_flag.cost_cap_enabled
    assert bad_flag.problems[0].startswith("COSTWATCH_COST_CAP_ENABLED must be true or false")
    bad_delay = IncidentSettings.from_env({"COSTWATCH_ESCALATE_AFTER_MINUTES": "1h"})
    assert not bad_delay.escalation_enabled and len(bad_delay.problems) == 1


def test_bad_urls_get_one_line_naming_the_variable():
    assert check_url("hooks.example.com/x", "COSTWATCH_ALERT_WEBHOOK_URL") == (
        "COSTWATCH_ALERT_WEBHOOK_URL is not an http(s) URL"
    )
    assert "not a valid URL" in check_url("http://host:notaport/x", "V")
    assert check_url("https://hooks.slack.com/services/x", "V") is None


def test_severity_thresholds_are_a_setting():
    settings = IncidentSettings.from_env({"COSTWATCH_SEVERITY_USD": "1,5,10"})
    assert severity.severity_for(2.42, 0.1, settings.severity_thresholds_usd) == "medium"
    assert severity.severity_for(12, 0.1, settings.severity_thresholds_usd) == "critical"
    bad = IncidentSettings.from_env({"COSTWATCH_SEVERITY_USD": "10,5"})
    assert bad.severity_thresholds_usd == severity.SEVERITY_THRESHOLDS_USD
    assert bad.problems[0].startswith("COSTWATCH_SEVERITY_USD:")


def test_detail_quotes_one_excess_figure_and_never_more_than_all_of_it():
    """The spike's excess is the only dollar figure; the cause's part is dbt's share of it."""
    diagnosis = {"cause": "context_bloat", "contribution_usd": 3.19}
    detail = findings.root_cause_detail({**diagnosis, "evidence": {"share_of_excess": 0.9}}, 2.42)
    assert detail == "context_bloat explains 90% of the $2.42 excess cost"
    assert "$3.19" not in detail
    over = findings.root_cause_detail({**diagnosis, "evidence": {"share_of_excess": 1.3}}, 2.42)
    assert over == "context_bloat explains all of the $2.42 excess cost"


def test_detail_quotes_the_key_number_and_the_change_before_the_spike():
    diagnosis = {
        "cause": "tool_retry_storm",
        "tool_name": "web_search",
        "contribution_usd": 40,
        "evidence": {
            "tools": {"web_search": {"failure_rate_before": 0.02, "failure_rate_after": 0.4,
                                     "avg_retries_before": 0.1, "avg_retries_after": 2.5}},
            "change_events": [{"kind": "deploy", "changed_at": "2026-11-21T08:38:34+00:00",
                               "description": "search client v2"}],
            "share_of_excess": 0.8,
        },
    }  # fmt: skip
    assert findings.root_cause_detail(diagnosis, 50) == (
        "tool_retry_storm (tool_name=web_search): web_search failure rate 2.0% -> 40.0%; "
        "explains 80% of the $50.00 excess cost; after deploy at 2026-11-21 08:38: "
        "search client v2"
    )

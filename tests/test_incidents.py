"""The incident lifecycle on a real database: open, stay single, escalate, resolve.

The detection marts are written by hand (tests/test_incidents_support.py) one hour at a time,
and `now` is injected, so escalation and resolution are driven by appending hours of data.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from orchestration.runbook.incidents import engine
from orchestration.runbook.incidents.settings import IncidentSettings
from tests.test_incidents_support import (
    ROUTING_KEY,
    T0,
    Marts,
    channel_env,
    hook_server,
    rows,
)

NOW = T0 + timedelta(hours=6, minutes=5)


def alerts(url: str) -> list[tuple]:
    return rows(url, "select channel, kind, status, attempts from ops.alerts order by alert_id")


def test_a_spike_opens_one_incident_with_cause_fix_and_follow_up(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    settings = IncidentSettings.from_env({})
    report = engine.tick(db_url, now=NOW, settings=settings)
    assert report.opened == ["spike-2026-11-20T03: hidden_recompute auto_save"]
    (incident,) = rows(
        db_url,
        "select spike_id, status, severity, root_cause, root_cause_detail, "
        "mitigation_recommended, follow_up_at - opened_at, alert_created, report_md, "
        "excess_cost_usd from ops.incidents",
    )
    spike_id, status, severity, cause, detail, fix, follow_up, alerted, report_md, excess = incident
    assert (spike_id, status, cause) == ("spike-2026-11-20T03", "open", "hidden_recompute")
    assert severity == "high" and float(excess) == 63  # $63 excess, +210%: high
    assert "trigger_type=auto_save" in detail and "AUTO_SAVE_INTERVAL_MS = 30000" in fix
    assert follow_up == timedelta(hours=24) and alerted
    assert "# Cost spike spike-2026-11-20T03" in report_md
    assert "hidden-recompute ratio 12.0% -> 61.0%" in report_md
    assert "after ux at 2026-11-20 01:10: editor auto-save interval lowered" in detail
    assert alerts(db_url) == [("log", "opened", "sent", 1)]  # the Dagster log, always
    assert "1 opened (spike-2026-11-20T03: hidden_recompute auto_save)" in report.summary()


def test_repeated_ticks_never_double_an_incident_or_an_alert(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        for minutes in range(0, 50, 10):
            engine.tick(db_url, now=NOW + timedelta(minutes=minutes), settings=settings)
        assert rows(db_url, "select count(*) from ops.incidents") == [(1,)]
        assert sorted(a[:2] for a in alerts(db_url)) == [
            ("log", "opened"), ("pagerduty", "opened"), ("slack", "opened"), ("webhook", "opened"),
        ]  # fmt: skip
        assert len(server.requests) == 3


def test_concurrent_ticks_open_one_incident(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    settings = IncidentSettings.from_env({})
    threads = [threading.Thread(target=engine.tick, args=(db_url, NOW, settings)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rows(db_url, "select count(*) from ops.incidents") == [(1,)]
    assert rows(db_url, "select count(*) from ops.alerts") == [(1,)]


def test_full_lifecycle_escalates_once_then_resolves_after_two_quiet_hours(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        engine.tick(db_url, now=NOW, settings=settings)

        # 30 minutes later, a new, costlier hour: too early to escalate.
        marts.append(36)
        report = engine.tick(db_url, now=NOW + timedelta(minutes=30), settings=settings)
        assert report.escalated == []

        # An hour after opening and still rising: one escalation, on every channel.
        marts.append(40)
        report = engine.tick(db_url, now=NOW + timedelta(minutes=65), settings=settings)
        assert len(report.escalated) == 1
        report = engine.tick(db_url, now=NOW + timedelta(minutes=70), settings=settings)
        assert report.escalated == []
        assert rows(db_url, "select count(*) from ops.alerts where kind = 'escalated'") == [(4,)]
        escalated = [b for b in server.bodies("/v2/enqueue")][-1]
        assert escalated["payload"]["severity"] == "critical"
        # The open incident followed its growing spike.
        assert rows(db_url, "select excess_cost_usd::float from ops.incidents") == [(119.0,)]

        # One quiet hour is not enough; two complete quiet hours resolve it.
        marts.append(10)
        report = engine.tick(db_url, now=NOW + timedelta(hours=2), settings=settings)
        assert report.resolved == []
        marts.append(11)
        report = engine.tick(db_url, now=NOW + timedelta(hours=3), settings=settings)
        assert len(report.resolved) == 1
        engine.tick(db_url, now=NOW + timedelta(hours=4), settings=settings)

    ((status, resolved_by),) = rows(db_url, "select status, resolved_by from ops.incidents")
    assert (status, resolved_by) == ("resolved", "costwatch")
    kinds = rows(db_url, "select kind, count(*) from ops.alerts group by kind order by kind")
    assert kinds == [("escalated", 4), ("opened", 4), ("resolved", 4)]
    pagerduty = server.bodies("/v2/enqueue")
    assert [b["event_action"] for b in pagerduty] == ["trigger", "trigger", "resolve"]
    assert {b["dedup_key"] for b in pagerduty} == {"costwatch-spike-2026-11-20T03"}
    assert all(b["routing_key"] == ROUTING_KEY for b in pagerduty)
    webhook = server.bodies("/hooks/generic-secret-abc123")
    assert [b["event"] for b in webhook] == [
        "incident.opened", "incident.escalated", "incident.resolved",
    ]  # fmt: skip


def test_a_receding_spike_is_not_escalated(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    settings = IncidentSettings.from_env({})
    engine.tick(db_url, now=NOW, settings=settings)
    marts.append(25)  # still a spike hour, but cheaper than before and than at opening
    report = engine.tick(db_url, now=NOW + timedelta(minutes=90), settings=settings)
    assert report.escalated == [] and report.still_open == 1


def test_no_new_hour_no_escalation(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    settings = IncidentSettings.from_env({})
    engine.tick(db_url, now=NOW, settings=settings)
    report = engine.tick(db_url, now=NOW + timedelta(hours=3), settings=settings)
    assert report.escalated == []


def test_a_past_spike_is_recorded_without_paging(db_url):
    Marts(db_url).append(10, 30, 30, 30, *([10] * 30))
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        report = engine.tick(db_url, now=NOW + timedelta(days=2), settings=settings)
    assert report.opened == [] and report.recorded_quietly == 1
    assert rows(db_url, "select status from ops.incidents") == [("resolved",)]
    assert server.requests == [] and alerts(db_url) == []


def test_a_blip_opens_nothing(db_url):
    Marts(db_url).append(10, 10, 30, 30, 10)
    report = engine.tick(db_url, now=NOW, settings=IncidentSettings.from_env({}))
    assert report.opened == [] and rows(db_url, "select count(*) from ops.incidents") == [(0,)]


def test_a_failed_pass_only_queues_pipeline_failed(db_url):
    """The detection models failed: no incident is opened from their marts, whatever they hold;
    one pipeline_failed alert per channel per hour."""
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        report = engine.tick(
            db_url, now=NOW, settings=settings, pipeline_error="step dbt failed: boom"
        )
        again = engine.tick(db_url, now=NOW + timedelta(minutes=20), settings=settings,
                            pipeline_error="step dbt failed: boom")  # fmt: skip
    assert report.skipped == "the pass failed: step dbt failed: boom"
    assert rows(db_url, "select count(*) from ops.incidents") == [(0,)]
    assert report.sent == 4 and again.sent == 0  # one pipeline_failed alert per channel per hour
    (body,) = server.bodies("/hooks/generic-secret-abc123")
    assert body["event"] == "pipeline.failed" and body["error"] == "step dbt failed: boom"
    assert rows(db_url, "select distinct kind, incident_id from ops.alerts") == [
        ("pipeline_failed", None)
    ]


def test_the_step_summary_is_what_costwatch_run_prints(db_url, monkeypatch):
    for key in ("COSTWATCH_ALERT_WEBHOOK_URL", "COSTWATCH_SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("COSTWATCH_PAGERDUTY_ROUTING_KEY", raising=False)
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    line = engine.tick(db_url, now=NOW).summary()
    assert line.startswith("incidents: 1 opened (spike-2026-11-20T03: hidden_recompute auto_save)")
    assert "1 alerts sent" in line
    line = engine.tick(db_url, now=NOW).summary()
    assert line.startswith("incidents: 0 opened, 1 open")


def test_a_bad_setting_disables_only_the_cost_cap_and_queues_pipeline_failed(db_url, monkeypatch):
    """COSTWATCH_COST_CAP_USD=1k: the incident still opens and pages; the setting is named in
    one line; a pipeline_failed alert is queued and sent."""
    for key in ("COSTWATCH_ALERT_WEBHOOK_URL", "COSTWATCH_SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("COSTWATCH_PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.setenv("COSTWATCH_COST_CAP_ENABLED", "true")
    monkeypatch.setenv("COSTWATCH_COST_CAP_USD", "1k")
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    report = engine.tick(db_url, now=NOW)
    assert report.problems == ["COSTWATCH_COST_CAP_USD must be a number, got '1k'"]
    assert len(report.opened) == 1
    assert rows(db_url, "select kind, status from ops.alerts order by alert_id") == [
        ("pipeline_failed", "sent"),
        ("opened", "sent"),
    ]
    assert rows(db_url, "select count(*) from ops.actions") == [(0,)]
    assert "COSTWATCH_COST_CAP_USD" in report.summary()


def test_an_open_incident_follows_its_growing_spike_severity_only_goes_up(db_url):
    marts = Marts(db_url).append(10, 10, 10, 13, 13, 13)
    settings = IncidentSettings.from_env({})
    engine.tick(db_url, now=NOW, settings=settings)
    assert rows(db_url, "select severity, excess_cost_usd::float from ops.incidents") == [
        ("low", 9.0)
    ]
    marts.append(40)
    engine.tick(db_url, now=NOW + timedelta(minutes=10), settings=settings)
    assert rows(db_url, "select severity, excess_cost_usd::float from ops.incidents") == [
        ("medium", 39.0)
    ]

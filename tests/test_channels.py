"""Every alert channel against a real HTTP server on 127.0.0.1: payloads, dedup, failures.

A channel that answers 5xx or hangs past the timeout loses nothing: the failure is recorded and
retried on a later tick once its back-off has passed. A 4xx or a malformed URL is recorded and
not retried. No secret (webhook path, routing key) ever reaches ops.alerts or the log.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from orchestration.runbook.incidents import engine
from orchestration.runbook.incidents.settings import IncidentSettings
from tests.test_incidents_support import (
    HOOK_PATH,
    ROUTING_KEY,
    SLACK_PATH,
    T0,
    Marts,
    channel_env,
    hook_server,
    rows,
)

NOW = T0 + timedelta(hours=6, minutes=5)


def webhook_alert(url: str) -> tuple:
    (row,) = rows(
        url,
        "select status, attempts, retryable, http_status, error, next_attempt_at, "
        "jsonb_array_length(failures) from ops.alerts"
        " where channel = 'webhook' and kind = 'opened'",
    )
    return row


@pytest.fixture
def spike(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    return db_url


def test_each_channel_gets_its_payload(spike):
    with hook_server() as server:
        engine.tick(spike, now=NOW, settings=IncidentSettings.from_env(channel_env(server)))
    by_path = {r["path"]: r for r in server.requests}
    assert set(by_path) == {HOOK_PATH, SLACK_PATH, "/v2/enqueue"}
    webhook = by_path[HOOK_PATH]["body"]
    assert webhook["event"] == "incident.opened" and webhook["root_cause"] == "hidden_recompute"
    assert webhook["excess_cost_usd"] == 63.0 and webhook["spike_start"].startswith("2026-11-20T03")
    assert by_path[HOOK_PATH]["headers"]["Content-Type"] == "application/json"
    slack = by_path[SLACK_PATH]["body"]["text"]
    assert "hidden_recompute" in slack and "$63.00" in slack and "AUTO_SAVE_INTERVAL_MS" in slack
    pagerduty = by_path["/v2/enqueue"]["body"]
    assert pagerduty["routing_key"] == ROUTING_KEY and pagerduty["event_action"] == "trigger"
    assert pagerduty["dedup_key"] == "costwatch-spike-2026-11-20T03"
    assert pagerduty["payload"]["source"] == "costwatch"
    statuses = rows(spike, "select channel, status, http_status from ops.alerts order by channel")
    assert statuses == [
        ("log", "sent", None), ("pagerduty", "sent", 200), ("slack", "sent", 200),
        ("webhook", "sent", 200),
    ]  # fmt: skip


def test_a_500_is_retried_after_backoff_until_it_is_delivered(spike):
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        server.script = [500]  # the first request (the webhook) fails, the rest succeed
        report = engine.tick(spike, now=NOW, settings=settings)
        assert (report.sent, report.failed) == (3, 1)
        status, attempts, retryable, http, error, next_at, failures = webhook_alert(spike)
        assert (status, attempts, retryable, http) == ("pending", 1, True, 500)
        assert error == "webhook: HTTP 500: upstream trouble"
        assert next_at == NOW + timedelta(seconds=30)
        assert "1 failed (retry later)" in report.summary()

        # Before the back-off has passed: nothing is sent again.
        engine.tick(spike, now=NOW + timedelta(seconds=10), settings=settings)
        assert len(server.bodies(HOOK_PATH)) == 1
        # After: delivered, with the failure kept.
        report = engine.tick(spike, now=NOW + timedelta(seconds=31), settings=settings)
        assert report.sent == 1
        assert webhook_alert(spike)[:3] == ("sent", 2, False)
        assert webhook_alert(spike)[6] == 1
        bodies = server.bodies(HOOK_PATH)
        assert len(bodies) == 2 and bodies[0] == bodies[1]
        # And never again.
        engine.tick(spike, now=NOW + timedelta(hours=2), settings=settings)
        assert len(server.bodies(HOOK_PATH)) == 2


def test_a_hanging_server_times_out_and_is_retried(spike):
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        server.script = ["hang"]
        server.hang_seconds = 1.5
        started = time.monotonic()
        report = engine.tick(spike, now=NOW, settings=settings)
        assert time.monotonic() - started < 5
        assert report.failed == 1
        status, attempts, retryable, http, error, _, _ = webhook_alert(spike)
        assert (status, attempts, retryable, http) == ("pending", 1, True, None)
        assert error == "webhook: no answer within 0.5s (timeout)"
        engine.tick(spike, now=NOW + timedelta(minutes=1), settings=settings)
        assert webhook_alert(spike)[:2] == ("sent", 2)


def test_a_4xx_is_recorded_and_not_retried(spike):
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        server.script = [404]
        report = engine.tick(spike, now=NOW, settings=settings)
        assert report.gave_up == 1 and "1 failed for good" in report.summary()
        for hours in (1, 5, 24):
            engine.tick(spike, now=NOW + timedelta(hours=hours), settings=settings)
        # never again (the follow-up a day later is another alert)
        opened = [b for b in server.bodies(HOOK_PATH) if b["event"] == "incident.opened"]
        assert len(opened) == 1
    status, attempts, retryable, http, error, next_at, _ = webhook_alert(spike)
    assert (status, attempts, retryable, http, next_at) == ("failed", 1, False, 404, None)


def test_a_down_channel_is_retried_with_growing_backoff(spike):
    with hook_server() as server:
        env = channel_env(server)
    # The server is gone: connection refused on every channel.
    settings = IncidentSettings.from_env(env)
    engine.tick(spike, now=NOW, settings=settings)
    engine.tick(spike, now=NOW + timedelta(seconds=31), settings=settings)
    engine.tick(spike, now=NOW + timedelta(seconds=92), settings=settings)
    status, attempts, retryable, _, error, next_at, failures = webhook_alert(spike)
    assert (status, attempts, retryable, failures) == ("pending", 3, True, 3)
    assert next_at == NOW + timedelta(seconds=92 + 120)
    assert error.startswith("webhook: connection failed")
    assert rows(spike, "select count(*) from ops.incidents") == [(1,)]  # the incident is kept


def test_a_malformed_url_is_one_clear_line_and_other_channels_still_work(spike):
    with hook_server() as server:
        env = channel_env(server, COSTWATCH_ALERT_WEBHOOK_URL="hooks.example.com/no-scheme")
        report = engine.tick(spike, now=NOW, settings=IncidentSettings.from_env(env))
        assert len(server.requests) == 2  # slack and pagerduty
    assert report.sent == 3 and report.gave_up == 1
    status, _, retryable, _, error, _, _ = webhook_alert(spike)
    assert (status, retryable) == ("failed", False)
    assert error == "COSTWATCH_ALERT_WEBHOOK_URL is not an http(s) URL"


def test_secrets_never_reach_ops_alerts_or_the_log(spike, caplog):
    caplog.set_level(logging.DEBUG)
    with hook_server() as server:
        env = channel_env(server)
        server.script = [500, 503, 401]
        engine.tick(spike, now=NOW, settings=IncidentSettings.from_env(env))
    engine.tick(spike, now=NOW + timedelta(minutes=5), settings=IncidentSettings.from_env(env))
    (stored,) = rows(spike, "select string_agg(to_jsonb(a)::text, ' ') from ops.alerts as a")
    for secret in (SLACK_PATH, HOOK_PATH, ROUTING_KEY, "slacksecrettoken", "generic-secret"):
        assert secret not in stored[0]
        assert secret not in caplog.text
    assert "HTTP 500" in stored[0] and "connection failed" in stored[0]

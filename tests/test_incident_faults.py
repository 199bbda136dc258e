"""Issue 15's faults, each injected against real servers on 127.0.0.1, with assertions on `ops.*`
and on what each receiver saw: garbage answers, URLs with a space, PagerDuty answering 500
across a resolve, a process killed between send and record, late data before the spike and
after the resolve, a non-UTC session, ack, follow-up, leadership escalation, a channel missing
in this process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest

from orchestration.cli.incidents import incidents_command
from orchestration.core.database import connect, dbt_env
from orchestration.runbook.incidents import engine
from orchestration.runbook.incidents.settings import IncidentSettings
from tests.test_incidents_support import (
    AUTOSAVE,
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
PD = "/v2/enqueue"


@contextmanager
def garbage_server() -> Iterator[str]:
    """A socket on 127.0.0.1 that answers any request with bytes that are not HTTP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"\x00\x01 this is not http at all\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def alert_rows(url: str) -> list[tuple]:
    return rows(
        url, "select channel, kind, status, cycle from ops.alerts order by cycle, kind, channel"
    )


def test_a_socket_answering_garbage_never_stops_the_other_channels(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server, garbage_server() as garbage:
        env = channel_env(server, COSTWATCH_ALERT_WEBHOOK_URL=garbage + HOOK_PATH)
        report = engine.tick(db_url, now=NOW, settings=IncidentSettings.from_env(env))
    assert report.opened and report.failed == 1
    assert rows(db_url, "select channel, status from ops.alerts order by channel") == [
        ("log", "sent"), ("pagerduty", "sent"), ("slack", "sent"), ("webhook", "pending"),
    ]  # fmt: skip
    ((error,),) = rows(db_url, "select error from ops.alerts where channel = 'webhook'")
    assert error.startswith("webhook: ") and "generic-secret" not in error
    assert len(server.bodies(SLACK_PATH)) == 1 and len(server.bodies(PD)) == 1
    assert rows(db_url, "select alert_created from ops.incidents") == [(True,)]


def test_a_url_with_a_space_is_one_clear_line_without_the_secret(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        bad = server.base + "/services/T000/B000/slack secret token"
        env = channel_env(server, COSTWATCH_SLACK_WEBHOOK_URL=bad)
        report = engine.tick(db_url, now=NOW, settings=IncidentSettings.from_env(env))
    assert report.gave_up == 1 and report.sent == 3
    ((status, error),) = rows(db_url, "select status, error from ops.alerts where channel='slack'")
    assert status == "failed"
    assert (
        error == "COSTWATCH_SLACK_WEBHOOK_URL contains a space, a control or a non-ASCII character"
    )
    assert "secret" not in report.summary()


def test_pagerduty_answering_500_across_a_resolve_gets_only_the_resolve(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server, hook_server() as pagerduty:
        pagerduty.default = 500
        env = channel_env(server, COSTWATCH_PAGERDUTY_URL=pagerduty.base + PD)
        settings = IncidentSettings.from_env(env)
        engine.tick(db_url, now=NOW, settings=settings)
        marts.append(10, 10)  # two quiet complete hours: resolved while the trigger waits
        pagerduty.default = 202
        engine.tick(db_url, now=NOW + timedelta(hours=2), settings=settings)
        engine.tick(db_url, now=NOW + timedelta(hours=3), settings=settings)
    assert [b["event_action"] for b in pagerduty.bodies(PD)] == ["trigger", "resolve"]
    pd_alerts = "select kind, status from ops.alerts where channel = 'pagerduty' order by alert_id"
    assert rows(db_url, pd_alerts) == [("opened", "superseded"), ("resolved", "sent")]
    # The other channels got both, in order.
    assert [b["event"] for b in server.bodies(HOOK_PATH)] == [
        "incident.opened",
        "incident.resolved",
    ]


KILLED_BETWEEN_SEND_AND_RECORD = """
import os, sys
from datetime import datetime
from orchestration.runbook.incidents import channels, engine
from orchestration.runbook.incidents.settings import IncidentSettings

deliver = channels.deliver

def deliver_then_die(channel, payload, settings):
    deliver(channel, payload, settings)
    os._exit(9)  # killed after the POST, before its outcome is recorded

channels.deliver = deliver_then_die
settings = IncidentSettings(webhook_url=sys.argv[2], alert_timeout_seconds=2)
engine.tick(sys.argv[1], now=datetime.fromisoformat(sys.argv[3]), settings=settings)
"""


def test_a_process_killed_between_send_and_record_sends_again_later(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        url = server.base + HOOK_PATH
        killed = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(KILLED_BETWEEN_SEND_AND_RECORD), db_url, url,
             NOW.isoformat()],
            env={**os.environ}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert killed.returncode == 9, killed.stderr
        assert len(server.bodies(HOOK_PATH)) == 1
        # Claimed (attempt counted), never recorded: still pending, due after the back-off.
        assert rows(db_url, "select channel, status, attempts from ops.alerts order by 1") == [
            ("log", "sent", 1),
            ("webhook", "pending", 1),
        ]
        settings = IncidentSettings(webhook_url=url, alert_timeout_seconds=2)
        engine.tick(db_url, now=NOW + timedelta(seconds=1), settings=settings)  # not yet due
        engine.tick(db_url, now=NOW + timedelta(hours=1), settings=settings)
    assert rows(db_url, "select channel, status from ops.alerts order by 1") == [
        ("log", "sent"),
        ("webhook", "sent"),
    ]
    bodies = server.bodies(HOOK_PATH)
    # At least once: the receiver saw it twice, with the same dedup_key to deduplicate on.
    assert len(bodies) == 2
    assert {b["dedup_key"] for b in bodies} == {"costwatch-spike-2026-11-20T03"}


def test_late_data_before_the_spike_keeps_the_incident(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        engine.tick(db_url, now=NOW, settings=settings)
        marts.costs[2] = 28  # late events: the spike began an hour earlier
        marts.rebuild()
        report = engine.tick(db_url, now=NOW + timedelta(minutes=20), settings=settings)
    assert report.opened == []
    assert rows(db_url, "select spike_id, previous_spike_ids, dedup_key from ops.incidents") == [
        ("spike-2026-11-20T02", ["spike-2026-11-20T03"], "costwatch-spike-2026-11-20T03")
    ]
    assert [b["event"] for b in server.bodies(HOOK_PATH)] == ["incident.opened"]


def test_spike_hours_after_the_resolve_reopen_the_incident(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        engine.tick(db_url, now=NOW, settings=settings)
        marts.append(10, 10)
        engine.tick(db_url, now=NOW + timedelta(hours=2), settings=settings)
        assert rows(db_url, "select status from ops.incidents") == [("resolved",)]
        marts.append(30, 31, 33)
        report = engine.tick(db_url, now=NOW + timedelta(hours=5), settings=settings)
        assert report.reopened and not report.opened
        marts.append(10, 10)
        engine.tick(db_url, now=NOW + timedelta(hours=7), settings=settings)
    ((count, status, reopened),) = rows(
        db_url, "select count(*), max(status), bool_and(reopened_at is not null) from ops.incidents"
    )
    assert (count, status, reopened) == (1, "resolved", True)
    assert [b["event"] for b in server.bodies(HOOK_PATH)] == [
        "incident.opened", "incident.resolved", "incident.reopened", "incident.resolved",
    ]  # fmt: skip
    assert [b["event_action"] for b in server.bodies(PD)] == [
        "trigger", "resolve", "trigger", "resolve",
    ]  # fmt: skip


@pytest.mark.parametrize("window, reopens", [("1", False), (None, True)])
def test_the_reopen_window_decides_reopen_or_a_new_incident(db_url, window, reopens):
    """A spike starting 3 h after its incident was resolved: within the default 6 h it reopens
    that incident; with COSTWATCH_REOPEN_WITHIN_HOURS=1 it is a new one (its own `opened`)."""
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        extra = {"COSTWATCH_REOPEN_WITHIN_HOURS": window} if window else {}
        settings = IncidentSettings.from_env(channel_env(server, **extra))
        assert settings.reopen_within_hours == float(window or 6) and settings.problems == ()
        engine.tick(db_url, now=NOW, settings=settings)
        marts.append(10, 10)
        engine.tick(db_url, now=NOW + timedelta(hours=2), settings=settings)  # resolved
        assert rows(db_url, "select status from ops.incidents") == [("resolved",)]
        marts.append(10, 10)
        engine.tick(db_url, now=NOW + timedelta(hours=4), settings=settings)
        marts.append(30, 31, 33)
        report = engine.tick(db_url, now=NOW + timedelta(hours=7), settings=settings)
        assert (bool(report.reopened), bool(report.opened)) == (reopens, not reopens)
    statuses = rows(db_url, "select status from ops.incidents order by incident_id")
    events = [b["event"] for b in server.bodies(HOOK_PATH)]
    if reopens:
        assert statuses == [("open",)]
        assert events == ["incident.opened", "incident.resolved", "incident.reopened"]
    else:
        assert statuses == [("resolved",), ("open",)]
        assert events == ["incident.opened", "incident.resolved", "incident.opened"]


def test_an_open_incidents_detail_follows_its_growing_excess_without_an_alert(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        engine.tick(db_url, now=NOW, settings=settings)
        ((first,),) = rows(db_url, "select root_cause_detail from ops.incidents")
        assert "excess is $63.00" in first, first
        marts.append(40)
        report = engine.tick(db_url, now=NOW + timedelta(hours=1), settings=settings)
        assert not report.updated  # the cause did not change: no update alert
    ((detail, excess),) = rows(
        db_url, "select root_cause_detail, excess_cost_usd from ops.incidents"
    )
    assert float(excess) == 93.0 and "excess is $93.00" in detail, detail
    # One opened alert; the hour later it escalates (the cost still rises), never an update.
    assert [b["event"] for b in server.bodies(HOOK_PATH)] == [
        "incident.opened", "incident.escalated",
    ]  # fmt: skip


def test_every_session_is_utc_on_a_server_that_is_not(db_url):
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"alter database \"{dbname}\" set timezone = 'America/New_York'")
    with psycopg.connect(db_url) as raw:
        assert raw.execute("show timezone").fetchone()[0] == "America/New_York"
    with connect(db_url) as conn:
        assert conn.execute("show timezone").fetchone()[0] == "UTC"
    assert dbt_env(db_url)["PGTZ"] == "UTC"
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    engine.tick(db_url, now=NOW, settings=IncidentSettings())
    assert rows(db_url, "select spike_id from ops.incidents") == [("spike-2026-11-20T03",)]


def test_dbt_targets_the_database_libpq_would():
    env = dbt_env("postgresql://me@db.example")
    assert (env["COSTWATCH_DB_NAME"], env["COSTWATCH_DB_USER"]) == ("me", "me")
    assert env["COSTWATCH_DB_HOST"] == "db.example"


def test_escalation_reaches_leadership_and_raises_pagerduty_severity(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server, hook_server() as leadership:
        env = channel_env(
            server,
            COSTWATCH_ESCALATION_WEBHOOK_URL=leadership.base + "/lead/hook",
            COSTWATCH_ESCALATION_SLACK_WEBHOOK_URL=leadership.base + "/lead/slack",
        )
        settings = IncidentSettings.from_env(env)
        engine.tick(db_url, now=NOW, settings=settings)
        marts.append(40)
        report = engine.tick(db_url, now=NOW + timedelta(minutes=65), settings=settings)
        assert report.escalated
    assert [b["event"] for b in leadership.bodies("/lead/hook")] == ["incident.escalated"]
    assert len(leadership.bodies("/lead/slack")) == 1
    pd = server.bodies(PD)
    assert [b["payload"]["severity"] for b in pd] == ["error", "critical"]
    assert {b["dedup_key"] for b in pd} == {"costwatch-spike-2026-11-20T03"}


def test_ack_sends_pagerduty_acknowledge_and_stops_escalation(db_url, monkeypatch):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        env = channel_env(server)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = IncidentSettings.from_env(env)
        engine.tick(db_url, now=NOW, settings=settings)

        class Args:
            incidents_command = "ack"
            incident_id = "1"

        assert incidents_command(Args(), url=db_url) == 0
        marts.append(40, 45)
        report = engine.tick(db_url, now=NOW + timedelta(hours=2), settings=settings)
    assert report.escalated == []
    assert [b["event_action"] for b in server.bodies(PD)] == ["trigger", "acknowledge"]
    assert server.bodies(PD)[1]["routing_key"] == ROUTING_KEY
    assert rows(db_url, "select acknowledged_at is not null, escalated_at from ops.incidents") == [
        (True, None)
    ]


def test_follow_up_a_day_later_records_the_verdict_with_an_alert(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        engine.tick(db_url, now=NOW, settings=settings)
        marts.append(10, 10)
        engine.tick(db_url, now=NOW + timedelta(hours=2), settings=settings)
        report = engine.tick(db_url, now=NOW + timedelta(hours=25), settings=settings)
        assert report.followed_up == ["#1 fixed"]
        engine.tick(db_url, now=NOW + timedelta(hours=26), settings=settings)
    assert rows(db_url, "select follow_up_result from ops.incidents") == [("fixed",)]
    (follow_up,) = [b for b in server.bodies(HOOK_PATH) if b["event"] == "incident.follow_up"]
    assert follow_up["follow_up_result"] == "fixed"
    # fixed: nothing to page about
    assert [b["event_action"] for b in server.bodies(PD)] == ["trigger", "resolve"]


def test_follow_up_of_a_spike_still_going_is_still_elevated(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    engine.tick(db_url, now=NOW, settings=IncidentSettings())
    marts.append(33)
    engine.tick(db_url, now=NOW + timedelta(hours=25), settings=IncidentSettings())
    assert rows(db_url, "select follow_up_result from ops.incidents") == [("still_elevated",)]
    assert rows(db_url, "select status from ops.alerts where kind = 'follow_up'") == [("sent",)]


def test_a_channel_missing_in_this_process_is_skipped_not_failed(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        engine.tick(db_url, now=NOW, settings=IncidentSettings.from_env(channel_env(server)))
        # Another process, without the channels' variables: nothing of theirs is failed.
        engine.tick(db_url, now=NOW + timedelta(hours=2), settings=IncidentSettings())
    assert rows(db_url, "select count(*) from ops.alerts where status = 'failed'") == [(0,)]


def test_alert_created_only_when_an_external_channel_delivered(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with garbage_server() as garbage:
        settings = IncidentSettings(webhook_url=garbage + HOOK_PATH, alert_timeout_seconds=1)
        engine.tick(db_url, now=NOW, settings=settings)
    assert rows(db_url, "select alert_created from ops.incidents") == [(False,)]
    assert rows(db_url, "select channel, status from ops.alerts order by 1") == [
        ("log", "sent"),
        ("webhook", "pending"),
    ]


def test_an_undiagnosed_incident_gets_its_cause_and_one_update_alert(db_url):
    marts = Marts(db_url)
    marts.causes = []  # the diagnosis found nothing yet
    marts.append(10, 10, 10, 30, 32, 31)
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        engine.tick(db_url, now=NOW, settings=settings)
        assert rows(db_url, "select root_cause from ops.incidents") == [("undiagnosed",)]
        marts.causes = [AUTOSAVE]
        marts.append(33)
        for minutes in (10, 20):
            engine.tick(db_url, now=NOW + timedelta(minutes=minutes), settings=settings)
    ((cause, report_md),) = rows(db_url, "select root_cause, report_md from ops.incidents")
    assert cause == "hidden_recompute" and "hidden_recompute" in report_md
    assert [b["event"] for b in server.bodies(HOOK_PATH)] == ["incident.opened", "incident.updated"]

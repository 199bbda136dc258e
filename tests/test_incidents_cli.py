"""`costwatch incidents list | show ID | ack ID | resolve ID`, as a user runs it."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from orchestration.runbook.incidents import engine
from orchestration.runbook.incidents.settings import IncidentSettings
from tests.conftest import run_costwatch
from tests.test_incidents_support import T0, Marts, channel_env, hook_server, rows

NOW = T0 + timedelta(hours=6, minutes=5)


def opened(url: str) -> None:
    Marts(url).append(10, 10, 10, 30, 32, 31)
    engine.tick(url, now=NOW, settings=IncidentSettings.from_env({}))


def test_list_show_ack_resolve(db_url, cli_env):
    opened(db_url)
    listing = run_costwatch("incidents", "list", env=cli_env, check=True).stdout
    assert "hidden_recompute" in listing and "$63.00" in listing and "open" in listing

    shown = run_costwatch("incidents", "show", "1", env=cli_env, check=True).stdout
    for fact in ("spike-2026-11-20T03", "AUTO_SAVE_INTERVAL_MS = 30000", "follow-up:", "log"):
        assert fact in shown

    run_costwatch("incidents", "ack", "1", env=cli_env, check=True)
    assert rows(db_url, "select acknowledged_at is not null from ops.incidents") == [(True,)]

    with hook_server() as server:
        env = {**cli_env, **channel_env(server)}
        out = run_costwatch("incidents", "resolve", "1", env=env, check=True).stdout
        assert "incident 1 resolved; 4 alerts sent" in out
        assert server.bodies("/v2/enqueue")[0]["event_action"] == "resolve"
    assert rows(db_url, "select status from ops.incidents") == [("resolved",)]
    again = run_costwatch("incidents", "resolve", "1", env=cli_env, check=True).stdout
    assert "already resolved" in again
    assert "resolved" in run_costwatch("incidents", env=cli_env, check=True).stdout


def test_unknown_incident_is_one_line(db_url, cli_env):
    result = run_costwatch("incidents", "show", "42", env=cli_env)
    assert result.returncode == 1
    assert result.stderr == "costwatch: error: no incident 42 (see `costwatch incidents list`)\n"


def test_empty_log(db_url, cli_env):
    assert run_costwatch("incidents", "list", env=cli_env, check=True).stdout.strip() == (
        "no incidents"
    )


def test_a_bad_setting_is_one_line_and_disables_only_what_it_configures(db_url, cli_env):
    opened(db_url)
    env = {**cli_env, "COSTWATCH_ALERT_TIMEOUT_SECONDS": "soon"}
    result = run_costwatch("incidents", "resolve", "1", env=env)
    assert result.returncode == 0
    assert result.stderr.splitlines()[0] == (
        "setting ignored: COSTWATCH_ALERT_TIMEOUT_SECONDS must be a number, got 'soon'"
    )
    # the timeout falls back to its default; resolving works
    assert rows(db_url, "select status from ops.incidents") == [("resolved",)]


def test_names_from_the_data_never_become_markup_or_escape_codes(db_url, cli_env):
    opened(db_url)
    hostile = "[/x] [link=https://evil.example]click[/link] \x1b[31mred\x1b[0m \x07"
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "update ops.incidents set root_cause = %s, root_cause_detail = %s,"
            " mitigation_recommended = %s, report_md = %s",
            (hostile, hostile, hostile, "# report\n" + hostile),
        )
    for command in (("incidents", "list"), ("incidents", "show", "1")):
        result = run_costwatch(*command, env=cli_env)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "[/x]" in out and "[link=https://evil.example]" in out  # shown, not rendered
        assert "\x1b" not in out and "\x07" not in out

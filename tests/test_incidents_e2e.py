"""The incident lifecycle end to end through `costwatch run` on seeded data.

An autosave loop is seeded and a pass opens its incident, with the webhook down (HTTP 500):
the failure is recorded and the `cost_spikes` check warns. Quiet hours are appended and a second
pass, minutes later, delivers the webhook alert it owed, resolves the incident (two quiet complete
hours) and sends the `resolved` alerts; the check passes again. Escalation and the cost cap are
covered on hand-written marts in test_incidents.py and test_costcap.py.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import costwatch_env, run_costwatch
from tests.test_incidents_support import HOOK_PATH, channel_env, hook_server, rows

pytestmark = pytest.mark.slow

# A Wednesday: 9 days give the baseline 3+ earlier days of the onset's day type.
END = "2026-11-18T20:00:00Z"
QUIET_END = "2026-11-18T23:00:00Z"
SEED = ("--days", "9", "--events-per-hour", "120", "--seed", "1")


def test_open_with_a_down_channel_then_retry_and_resolve_through_costwatch_run(db_url, tmp_path):
    with hook_server() as server:
        env = costwatch_env(db_url, tmp_path, **channel_env(server))
        run_costwatch(
            "seed", "--scenario", "autosave_loop", *SEED, "--end", END, env=env, check=True
        )
        server.script = [500]  # the generic webhook is down for the first pass

        first = run_costwatch("run", env=env, check=True).stdout
        assert "check warned: marts/cost_spikes:no_sustained_spike_open" in first
        assert "incidents: 1 opened (spike-" in first and "hidden_recompute auto_save" in first
        assert "3 alerts sent, 1 failed (retry later)" in first
        ((cause, status, detail, fix),) = rows(
            db_url,
            "select root_cause, status, root_cause_detail, mitigation_recommended "
            "from ops.incidents",
        )
        assert (cause, status) == ("hidden_recompute", "open")
        assert "trigger_type=auto_save" in detail and "AUTO_SAVE_INTERVAL_MS = 30000" in fix
        assert rows(
            db_url, "select status, attempts from ops.alerts where channel = 'webhook'"
        ) == [("pending", 1)]  # retried by a later pass
        # The retry is due 30 s after the failed attempt (backoff): let that time pass, as the
        # next hourly pass would, so the second pass does not depend on how fast the first was.
        ((wait_s,),) = rows(
            db_url,
            "select greatest(extract(epoch from next_attempt_at - now()), 0) from ops.alerts "
            "where channel = 'webhook'",
        )
        time.sleep(min(float(wait_s) + 1, 60))

        run_costwatch(
            "seed", "--scenario", "quiet", "--hours", "3", "--events-per-hour", "120",
            "--seed", "2", "--end", QUIET_END, env=env, check=True,
        )  # fmt: skip
        # Whether or not every other check of this pass holds, the incident logic runs.
        result = run_costwatch("run", env=env)
        second = result.stdout
        tail = f"{second[-1500:]}\n{result.stderr[-1500:]}"
        assert "check warned: marts/cost_spikes" not in second, tail
        assert "incidents: 0 opened, 1 resolved, 0 open" in second, tail

    assert rows(db_url, "select status, resolved_by from ops.incidents") == [
        ("resolved", "costwatch")
    ]
    alerts = rows(
        db_url,
        "select channel, kind, status, attempts from ops.alerts "
        "where kind <> 'pipeline_failed' order by channel, kind",
    )
    assert alerts == [
        ("log", "opened", "sent", 1), ("log", "resolved", "sent", 1),
        ("pagerduty", "opened", "sent", 1), ("pagerduty", "resolved", "sent", 1),
        ("slack", "opened", "sent", 1), ("slack", "resolved", "sent", 1),
        ("webhook", "opened", "sent", 2), ("webhook", "resolved", "sent", 1),
    ]  # fmt: skip
    events = [body["event"] for body in server.bodies(HOOK_PATH)]
    assert [e for e in events if e != "pipeline.failed"] == [
        "incident.opened", "incident.opened", "incident.resolved",
    ]  # fmt: skip
    listing = run_costwatch("incidents", "list", env=env, check=True).stdout
    assert "resolved" in listing and "hidden_recompute" in listing


def test_mistyped_settings_are_named_and_never_silence_the_incident(db_url, tmp_path):
    """A threshold of the wrong type and a misspelt variable name: detection runs on the default
    threshold, the incident opens and pages as usual, and the pass names both settings in one
    line, exits non-zero and sends `pipeline_failed` (CONTRACT section 6)."""
    with hook_server() as server:
        env = costwatch_env(
            db_url,
            tmp_path,
            **channel_env(server),
            COSTWATCH_VAR_SPIKE_THRESHOLD_PCT="high",
            COSTWATCH_ESCALATE_AFTER_MINUTE="30",
        )
        run_costwatch(
            "seed", "--scenario", "autosave_loop", *SEED, "--end", END, env=env, check=True
        )  # fmt: skip
        result = run_costwatch("run", env=env)
        tail = f"{result.stdout[-2000:]}\n{result.stderr[-1500:]}"
        assert result.returncode == 1, tail
        errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, tail
        assert "COSTWATCH_VAR_SPIKE_THRESHOLD_PCT must be a number, got 'high'" in errors[0]
        assert "(did you mean COSTWATCH_ESCALATE_AFTER_MINUTES?)" in errors[0]
        assert "Traceback" not in result.stdout + result.stderr
        assert "incidents: 1 opened (spike-" in result.stdout, tail
    assert rows(db_url, "select root_cause, status from ops.incidents") == [
        ("hidden_recompute", "open")
    ]
    events = [body["event"] for body in server.bodies(HOOK_PATH)]
    assert events.count("incident.opened") == 1 and "pipeline.failed" in events, events

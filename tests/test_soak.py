"""Soak: two days of hourly passes, compressed. Nothing grows, nothing is doubled.

Eight days of quiet history, then 48 passes in a row in one Python process (as a long-lived
scheduler would run them), an hour of events (240) appended before each; for eight of those
hours an autosave loop runs. The incident sensors' clock follows the data (an hour per pass), so
the incident opens, escalates after its hour, and resolves after two quiet complete hours,
exactly once each. The run's memory (this process's RSS after each pass) does not grow, and at
the end every mart equals the runbook's query on all the data.

COSTWATCH_SOAK_PASSES shortens it for a local look (the suite runs 48); the timings of every
pass land in $COSTWATCH_SOAK_REPORT (JSON) when set.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
import pytest

from orchestration import pipeline
from orchestration.core.database import dbt_env
from orchestration.runbook.incidents import engine
from orchestration.runbook.seed import seed
from tests.conftest import dagster_home, query
from tests.test_faults_support import leftover_relations, runbook_mismatches
from tests.test_incidents_support import HOOK_PATH, hook_server

pytestmark = [pytest.mark.slow, pytest.mark.soak]

PASSES = int(os.environ.get("COSTWATCH_SOAK_PASSES", "48"))
# Fewer events and the noise floor (2.25 standard errors) hides a night-time autosave loop.
EVENTS_PER_HOUR = 240
# The passes (0-based) whose appended hour is an autosave loop: 16-23 of 48 ...
INCIDENT = range(PASSES // 3, PASSES // 3 + max(5, PASSES // 6))
# ... starting at 14:00 UTC, a busy hour. The soak's first appended hour begins at START.
START = datetime(2026, 11, 10, 14, tzinfo=UTC) - timedelta(hours=INCIDENT.start)


def _isolate_environment(monkeypatch: pytest.MonkeyPatch, url: str, home: Path) -> None:
    """run_pass points os.environ at its database: make pytest restore it afterwards."""
    for key, value in {**dbt_env(url), "COSTWATCH_DATABASE_URL": url}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("COSTWATCH_ALERT_TIMEOUT_SECONDS", "2")


@pytest.mark.timeout(3600)  # 48 passes of ~15-30 s each, beside the rest of the suite
def test_48_hourly_passes_keep_memory_flat_ops_consistent_and_marts_exact(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _isolate_environment(monkeypatch, db_url, dagster_home(tmp_path))
    with psycopg.connect(db_url) as conn:
        seed(conn, "quiet", days=8, events_per_hour=EVENTS_PER_HOUR, seed=7, end=START)

    # The sensors' clock: five minutes past the newest appended hour, as the hourly schedule.
    clock = {"now": START}
    tick = engine.tick
    monkeypatch.setattr(engine, "tick", lambda url, now=None, **kw: tick(url, clock["now"], **kw))

    process = psutil.Process()
    passes: list[dict] = []
    soak_started = time.monotonic()
    with hook_server() as server:
        monkeypatch.setenv("COSTWATCH_ALERT_WEBHOOK_URL", server.base + HOOK_PATH)
        for index in range(PASSES):
            end = START + timedelta(hours=index + 1)
            scenario = "autosave_loop" if index in INCIDENT else "quiet"
            with psycopg.connect(db_url) as conn:
                seed(conn, scenario, hours=1, events_per_hour=EVENTS_PER_HOUR, seed=100 + index,
                     end=end)  # fmt: skip
            clock["now"] = end + timedelta(minutes=5)
            result = pipeline.run_pass(url=db_url, wait_seconds=60)
            gc.collect()
            passes.append(
                {
                    "pass": index,
                    "scenario": scenario,
                    "success": result.success,
                    "seconds": round(result.seconds, 2),
                    "rss_mb": round(process.memory_info().rss / 2**20, 1),
                    "incidents": result.incidents,
                    "timings": result.timings,
                    "steps": result.steps,
                    "dbt_models_s": round(sum(result.models.values()), 2),
                    "checks_s": round(sum(result.checks.values()), 2),
                    "error": result.error,
                }
            )
        events = [body["event"] for body in server.bodies(HOOK_PATH)]
    soak_seconds = time.monotonic() - soak_started

    report = os.environ.get("COSTWATCH_SOAK_REPORT")
    if report:
        Path(report).write_text(json.dumps({"seconds": soak_seconds, "passes": passes}, indent=1))
    failed = [(p["pass"], p["error"]) for p in passes if not p["success"]]
    assert failed == [], failed

    # ops: one incident, opened, escalated once, resolved once; one alert of each kind.
    incidents = query(
        db_url,
        "select status, escalated_at is not null, resolved_at is not null, spike_start"
        " from ops.incidents",
    )
    assert len(incidents) == 1, incidents
    status, escalated, resolved, spike_start = incidents[0]
    assert (status, escalated, resolved) == ("resolved", True, True)
    assert START + timedelta(hours=INCIDENT.start) <= spike_start
    assert spike_start < START + timedelta(hours=INCIDENT.stop)
    alerts = query(
        db_url,
        "select channel, kind, status, count(*) from ops.alerts"
        " where kind <> 'pipeline_failed' group by 1, 2, 3 order by 1, 2",
    )
    # Runbook step 8: a day after opening, the follow-up (when the soak's clock got that far).
    ((opened_at,),) = query(db_url, "select opened_at from ops.incidents")
    followed = opened_at + timedelta(hours=24) <= clock["now"]
    kinds = ["escalated", *(["follow_up"] if followed else []), "opened", "resolved"]
    assert alerts == [(c, k, "sent", 1) for c in ("log", "webhook") for k in kinds]
    assert events == [
        "incident.opened", "incident.escalated", "incident.resolved",
        *(["incident.follow_up"] if followed else []),
    ]  # fmt: skip

    # Memory: the last ten passes' median RSS within 10% (+ 40 MB) of the first ten's.
    rss = [p["rss_mb"] for p in passes]
    window = min(10, len(rss) // 2)
    first, last = statistics.median(rss[:window]), statistics.median(rss[-window:])
    assert last <= first * 1.10 + 40, rss

    assert runbook_mismatches(db_url) == {}
    assert leftover_relations(db_url) == []

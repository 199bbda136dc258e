"""Two passes at once never double an incident, an alert or a mart row.

`costwatch run` holds a PostgreSQL advisory lock for the whole pass; a run that `dagster dev`
launches (the hourly schedule) takes the same lock through its dbt resource. The second pass
waits, or with `--wait 0` exits with one clear line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from orchestration.core.config import Config
from orchestration.core.database import connect
from orchestration.defs.project import DBT_EXECUTABLE, dbt_project
from orchestration.defs.resources import PassLockedDbtCliResource
from orchestration.pipeline import pass_lock
from tests.conftest import COSTWATCH, PROJECT_ROOT, costwatch_env, query, run_costwatch
from tests.support.faults import PASS_LOCK_SQL, runbook_mismatches
from tests.support.incidents import HOOK_PATH, SLACK_PATH, channel_env, hook_server

# A Wednesday: 8 days give the baseline 3+ earlier days of the onset's day type.
END = "2026-11-18T20:00:00Z"


def _lock_free(url: str) -> bool:
    with connect(url) as conn:
        free = conn.execute(
            "select 1 from ops.locks where name = 'costwatch.pass' for update skip locked"
        ).fetchone()
        conn.rollback()
    return free is not None


def test_a_second_pass_with_wait_0_exits_with_one_clear_line(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url) as holder:
        holder.execute(PASS_LOCK_SQL)  # a pass in progress
        result = run_costwatch("run", "--wait", "0", env=costwatch_env(db_url, tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "another costwatch pass is running on this database" in lines[0]
    assert query(db_url, "select count(*) from ops.incidents") == [(0,)]
    assert query(
        db_url, "select count(*) from information_schema.tables where table_schema = 'marts'"
    ) == [(0,)]


def test_a_dagster_dev_run_takes_the_pass_lock_through_its_dbt_resource(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTWATCH_PASS_WAIT_SECONDS", "0")
    resource = PassLockedDbtCliResource(
        project_dir=dbt_project,
        dbt_executable=DBT_EXECUTABLE,
        settings=Config.load(database_url=db_url),
    )
    context = dg.build_init_resource_context()

    with psycopg.connect(db_url) as holder:
        holder.execute(PASS_LOCK_SQL)  # a `costwatch run` in another process
        with pytest.raises(dg.Failure, match="another costwatch pass is running"):
            resource.setup_for_execution(context)

    resource.setup_for_execution(context)  # free now: the scheduled run holds it
    assert not _lock_free(db_url)
    resource.teardown_after_execution(context)
    assert _lock_free(db_url)

    # Inside `costwatch run` (same process, lock held), the resource does not wait for itself.
    with pass_lock(db_url, 0):
        resource.setup_for_execution(context)
        resource.teardown_after_execution(context)
        assert not _lock_free(db_url)
    assert _lock_free(db_url)


@pytest.mark.slow
def test_two_runs_at_once_open_one_incident_send_one_alert_per_channel(
    db_url: str, tmp_path: Path
) -> None:
    with hook_server() as server:
        env = costwatch_env(db_url, tmp_path, **channel_env(server))
        run_costwatch(
            "seed", "--scenario", "autosave_loop", "--days", "8", "--events-per-hour", "120",
            "--seed", "1", "--end", END, env=env, check=True,
        )  # fmt: skip
        runs = []
        for index in range(2):
            runs.append(
                subprocess.Popen(
                    [COSTWATCH, "run", "--json", str(tmp_path / f"pass{index}.json")],
                    env=env,
                    cwd=PROJECT_ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        outputs = [run.communicate(timeout=900) for run in runs]
        requests = list(server.requests)

    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, f"{stdout[-2000:]}\n{stderr[-2000:]}"
    passes = [json.loads((tmp_path / f"pass{i}.json").read_text()) for i in range(2)]
    waited = sorted(p["timings"]["lock_wait"] for p in passes)
    first_execute = min(passes, key=lambda p: p["timings"]["lock_wait"])["timings"]["execute"]
    assert waited[1] >= first_execute * 0.9, passes  # the second waited for the whole first

    assert query(db_url, "select count(*), count(distinct spike_id) from ops.incidents") == [(1, 1)]
    opened = query(
        db_url,
        "select channel, count(*) from ops.alerts where kind = 'opened' group by 1 order by 1",
    )
    assert opened == [("log", 1), ("pagerduty", 1), ("slack", 1), ("webhook", 1)]
    incident_posts = [
        r["path"]
        for r in requests
        if "pipeline" not in json.dumps(r["body"])  # a pipeline_failed alert is not ours
    ]
    assert sorted(incident_posts) == sorted([HOOK_PATH, SLACK_PATH, "/v2/enqueue"])
    assert runbook_mismatches(db_url) == {}


def test_a_pass_killed_with_sigkill_leaves_no_lock_behind(db_url: str) -> None:
    """The lock is a session's: a `costwatch run` killed hard never blocks the next one."""
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import os, signal, sys\n"
            "from orchestration.pipeline import pass_lock\n"
            "with pass_lock(sys.argv[1], 0):\n"
            "    print('held', flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n",
            db_url,
        ],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    holder.wait(timeout=30)
    assert holder.returncode == -9
    with pass_lock(db_url, 10):  # taken within seconds, not after the 900 s default wait
        assert not _lock_free(db_url)

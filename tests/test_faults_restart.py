"""PostgreSQL restarted in the middle of a pass: one clear line, no half-written mart, and the
next pass catches up.

The fault runs on a PostgreSQL of its own (a second embedded server in its own COSTWATCH_HOME
under the project), so restarting it disturbs no other test.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from orchestration.core.embedded import EmbeddedPostgres
from orchestration.core.schema import init_database
from orchestration.runbook.seed import seed
from tests.conftest import COSTWATCH, PROJECT_ROOT, costwatch_env, run_costwatch
from tests.test_faults_support import leftover_relations, runbook_mismatches
from tests.test_marts_support import RUNBOOK_MARTS, snapshot

pytestmark = pytest.mark.slow

END = datetime(2026, 11, 21, 20, tzinfo=UTC)
LATER = datetime(2026, 11, 21, 23, tzinfo=UTC)
# A backend of dbt's inside a mart's build: its DDL/DML names a relation of the marts schema.
BUILDING_A_MART = """
select count(*) from pg_stat_activity
where pid <> pg_backend_pid() and datname = current_database()
  and state in ('active', 'idle in transaction') and query like '%%"marts".%%'
"""


@pytest.fixture
def server() -> Iterator[EmbeddedPostgres]:
    """A second embedded PostgreSQL, in a COSTWATCH_HOME of its own; stopped and removed after."""
    home = PROJECT_ROOT / ".costwatch" / "test-homes" / f"restart-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    pg = EmbeddedPostgres(home)
    pg.start()
    yield pg
    pg.stop()
    shutil.rmtree(home, ignore_errors=True)


def _wait_for_a_mart_build(url: str, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the pass ended before dbt built a mart"
            if conn.execute(BUILDING_A_MART).fetchone()[0]:
                return
            time.sleep(0.1)
    raise AssertionError("dbt never started building a mart")


def test_a_restart_mid_pass_fails_in_one_line_leaves_whole_marts_and_the_next_pass_catches_up(
    server: EmbeddedPostgres, tmp_path: Path
) -> None:
    url = server.url()
    init_database(url)
    with psycopg.connect(url) as conn:
        seed(conn, "quiet", days=4, events_per_hour=60, seed=1, end=END)
    env = costwatch_env(url, tmp_path)
    run_costwatch("run", env=env, check=True)
    assert runbook_mismatches(url) == {}
    before = snapshot(url)

    with psycopg.connect(url) as conn:
        seed(conn, "quiet", hours=3, events_per_hour=60, seed=2, end=LATER)
    process = subprocess.Popen(
        [COSTWATCH, "run"], env=env, cwd=PROJECT_ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _wait_for_a_mart_build(url, process)
    restarted = server._run(
        "pg_ctl", "restart", "-w", "-m", "fast", "-D", str(server.data_dir),
        "-l", str(server.log_file),
    )  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr
    stdout, stderr = process.communicate(timeout=900)

    assert process.returncode != 0, stdout[-3000:]
    errors = [line for line in stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stdout[-3000:]
    assert "Traceback" not in stdout, stdout[-3000:]
    # Every mart is whole: the one built before the restart, or the new one on all the data.
    after = snapshot(url)
    mismatched = runbook_mismatches(url)
    half_written = [t for t in RUNBOOK_MARTS if after[t] != before[t] and t in mismatched]
    assert half_written == [], {t: mismatched[t] for t in half_written}
    assert leftover_relations(url) == []

    run_costwatch("run", env=env, check=True)
    assert runbook_mismatches(url) == {}
    assert leftover_relations(url) == []
    with psycopg.connect(url) as conn:
        newest = conn.execute("select max(hour) from marts.cost_hourly").fetchone()[0]
    assert newest == datetime(2026, 11, 21, 22, tzinfo=UTC)

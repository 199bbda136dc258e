"""Shared fixtures: a real PostgreSQL (the embedded server), a fresh database per test."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from orchestration.core.database import connect, url_for_database
from orchestration.core.dbt_seeds import unchanged_seeds
from orchestration.core.embedded import EmbeddedPostgres
from orchestration.core.schema import init_database

PROJECT_ROOT = Path(__file__).resolve().parent.parent
COSTWATCH = str(Path(sys.executable).with_name("costwatch"))
_counter = itertools.count()

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "true")


def pytest_configure(config: pytest.Config) -> None:
    """Build dbt's manifest before collection: the Dagster definitions (imported by test modules)
    read it, and a fresh clone has none. Under xdist every worker comes here; a file lock makes
    the parse happen once."""
    from orchestration.defs.project import prepare_manifest

    _check_clock()
    prepare_manifest()


# Many tests seed data on pinned dates (reproducible weekdays and verdicts), up to this moment.
# The only wall-clock read of the models is staging's quarantine of future-stamped events, so
# these tests hold on any clock past it, and on a clock before it they would fail for no reason
# of the code's: say so in one line instead.
PINNED_DATA_END = datetime(2026, 11, 30, tzinfo=UTC)


def _check_clock() -> None:
    now = datetime.now(UTC)
    if now < PINNED_DATA_END:
        raise pytest.UsageError(
            f"this machine's clock says {now:%Y-%m-%d %H:%M} UTC, before the tests' pinned data "
            f"({PINNED_DATA_END:%Y-%m-%d}): staging would quarantine it as future-stamped"
        )


# The order xdist hands out modules in (`--dist loadscope --no-loadscope-reorder`): it gives the
# first module to one worker, the second to the other, then tops up any worker left with 2 tests
# or fewer. So the soak (one test, most of the suite's length) goes first: its worker starts on it
# at once, and the module topped up behind it is a quick one (pure logic); the other worker
# starts with test_detection (18 tests: not topped up) and takes the remaining modules one by
# one, the longest first, so what is left at the end is short for whichever worker is free.
ORDER = (
    "tests/test_soak.py",
    "tests/test_detection.py",
    "tests/test_detection_logic.py",
    # longest next (setup plus calls in CI), the rest in collection order after them
    "tests/test_accuracy.py",
    "tests/test_engine_spark.py",
    "tests/test_diagnosis_incremental.py",
    "tests/test_pipeline.py",
    "tests/test_incremental.py",
    "tests/test_bench.py",
    "tests/test_faults_restart.py",
    "tests/test_faults_concurrency.py",
    "tests/test_incidents_e2e.py",
    "tests/test_faults_hostile.py",
    "tests/test_detection_traffic.py",
    "tests/test_dbt_test_window.py",
    "tests/test_instance.py",
    "tests/test_triage.py",
    "tests/test_dbt_unit.py",
    "tests/test_staging_changed_hours.py",
    "tests/test_otlp_receiver.py",
    "tests/test_summary_scenarios.py",
    "tests/test_expectations_pipeline.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {module: i for i, module in enumerate(ORDER)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(ORDER)))


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the maintenance database of the PostgreSQL the tests use.

    COSTWATCH_TEST_DATABASE_URL points the suite at another server; otherwise the embedded one.
    """
    url = os.environ.get("COSTWATCH_TEST_DATABASE_URL")
    if url:
        return url_for_database(url, "postgres")
    EmbeddedPostgres().start()
    return EmbeddedPostgres().url("postgres")


def _database_name(request: pytest.FixtureRequest) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
    return f"cw_test_{worker}_{os.getpid()}_{next(_counter)}"


def create_database(server_url: str, name: str, init: bool = True) -> str:
    """Create an empty database on the test server (and costwatch's tables in it)."""
    with connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
        # A test database is dropped at the end: its sessions need not wait for each commit's
        # WAL flush (dbt commits once per model and test). Nothing a test checks depends on it.
        conn.execute(f'alter database "{name}" set synchronous_commit = off')
    url = url_for_database(server_url, name)
    if init:
        init_database(url)
    return url


def loaded_seeds_excluded(url: str) -> list[str]:
    """dbt arguments leaving out the seeds whose table already holds their file, as a pass does
    (orchestration/core/dbt_seeds.py): `db init` loads the price seeds with COPY, and dbt loading
    the 10k price rows again takes ~10 s of every build."""
    from orchestration.defs.project import dbt_project

    names = unchanged_seeds(url, dbt_project.manifest_path)
    return ["--exclude", *names] if names else []


def drop_database(server_url: str, name: str) -> None:
    with connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def db_url(server_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with `costwatch db init` applied; dropped after the test."""
    name = _database_name(request)
    url = create_database(server_url, name)
    yield url
    if not os.environ.get("COSTWATCH_KEEP_TEST_DB"):
        drop_database(server_url, name)


@pytest.fixture(scope="module")
def module_db_url(server_url: str) -> Iterator[str]:
    """Like db_url, shared by the tests of one module (for expensive pipeline runs)."""
    name = f"cw_test_{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}_{os.getpid()}_m{next(_counter)}"
    url = create_database(server_url, name)
    yield url
    if not os.environ.get("COSTWATCH_KEEP_TEST_DB"):
        drop_database(server_url, name)


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the `costwatch` command against the test database."""
    return costwatch_env(db_url, tmp_path)


# Each test's Dagster home holds costwatch's dagster.yaml (runs and events go to schema `dagster`
# of the test's own database, dropped with it) and Dagster's compute-log folders: kept in memory
# (/dev/shm) where there is one.
_SHM = Path("/dev/shm")
_shm_homes: list[Path] = []


def dagster_home(tmp_path: Path) -> Path:
    """A Dagster home for one test: in /dev/shm when writable, else under tmp_path."""
    if _SHM.is_dir() and os.access(_SHM, os.W_OK):
        home = Path(tempfile.mkdtemp(prefix=f"costwatch-dagster-{tmp_path.name}-", dir=_SHM))
        _shm_homes.append(home)
        return home
    return tmp_path / "dagster_home"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for home in _shm_homes:
        shutil.rmtree(home, ignore_errors=True)


def costwatch_env(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSTWATCH_")}
    env.update(
        COSTWATCH_DATABASE_URL=url,
        COSTWATCH_HOME=os.environ.get("COSTWATCH_HOME", str(PROJECT_ROOT / ".costwatch")),
        DAGSTER_HOME=str(dagster_home(tmp_path)),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        GX_ANALYTICS_ENABLED="false",
        DAGSTER_DISABLE_TELEMETRY="true",
    )
    env.update(extra)
    return env


def run_costwatch(
    *args: str, env: dict[str, str], check: bool = False, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run the real `costwatch` command, as a user would."""
    result = subprocess.run(
        [COSTWATCH, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"costwatch {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result


def query(url: str, sql: str, params: tuple | dict | None = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()

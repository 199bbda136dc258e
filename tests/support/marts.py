"""Helpers shared by the marts, cleaning and incremental tests (no tests in here).

dbt runs as a subprocess against a test database, with its own target folder so that parallel
test processes and the shared `dbt_project/target` manifest never clash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import psycopg

from orchestration.core.config import Config
from orchestration.defs.project import partial_parse_for_profile
from tests.conftest import loaded_seeds_excluded

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).with_name("dbt"))
DBT_PROJECT = PROJECT_ROOT / "dbt_project"
# The runbook marts with everything they are built from (staging, intermediate) and their tests.
SELECTION = "+marts.runbook"

RUNBOOK_MARTS = (
    "cost_hourly",
    "cost_daily",
    "trigger_hourly",
    "recompute_hourly",
    "recompute_daily",
    "tokens_hourly",
    "tokens_daily",
    "feature_cost_hourly",
    "feature_cost_daily",
    "tool_failures_hourly",
    "tool_failures_daily",
)


# One target folder per test process: dbt's partial parse is reused by every run of the process.
TARGET = Path(tempfile.gettempdir()) / f"costwatch-dbt-marts-{os.getpid()}"


def run_dbt(url: str, *args: str, select: str = SELECTION, check: bool = True) -> dict:
    """Run `dbt <args> --select <select>` on the database at `url`; return run_results.json."""
    target = TARGET
    target.mkdir(parents=True, exist_ok=True)
    # As a pass runs dbt: the profile rendered from the configuration, no connection settings in
    # the environment (so dbt's sessions keep the server's time zone, as in production).
    config = Config.load(database_url=url)
    env = {
        **os.environ,
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    # dbt keys partial parsing on the database: the project's state, rewritten for this one.
    partial_parse_for_profile(target, config)
    profiles = str(config.dbt_profiles_dir())
    command = [DBT, *args, "--project-dir", str(DBT_PROJECT), "--profiles-dir", profiles]
    if select:
        # cautious: only tests whose every parent is selected (not other teams' tests on marts).
        command += ["--select", select, "--indirect-selection", "cautious"]
    if args and args[0] in ("build", "seed") and "--full-refresh" not in args:
        command += loaded_seeds_excluded(url)  # as a pass: seeds already loaded stay
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}")
    return json.loads((target / "run_results.json").read_text())


def rows_affected(run_results: dict) -> dict[str, int]:
    """Rows each model wrote in a dbt run (the adapter's row count), by model name."""
    out = {}
    for result in run_results["results"]:
        unique_id = result["unique_id"]
        if unique_id.startswith("model."):
            out[unique_id.split(".")[-1]] = (result.get("adapter_response") or {}).get(
                "rows_affected", 0
            )
    return out


def fetch(url: str, sql: str, params: dict | tuple | None = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("set timezone = 'UTC'")
        return conn.execute(sql, params).fetchall()


def normalise(value):
    """Numbers as floats (numeric and float columns compare to 1e-9), everything else as is."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return float(value)
    return value


def snapshot(url: str, tables: tuple[str, ...] = RUNBOOK_MARTS) -> dict[str, list[tuple]]:
    """Every row of each mart, sorted, for comparing two builds."""
    out = {}
    for table in tables:
        rows = fetch(url, f"select * from marts.{table}")
        out[table] = sorted(
            (tuple(normalise(v) for v in row) for row in rows),
            key=lambda row: tuple((v is None, str(v)) for v in row),
        )
    return out


def assert_close_rows(actual: list[tuple], expected: list[tuple], what: str) -> None:
    """Same rows, numbers equal to 1e-9 (relative for large sums)."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} rows, expected {len(expected)}"
    for got, want in zip(actual, expected, strict=True):
        assert len(got) == len(want), what
        for a, b in zip(got, want, strict=True):
            a, b = normalise(a), normalise(b)
            if isinstance(a, float) and isinstance(b, float):
                assert abs(a - b) <= 1e-9 * max(1.0, abs(b)), f"{what}: {got} != {want}"
            else:
                assert a == b, f"{what}: {got} != {want}"

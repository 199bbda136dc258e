"""Running costwatch on local Spark from a test database's raw tables (no tests here).

The raw tables go to Parquet (orchestration/core/spark_files.py); then two real passes,
`costwatch run --full-refresh` and an incremental `costwatch run` on the next raw state
(`passes_on_spark`), build the marts on Spark, run the suites, copy the decision marts into
PostgreSQL and work the incidents there. The marts are read back from the warehouse's Parquet
files with pyarrow, never through a second session on dbt's Derby metastore.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from orchestration.core.spark_files import export_raw_parquet, mart_folder, read_mart
from tests.conftest import run_costwatch
from tests.support.marts import PROJECT_ROOT


def export_raw(url: str, folder: Path) -> dict[str, int]:
    """`url`'s raw tables as Parquet folders under `folder`; the rows per table."""
    with psycopg.connect(url) as conn:
        return export_raw_parquet(conn, folder)


def partitions(folder: Path) -> dict[str, int]:
    """day=... folder -> newest mtime (ns) of its files."""
    out = {}
    for part in sorted(folder.glob("day=*")):
        out[part.name] = max((f.stat().st_mtime_ns for f in part.iterdir()), default=0)
    return out


def passes_on_spark(
    home: Path, raw_first: Path, raw_next: Path, env: dict[str, str], daily_marts: tuple[str, ...]
) -> dict:
    """`costwatch run --full-refresh` on Spark from `raw_first`, then the raw folder becomes
    `raw_next` and `costwatch run` makes an incremental pass (each a real pass: dbt-spark in
    its subprocess, the suites, the copy into PostgreSQL, the incident step). `env` is the
    passes' environment (COSTWATCH_DATABASE_URL: where incidents go). Returns each pass's
    `--json` figures and the daily marts' day partitions before and after the second."""
    raw = home / "raw"
    raw.mkdir(parents=True)
    for table in raw_first.iterdir():
        (raw / table.name).symlink_to(table, target_is_directory=True)
    env = {**env, "COSTWATCH_ENGINE": "spark", "COSTWATCH_HOME": str(home),
           "COSTWATCH_SPARK_RAW": str(raw)}  # fmt: skip
    warehouse = mart_folder("x", environ=env).parent
    report: dict = {"passes": []}
    for number, args in enumerate((("--full-refresh",), ())):
        if number:
            report["before"] = {name: partitions(warehouse / name) for name in daily_marts}
            shutil.rmtree(raw)
            shutil.copytree(raw_next, raw)
        figures = home / f"pass-{number}.json"
        started = time.monotonic()
        result = run_costwatch("run", *args, "--json", str(figures), env=env, timeout=1200)
        if not figures.exists():
            raise AssertionError(
                f"costwatch run {' '.join(args)} on Spark exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        report["passes"].append(
            {
                **json.loads(figures.read_text()),
                "wall": round(time.monotonic() - started, 1),
                "exit": result.returncode,
                "stdout": result.stdout,
            }
        )
    report["after"] = {name: partitions(warehouse / name) for name in daily_marts}
    return report


def suite_outcomes(env: dict[str, str], run_id: str) -> dict[str, dict]:
    """The expectation suites' results in a pass (Dagster's event log in PostgreSQL), by suite
    name: the rows checked, the failed expectations, the seconds."""
    import dagster as dg

    from orchestration.core.config import Config
    from orchestration.instance import dagster_instance
    from orchestration.runbook.expectations.suites import CHECK_NAME

    instance = dagster_instance(Config.load(env))
    out = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.check_name != CHECK_NAME:
            continue
        metadata = {key: value.value for key, value in evaluation.metadata.items()}
        out[".".join(evaluation.asset_key.path)] = {
            "passed": evaluation.passed,
            "rows": metadata.get("rows_checked"),
            "findings": metadata.get("findings") or [],
            "summary": metadata.get("summary"),
            "seconds": metadata.get("seconds"),
        }
    return out


def suite_on_broken_cost_hourly(home: Path, raw: Path, now: datetime) -> dict:
    """The cost_hourly suite on Spark on the mart with one hour twice (spark_runner)."""
    spec = {"home": str(home), "raw": str(raw), "now": now.isoformat(),
            "report": str(home / "broken.json")}  # fmt: skip
    (home / "broken-spec.json").write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.spark_runner", str(home / "broken-spec.json")],
        env={**os.environ, "GX_ANALYTICS_ENABLED": "false"},
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    if result.returncode != 0:
        raise AssertionError(f"the suite on Spark failed:\n{result.stderr[-3000:]}")
    return json.loads((home / "broken.json").read_text())


def spark_rows(home: Path, table: str) -> list[dict]:
    """Every row of a Spark mart as dicts (column name to value)."""
    return read_mart(table, environ={"COSTWATCH_HOME": str(home)}).to_pylist()


# Below this, two measures are both zero (a sum that cancels out in another order on Spark).
ZERO = 1e-12


def plain(value: object) -> object:
    """A cell as both engines' rows are compared: numbers as floats, timestamps in UTC."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def row_key(row: dict, columns: list[str]) -> tuple:
    return tuple((row[c] is None, str(plain(row[c]))) for c in columns)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def assert_same_mart(table: str, expected: list[dict], actual: list[dict]) -> None:
    """PostgreSQL's rows of `table` (`expected`) and Spark's (`actual`) are the same, column by
    column: the same columns and row count; every fractional measure equal to 1e-9 relative
    (absolute only within ZERO of zero: a per-request cost of 1e-3 dollars through a 32-bit
    float is off by ~1e-10, inside an absolute 1e-9); every other cell of the same Python type
    and equal. What the same SQL text computes differently on Spark (a 32-bit `::float`, a
    decimal(10,0) `::numeric`, a null for '-infinity', a double where PostgreSQL divides
    integers, a string for a date) fails here (tests/test_engine_compare.py proves it on such
    differences). Rows are paired by their exact columns (every column without a fractional
    value on PostgreSQL), sorted."""
    assert expected, f"{table}: no rows on PostgreSQL"
    assert actual, f"{table}: no rows on Spark"
    columns = list(expected[0])
    assert sorted(actual[0]) == sorted(columns), f"{table}: columns differ"
    assert len(actual) == len(expected), f"{table}: {len(actual)} rows, expected {len(expected)}"
    measures = {c for c in columns if any(isinstance(r[c], Decimal | float) for r in expected)}
    key_columns = [c for c in columns if c not in measures]
    expected = sorted(expected, key=lambda row: row_key(row, key_columns))
    actual = sorted(actual, key=lambda row: row_key(row, key_columns))
    for column in columns:
        for want_row, got_row in zip(expected, actual, strict=True):
            where = f"{table}.{column} at {row_key(want_row, key_columns)}"
            if _integer(want_row[column]):  # Spark's int / int is a double
                assert _integer(got_row[column]) or got_row[column] is None, (
                    f"{where}: {got_row[column]!r} on Spark, integer {want_row[column]!r} on"
                    " PostgreSQL"
                )
            want, got = plain(want_row[column]), plain(got_row[column])
            if isinstance(want, float) and isinstance(got, float):
                assert math.isclose(got, want, rel_tol=1e-9, abs_tol=ZERO), (
                    f"{where}: {got!r} on Spark, {want!r} on PostgreSQL"
                )
            else:
                assert type(got) is type(want) or want is None or got is None, (
                    f"{where}: {type(got).__name__} on Spark, {type(want).__name__} on PostgreSQL"
                )
                assert got == want, f"{where}: {got!r} on Spark, {want!r} on PostgreSQL"

"""Building the dbt project on local Spark from a test database's raw tables (no tests here).

The raw tables go to Parquet (orchestration/core/spark_files.py); then one process runs a full
`dbt build` of the seeds and models and an incremental `dbt run` on the next raw state
(tests/support/spark_runner.py): one JVM start for everything a module checks. The marts are
read back from the warehouse's Parquet files with pyarrow, never through a second Spark session
(the Derby metastore admits one JVM).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from orchestration.core.spark_files import export_raw_parquet, mart_folder, read_mart
from tests.support.marts import DBT_PROJECT, PROJECT_ROOT


def export_raw(url: str, folder: Path) -> dict[str, int]:
    """`url`'s raw tables as Parquet folders under `folder`; the rows per table."""
    with psycopg.connect(url) as conn:
        return export_raw_parquet(conn, folder)


def build_then_pass_on_spark(
    home: Path,
    raw_first: Path,
    raw_next: Path,
    select: str,
    daily_marts: tuple[str, ...],
    suites_now: datetime | None = None,
) -> dict:
    """Build `select` on Spark from `raw_first`, then run an incremental pass on `raw_next`;
    returns the daily marts' day partitions (newest file mtime) before and after the pass, and
    with `suites_now`, every expectation suite's outcome on Spark as of that time
    (spark_runner.run_suites)."""
    raw = home / "raw"
    raw.mkdir(parents=True)
    for table in raw_first.iterdir():
        (raw / table.name).symlink_to(table, target_is_directory=True)
    env = {
        **os.environ,
        "COSTWATCH_ENGINE": "spark",
        "COSTWATCH_HOME": str(home),
        "COSTWATCH_SPARK_RAW": str(raw),
        "DBT_TARGET_PATH": str(home / "target"),
        "DBT_LOG_PATH": str(home / "target"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    spec = {
        "project": str(DBT_PROJECT),
        "select": select,
        "raw": str(raw),
        "raw_next": str(raw_next),
        "warehouse": str(mart_folder("x", environ=env).parent),
        "daily_marts": list(daily_marts),
        "report": str(home / "partitions.json"),
        "now": suites_now.isoformat() if suites_now else None,
    }
    (home / "spec.json").write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.spark_runner", str(home / "spec.json")],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    if result.returncode != 0:
        lines = [line for line in result.stdout.splitlines() if "ERROR" in line or "rror" in line]
        raise AssertionError("dbt on Spark failed:\n" + "\n".join(lines[-40:]))
    return json.loads((home / "partitions.json").read_text())


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

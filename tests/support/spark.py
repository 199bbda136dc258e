"""Building the dbt project on local Spark from a test database's raw tables (no tests here).

The raw tables go to Parquet (orchestration/core/spark_files.py); then one process runs a full
`dbt build` of the seeds and models and an incremental `dbt run` on the next raw state
(tests/support/spark_runner.py): one JVM start for everything a module checks. The marts are
read back from the warehouse's Parquet files with pyarrow, never through a second Spark session
(the Derby metastore admits one JVM).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from orchestration.core.spark_files import export_raw_parquet, mart_folder, read_mart
from tests.support.marts import DBT_PROJECT, PROJECT_ROOT


def export_raw(url: str, folder: Path) -> dict[str, int]:
    """`url`'s raw tables as Parquet folders under `folder`; the rows per table."""
    with psycopg.connect(url) as conn:
        return export_raw_parquet(conn, folder)


def build_then_pass_on_spark(
    home: Path, raw_first: Path, raw_next: Path, select: str, daily_marts: tuple[str, ...]
) -> dict:
    """Build `select` on Spark from `raw_first`, then run an incremental pass on `raw_next`;
    returns the daily marts' day partitions (newest file mtime) before and after the pass."""
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

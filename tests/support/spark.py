"""Building the dbt project on local Spark from a test database's raw tables (no tests here).

The raw tables go to Parquet (orchestration/core/engine.py), then one `dbt build` of the seeds
and models runs in an in-process Spark session: one JVM start for everything a module checks.
The marts are read back from the warehouse's Parquet files with pyarrow, never through a second
Spark session (the Derby metastore admits one JVM).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg

from orchestration.core.engine import export_raw_parquet, read_mart
from tests.support.marts import DBT, DBT_PROJECT, PROJECT_ROOT


def build_on_spark(url: str, home: Path, select: str) -> dict[str, int]:
    """Export `url`'s raw tables under `home/raw` and build `select` (seeds and models) on
    Spark with its warehouse under `home/spark`; returns the raw rows exported per table."""
    raw = home / "raw"
    with psycopg.connect(url) as conn:
        counts = export_raw_parquet(conn, raw)
    target = home / "target"
    env = {
        **os.environ,
        "COSTWATCH_ENGINE": "spark",
        "COSTWATCH_HOME": str(home),
        "COSTWATCH_SPARK_RAW": str(raw),
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = [
        DBT,
        "build",
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--select",
        select,
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        lines = [line for line in result.stdout.splitlines() if "ERROR" in line or "rror" in line]
        raise AssertionError("dbt build on Spark failed:\n" + "\n".join(lines[-40:]))
    return counts


def spark_rows(home: Path, table: str) -> list[dict]:
    """Every row of a Spark mart as dicts (column name to value)."""
    return read_mart(table, environ={"COSTWATCH_HOME": str(home)}).to_pylist()

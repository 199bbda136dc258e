"""The same dbt project on Spark gives the same marts as on PostgreSQL (CONTRACT section 10).

One small data set (every scenario of `costwatch seed`, as tests/test_marts.py seeds it) is built
on PostgreSQL and, through Parquet, on local Spark (one `dbt build`, one JVM start). Every
runbook mart is then compared column by column: the only check that catches the casts that
change results silently (Spark's `::float` is 32-bit, its `::numeric` is decimal(10,0), its
nulls sort first: ../shared/SPARK.md). The Spark marts are also checked against the runbook's
own queries on the raw tables. `-m spark` selects this module; `-m "not spark"` leaves it out.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from orchestration.runbook.seed import SCENARIOS, seed
from tests.support.marts import RUNBOOK_MARTS, assert_close_rows, run_dbt
from tests.support.runbook import (
    STEP_2,
    STEP_4,
    STEP_5,
    as_day,
    recompute_expected,
    regrained,
    runbook,
    without_window,
)
from tests.support.spark import build_on_spark, spark_rows

pytestmark = pytest.mark.spark

END = datetime(2026, 3, 2, tzinfo=UTC)
# Every table the runbook folder builds (its two views are not Parquet: staging verdicts).
MARTS = (*RUNBOOK_MARTS, "data_quality_daily", "feature_cost_baseline_hourly")
SELECTION = "+marts.runbook"


class Built:
    def __init__(self, url: str, home: Path, seconds: float, raw: dict[str, int]) -> None:
        self.url, self.home, self.seconds, self.raw = url, home, seconds, raw


@pytest.fixture(scope="module")
def built(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    with psycopg.connect(module_db_url) as conn:
        for index, scenario in enumerate(SCENARIOS):
            seed(
                conn,
                scenario,
                days=2,
                events_per_hour=40,
                seed=index,
                end=END + timedelta(days=index),
            )
    run_dbt(module_db_url, "run")
    home = tmp_path_factory.mktemp("spark")
    started = time.monotonic()
    raw = build_on_spark(module_db_url, home, SELECTION)
    return Built(module_db_url, home, time.monotonic() - started, raw)


def _postgres_rows(url: str, table: str) -> list[dict]:
    with psycopg.connect(url) as conn:
        conn.execute("set timezone = 'UTC'")
        cur = conn.execute(f"select * from marts.{table}")
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _plain(value: object) -> object:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


def _key(row: dict, columns: list[str]) -> tuple:
    return tuple((row[c] is None, str(_plain(row[c]))) for c in columns)


def test_the_spark_build_read_every_raw_row(built: Built) -> None:
    with psycopg.connect(built.url) as conn:
        expected = {
            table: conn.execute(f"select count(*) from raw.{table}").fetchone()[0]
            for table in built.raw
        }
    assert built.raw == expected
    assert expected["inference_events"] > 10 * 2 * 24 * 40 * 0.5
    print(f"spark build of {SELECTION}: {built.seconds:.0f} s (JVM start included)")


@pytest.mark.parametrize("table", MARTS)
def test_spark_mart_equals_the_postgres_mart_column_by_column(built: Built, table: str) -> None:
    expected = _postgres_rows(built.url, table)
    actual = spark_rows(built.home, table)
    assert expected, f"{table}: no rows on PostgreSQL"
    columns = list(expected[0])
    assert sorted(actual[0]) == sorted(columns), f"{table}: columns differ"
    assert len(actual) == len(expected), f"{table}: {len(actual)} rows, expected {len(expected)}"
    # A row's identity: its columns that are not fractional measures (exact on both engines).
    key_columns = [c for c in columns if not isinstance(expected[0][c], Decimal | float)]
    expected.sort(key=lambda row: _key(row, key_columns))
    actual.sort(key=lambda row: _key(row, key_columns))
    for column in columns:
        for want_row, got_row in zip(expected, actual, strict=True):
            want, got = _plain(want_row[column]), _plain(got_row[column])
            where = f"{table}.{column} at {_key(want_row, key_columns)}"
            if isinstance(want, float) and isinstance(got, float):
                assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (
                    f"{where}: {got!r} on Spark, {want!r} on PostgreSQL"
                )
            else:
                assert type(got) is type(want) or want is None or got is None, (
                    f"{where}: {type(got).__name__} on Spark, {type(want).__name__} on PostgreSQL"
                )
                assert got == want, f"{where}: {got!r} on Spark, {want!r} on PostgreSQL"


def _spark(built: Built, table: str, *columns: str) -> list[tuple]:
    rows = [tuple(row[c] for c in columns) for row in spark_rows(built.home, table)]
    return sorted(rows, key=lambda row: tuple(str(v) for v in row[:2]))


@pytest.mark.parametrize("grain", ["hour", "day"])
def test_spark_cost_and_token_marts_equal_the_runbooks_queries(built: Built, grain: str) -> None:
    key = (lambda v: v.astimezone(UTC)) if grain == "hour" else as_day
    step_2, step_4 = STEP_2, STEP_4
    if grain == "day":
        step_2, step_4 = regrained(step_2, "day"), regrained(step_4, "day")
    suffix = "hourly" if grain == "hour" else "daily"
    expected = [(key(b), *rest) for b, *rest in runbook(built.url, without_window(step_2))]
    actual = _spark(
        built,
        f"cost_{suffix}",
        grain,
        "requests",
        "unique_users",
        "total_cost_usd",
        "avg_cost_per_request_usd",
    )
    assert_close_rows(actual, expected, f"cost_{suffix} on Spark, step 2")
    expected = [(key(b), *rest) for b, *rest in runbook(built.url, without_window(step_4))]
    actual = _spark(
        built,
        f"tokens_{suffix}",
        grain,
        "avg_input_tokens",
        "avg_output_tokens",
        "p95_input_tokens",
        "p95_output_tokens",
    )
    assert_close_rows(actual, expected, f"tokens_{suffix} on Spark, step 4")


@pytest.mark.parametrize("grain", ["hour", "day"])
def test_spark_recompute_marts_equal_step_3(built: Built, grain: str) -> None:
    suffix = "hourly" if grain == "hour" else "daily"
    expected = [
        (b.astimezone(UTC) if isinstance(b, datetime) else b, *rest)
        for b, *rest in recompute_expected(built.url, grain)
    ]
    actual = _spark(
        built, f"recompute_{suffix}", grain, "total", "hidden", "hidden_ratio", "hidden_cost_usd"
    )
    assert_close_rows(actual, expected, f"recompute_{suffix} on Spark")
    assert any(row[2] > 0 for row in actual)


def test_spark_feature_cost_daily_equals_step_5(built: Built) -> None:
    expected = sorted((as_day(b), *rest) for b, *rest in runbook(built.url, without_window(STEP_5)))
    actual = _spark(
        built,
        "feature_cost_daily",
        "day",
        "feature",
        "requests",
        "total_cost_usd",
        "cost_per_request_usd",
    )
    assert_close_rows(actual, expected, "feature_cost_daily on Spark")
    assert all(isinstance(row[0], date) for row in actual)

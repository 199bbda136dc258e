"""`costwatch sql`: a read-only query on the marts, as table, CSV or JSON (CONTRACT section 1).

The marts here are one small table the test writes (the query path is the same for every mart);
the pipeline's own marts are queried this way in tests/test_marts.py's reference comparison.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from orchestration.cli.sql import table, write
from tests.conftest import costwatch_env, query, run_costwatch

ROWS = [
    (datetime(2026, 11, 20, 3, tzinfo=UTC), 120, Decimal("12.345678901234"), 'chat, "v2"'),
    (datetime(2026, 11, 20, 4, tzinfo=UTC), 7, None, "summarize"),
]


@pytest.fixture
def marts(db_url: str, tmp_path: Path) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        conn.execute("create schema if not exists marts")
        conn.execute(
            "create table marts.cost_hourly_sample"
            " (hour timestamptz, requests bigint, total_cost_usd numeric, feature text)"
        )
        for row in ROWS:
            conn.execute("insert into marts.cost_hourly_sample values (%s, %s, %s, %s)", row)
    return costwatch_env(db_url, tmp_path)


def test_a_query_on_the_marts_in_each_format(marts: dict[str, str]) -> None:
    sql = "select * from cost_hourly_sample order by hour"  # marts is on the search path
    as_table = run_costwatch("sql", sql, env=marts, check=True).stdout
    lines = as_table.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == [
        "hour", "requests", "total_cost_usd", "feature",
    ]  # fmt: skip
    assert "12.345678901234" in lines[2] and lines[-1] == "(2 rows)"

    as_csv = run_costwatch("sql", sql, "--format", "csv", env=marts, check=True).stdout
    assert list(csv.reader(io.StringIO(as_csv))) == [
        ["hour", "requests", "total_cost_usd", "feature"],
        ["2026-11-20T03:00:00+00:00", "120", "12.345678901234", 'chat, "v2"'],
        ["2026-11-20T04:00:00+00:00", "7", "", "summarize"],
    ]

    as_json = run_costwatch("sql", sql, "--format", "json", env=marts, check=True).stdout
    assert json.loads(as_json) == [
        {"hour": "2026-11-20T03:00:00+00:00", "requests": 120,
         "total_cost_usd": 12.345678901234, "feature": 'chat, "v2"'},
        {"hour": "2026-11-20T04:00:00+00:00", "requests": 7,
         "total_cost_usd": None, "feature": "summarize"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "sql, says",
    [
        ("delete from cost_hourly_sample", "read-only transaction"),
        ("commit; delete from cost_hourly_sample", "multiple commands"),
        ("drop table marts.cost_hourly_sample", "read-only transaction"),
        ("select * from no_such_mart", 'relation "no_such_mart" does not exist'),
        ("selec 1", "syntax error"),
        ("", "no query given"),
    ],
)
def test_anything_but_one_query_fails_in_one_line_and_changes_nothing(
    marts: dict[str, str], db_url: str, sql: str, says: str
) -> None:
    result = run_costwatch("sql", sql, env=marts)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("costwatch: error: ") and says in line, line
    assert "Traceback" not in result.stderr
    assert query(db_url, "select count(*) from marts.cost_hourly_sample") == [(2,)]


def test_a_slow_query_is_cancelled_at_its_timeout(marts: dict[str, str]) -> None:
    result = run_costwatch("sql", "select pg_sleep(5)", "--timeout", "1", env=marts)
    assert result.returncode == 1
    assert result.stderr.strip() == "costwatch: error: the query ran longer than 1s"


def test_spark_without_marts_says_so_and_starts_no_database(db_url: str, tmp_path: Path) -> None:
    """On Spark the marts are the warehouse's files (tests/test_engine_spark.py queries them)."""
    home = tmp_path / "home"
    env = costwatch_env(db_url, tmp_path, COSTWATCH_ENGINE="spark", COSTWATCH_HOME=str(home))
    result = run_costwatch("sql", "select 1", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"costwatch: error: no marts on Spark yet (nothing under {home}/spark/warehouse/marts.db):"
        " `costwatch run` builds them"
    )
    # a pass without its raw folder, a report before any pass: one line each, nothing started
    refused = run_costwatch("run", env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith(
        "costwatch: error: COSTWATCH_ENGINE=spark needs COSTWATCH_SPARK_RAW"
    )
    refused = run_costwatch("triage", env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("costwatch: error: no marts yet: run `costwatch run`")
    assert not home.exists()
    env = costwatch_env(db_url, tmp_path, COSTWATCH_ENGINE="duckdb")
    result = run_costwatch("sql", "select 1", env=env)
    assert "COSTWATCH_ENGINE must be one of postgres, spark, got 'duckdb'" in result.stderr


def test_the_table_aligns_numbers_right_and_escapes_control_characters() -> None:
    text = table(["feature", "cost"], [("a\x1b[2Jb", Decimal("1.5")), ("long name", 12)])
    assert text.splitlines() == [
        "feature   | cost",
        "----------+-----",
        "a\\x1b[2Jb |  1.5",
        "long name |   12",
        "(2 rows)",
    ]


def test_json_keeps_integers_and_nulls() -> None:
    out = io.StringIO()
    write(["n", "x"], [(Decimal("3"), None), (Decimal("0.25"), True)], "json", out)
    assert json.loads(out.getvalue()) == [{"n": 3, "x": None}, {"n": 0.25, "x": True}]

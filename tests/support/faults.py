"""Helpers for the fault-injection and soak tests (no tests in here).

`runbook_mismatches` compares every runbook mart with the runbook's own query on the raw tables
(the queries of test_marts.py, whole history), so a test can say "the marts are complete" after
a fault. `secrets_in` looks for secret values in text, files and the `ops` tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import psycopg

from tests.support.marts import RUNBOOK_MARTS, assert_close_rows, fetch
from tests.support.runbook import (
    STEP_2,
    STEP_3_TRIGGERS,
    STEP_4,
    STEP_5,
    STEP_6,
    as_day,
    matched_window,
    recompute_expected,
    regrained,
    runbook,
    without_window,
)

# What a pass in progress holds (orchestration/core/locks.py), in a transaction left open.
PASS_LOCK_SQL = "select 1 from ops.locks where name = 'costwatch.pass' for update"


def _tool_failures(url: str, grain: str) -> list[tuple]:
    step = timedelta(hours=1) if grain == "hour" else timedelta(days=1)
    buckets = fetch(
        url, f"select distinct date_trunc('{grain}', created_at) from raw.tool_calls order by 1"
    )
    expected = []
    with psycopg.connect(url) as conn:
        conn.execute("set timezone = 'UTC'")
        conn.execute("set search_path = raw")
        for (start,) in buckets:
            label = start if grain == "hour" else as_day(start)
            rows = conn.execute(
                matched_window(STEP_6), {"start": start, "end": start + step}
            ).fetchall()
            expected += [(label, *row) for row in rows]
    return sorted(expected, key=lambda row: (row[0], row[1]))


def runbook_expected(url: str, table: str) -> tuple[list[tuple], str]:
    """The runbook's rows for `table` on every raw row, and the mart query to compare them with."""
    grain = "hour" if table.endswith("_hourly") else "day"
    key = (lambda v: v) if grain == "hour" else as_day
    if table.startswith("cost_"):
        sql = STEP_2 if grain == "hour" else regrained(STEP_2, "day")
        rows = [(key(b), *rest) for b, *rest in runbook(url, without_window(sql))]
        mart = f"select {grain}, requests, unique_users, total_cost_usd, avg_cost_per_request_usd"
        return rows, f"{mart} from marts.{table} order by 1"
    if table == "trigger_hourly":
        rows = runbook(url, without_window(STEP_3_TRIGGERS))
        return rows, "select hour, trigger_type, requests, cost_usd from marts.trigger_hourly"
    if table.startswith("recompute_"):
        mart = f"select {grain}, total, hidden, hidden_ratio, hidden_cost_usd from marts.{table}"
        return recompute_expected(url, grain), mart + " order by 1"
    if table.startswith("tokens_"):
        sql = STEP_4 if grain == "hour" else regrained(STEP_4, "day")
        rows = [(key(b), *rest) for b, *rest in runbook(url, without_window(sql))]
        mart = (
            f"select {grain}, avg_input_tokens, avg_output_tokens, p95_input_tokens,"
            f" p95_output_tokens from marts.{table} order by 1"
        )
        return rows, mart
    if table.startswith("feature_cost_"):
        sql = STEP_5 if grain == "day" else regrained(STEP_5, "hour")
        rows = sorted((key(b), *rest) for b, *rest in runbook(url, without_window(sql)))
        mart = (
            f"select {grain}, feature, requests, total_cost_usd, cost_per_request_usd"
            f" from marts.{table} order by 1, 2"
        )
        return rows, mart
    if table.startswith("tool_failures_"):
        mart = (
            f"select {grain}, tool_name, total_calls, failures, failure_rate, avg_retries"
            f" from marts.{table} order by 1, 2"
        )
        return _tool_failures(url, grain), mart
    raise ValueError(table)


def runbook_mismatches(url: str, tables: Iterable[str] = RUNBOOK_MARTS) -> dict[str, str]:
    """Marts that differ from the runbook's query on all raw data, with the first difference."""
    out = {}
    for table in tables:
        expected, mart_sql = runbook_expected(url, table)
        actual = fetch(url, mart_sql)
        if table == "trigger_hourly":
            actual.sort(key=lambda row: (row[0], row[1]))
            expected = sorted(expected, key=lambda row: (row[0], row[1]))
        try:
            assert_close_rows(actual, expected, table)
        except AssertionError as err:
            out[table] = str(err)[:300]
    return out


def leftover_relations(url: str) -> list[str]:
    """dbt's intermediate relations (`__dbt_tmp`, `__dbt_backup`) left in any schema."""
    rows = fetch(
        url,
        "select n.nspname || '.' || c.relname from pg_class as c"
        " join pg_namespace as n on n.oid = c.relnamespace"
        " where c.relname like '%%__dbt_tmp%%' or c.relname like '%%__dbt_backup%%'",
    )
    return sorted(r[0] for r in rows)


def ops_text(url: str) -> str:
    """Every row of every `ops` table, as text."""
    tables = fetch(
        url,
        "select table_name from information_schema.tables where table_schema = 'ops'",
    )
    parts = []
    for (table,) in tables:
        parts += [r[0] for r in fetch(url, f'select to_jsonb(t)::text from ops."{table}" as t')]
    return "\n".join(parts)


def files_text(root: Path, since: float = 0.0) -> str:
    """The text of every file under `root` modified since `since` (epoch seconds)."""
    parts = []
    if not root.exists():
        return ""
    for path in root.rglob("*"):
        try:
            if path.is_file() and path.stat().st_mtime >= since:
                parts.append(path.read_bytes().decode("utf-8", "replace"))
        except OSError:
            continue
    return "\n".join(parts)


def secrets_in(text: str, secrets: Iterable[str]) -> list[str]:
    return [secret for secret in secrets if secret and secret in text]

# ruff: noqa: E501
"""Dirty data never stops the pipeline, and nothing is lost silently (CONTRACT section 4).

One database holds a few clean events plus one row of every kind of dirt; one `dbt build` (models
and their dbt tests) must pass, every dirty row must be rejected with its reason or counted as a
duplicate, and the marts must hold exactly the clean rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from tests.support.marts import fetch, run_dbt

T = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
FUTURE = datetime.now(UTC) + timedelta(days=30)

# event_id, created_at, user_id, feature, trigger_type, input, output, cost
CLEAN_EVENTS = [
    ("b1", T + timedelta(minutes=1), "u1", "chat", "user", 100, 10, Decimal("0.10")),
    ("b2", T + timedelta(minutes=2), "u2", "chat", "user", 200, 20, Decimal("0.20")),
    ("b3", T + timedelta(minutes=3), "u3", "search", "retry", 300, 30, Decimal("0.30")),
    ("b4", T + timedelta(minutes=4), "u1", " search ", " UNDO ", 400, 40, Decimal("0.40")),
    ("b5", T + timedelta(minutes=5), "u2", "chat", "Auto_Save", 500, 50, Decimal("0.50")),
    ("b6", T + timedelta(minutes=6), "u3", "chat", "Weird", 600, 60, Decimal("0.60")),
]
# (kind, expected reject_reason or "duplicate", row)
DIRTY_EVENTS = [
    ("exact duplicate", "duplicate", CLEAN_EVENTS[0]),
    ("later duplicate", "duplicate", ("b2", T + timedelta(hours=1), "u9", "chat", "user", 9, 9, Decimal("9"))),
    ("invalid copy of a valid id", "unpriced_model", ("b3", T, "u3", "search", "retry", 1, 1, None)),
    ("null id", "missing_event_id", (None, T, "u1", "chat", "user", 1, 1, Decimal("1"))),
    ("empty id", "missing_event_id", ("  ", T, "u1", "chat", "user", 1, 1, Decimal("2"))),
    ("null created_at", "missing_created_at", ("d1", None, "u1", "chat", "user", 1, 1, Decimal("1"))),
    ("far-future created_at", "future_created_at", ("d2", FUTURE, "u1", "chat", "user", 1, 1, Decimal("1"))),
    ("null feature", "missing_feature", ("d3", T, "u1", None, "user", 1, 1, Decimal("1"))),
    ("null trigger_type", "missing_trigger_type", ("d4", T, "u1", "chat", None, 1, 1, Decimal("1"))),
    ("null input tokens", "missing_input_tokens", ("d5", T, "u1", "chat", "user", None, 1, Decimal("1"))),
    ("negative input tokens", "negative_input_tokens", ("d6", T, "u1", "chat", "user", -5, 1, Decimal("1"))),
    ("null output tokens", "missing_output_tokens", ("d7", T, "u1", "chat", "user", 1, None, Decimal("1"))),
    ("negative output tokens", "negative_output_tokens", ("d8", T, "u1", "chat", "user", 1, -1, Decimal("1"))),
    ("null cost, model without a price", "unpriced_model", ("d9", T, "u1", "chat", "user", 1, 1, None)),
    ("negative cost", "negative_cost_usd", ("d10", T, "u1", "chat", "user", 1, 1, Decimal("-0.01"))),
]  # fmt: skip

# call_id, created_at, event_id, tool_name, success, retries
CLEAN_CALLS = [
    ("c1", T + timedelta(minutes=1), "b1", "search", True, 0),
    ("c2", T + timedelta(minutes=2), "b2", " search ", False, 2),
    ("c3", T + timedelta(minutes=3), "b3", "browser", False, 1),
]
DIRTY_CALLS = [
    ("duplicate call", "duplicate", CLEAN_CALLS[1]),
    ("null call id", "missing_call_id", (None, T, "b1", "search", True, 0)),
    ("null created_at", "missing_created_at", ("x1", None, "b1", "search", True, 0)),
    ("far-future created_at", "future_created_at", ("x2", FUTURE, "b1", "search", True, 0)),
    ("null tool name", "missing_tool_name", ("x3", T, "b1", None, True, 0)),
    ("null success", "missing_success", ("x4", T, "b1", "search", None, 0)),
    ("null retries", "missing_retries", ("x5", T, "b1", "search", False, None)),
    ("negative retries", "negative_retries", ("x6", T, "b1", "search", False, -1)),
]  # fmt: skip


def insert_events(conn: psycopg.Connection, rows) -> None:
    conn.cursor().executemany(
        "insert into raw.inference_events (event_id, created_at, user_id, session_id, feature,"
        " trigger_type, model, input_tokens, output_tokens, cost_usd, user_agent)"
        " values (%s, %s, %s, 's', %s, %s, 'm', %s, %s, %s, 'ua')",
        rows,
    )


def insert_calls(conn: psycopg.Connection, rows) -> None:
    conn.cursor().executemany(
        "insert into raw.tool_calls (call_id, created_at, event_id, feature, tool_name, success,"
        " retries, latency_ms) values (%s, %s, %s, 'chat', %s, %s, %s, 10)",
        rows,
    )


@pytest.fixture(scope="module")
def dirty(module_db_url: str) -> str:
    with psycopg.connect(module_db_url) as conn:
        insert_events(conn, CLEAN_EVENTS + [row for _, _, row in DIRTY_EVENTS])
        insert_calls(conn, CLEAN_CALLS + [row for _, _, row in DIRTY_CALLS])
    # check=True: the build, with every dbt test, passes on dirty data.
    run_dbt(module_db_url, "build")
    return module_db_url


@pytest.mark.parametrize(
    ("kind", "reason", "row"),
    [d for d in DIRTY_EVENTS if d[1] != "duplicate"],
    ids=[d[0] for d in DIRTY_EVENTS if d[1] != "duplicate"],
)
def test_each_kind_of_dirty_event_is_rejected_with_its_reason(dirty, kind, reason, row) -> None:
    event_id = (row[0] or "").strip() or None
    found = fetch(
        dirty,
        "select reject_reason from marts.rejected_inference_events"
        " where event_id is not distinct from %s and created_at is not distinct from %s"
        " and cost_usd is not distinct from %s",
        (event_id, row[1], row[7]),
    )
    assert found == [(reason,)], kind


@pytest.mark.parametrize(
    ("kind", "reason", "row"),
    [d for d in DIRTY_CALLS if d[1] != "duplicate"],
    ids=[d[0] for d in DIRTY_CALLS if d[1] != "duplicate"],
)
def test_each_kind_of_dirty_tool_call_is_rejected_with_its_reason(dirty, kind, reason, row) -> None:
    found = fetch(
        dirty,
        "select reject_reason from marts.rejected_tool_calls"
        " where call_id is not distinct from %s and created_at is not distinct from %s"
        " and retries is not distinct from %s",
        row[:2] + (row[5],),
    )
    assert found == [(reason,)], kind


def test_clean_tables_hold_one_row_per_id_and_the_earliest_copy(dirty: str) -> None:
    events = fetch(
        dirty, "select event_id, created_at, cost_usd from staging.stg_raw__inference_events"
    )
    assert sorted(e[0] for e in events) == sorted(e[0] for e in CLEAN_EVENTS)
    assert {e[0]: (e[1], e[2]) for e in events} == {e[0]: (e[1], e[7]) for e in CLEAN_EVENTS}
    calls = fetch(dirty, "select call_id, tool_name from staging.stg_raw__tool_calls")
    assert sorted(calls) == [("c1", "search"), ("c2", "search"), ("c3", "browser")]


def test_trigger_types_are_trimmed_lower_cased_and_unknown_ones_are_not_hidden(dirty: str) -> None:
    triggers = fetch(
        dirty, "select trigger_type, is_hidden, requests from marts.trigger_hourly order by 1"
    )
    assert triggers == [
        ("auto_save", True, 1),
        ("retry", True, 1),
        ("undo", True, 1),
        ("user", False, 2),
        ("weird", False, 1),
    ]
    recompute = fetch(dirty, "select total, hidden, hidden_ratio from marts.recompute_hourly")
    assert recompute == [(6, 3, 0.5)]
    features = fetch(dirty, "select feature, requests from marts.feature_cost_hourly order by 1")
    assert features == [("chat", 4), ("search", 2)]


def test_marts_hold_exactly_the_clean_rows(dirty: str) -> None:
    cost = fetch(
        dirty, "select hour, requests, unique_users, total_cost_usd from marts.cost_hourly"
    )
    assert cost == [(T, 6, 3, Decimal("2.10"))]
    tools = fetch(
        dirty,
        "select tool_name, total_calls, failures, failure_rate, total_retries"
        " from marts.tool_failures_hourly order by 1",
    )
    assert tools == [("browser", 1, 1, 1.0, 1), ("search", 2, 1, 0.5, 2)]


def test_data_quality_reconciles_every_row_including_those_without_a_day(dirty: str) -> None:
    rows = fetch(
        dirty,
        "select day, source, raw_rows, clean_rows, rejected_rows, duplicate_rows"
        " from marts.data_quality_daily order by source, day nulls first",
    )
    day = T.date()
    future = FUTURE.date()
    assert rows == [
        (None, "inference_events", 1, 0, 1, 0),
        (day, "inference_events", 19, 6, 11, 2),
        (future, "inference_events", 1, 0, 1, 0),
        (None, "tool_calls", 1, 0, 1, 0),
        (day, "tool_calls", 9, 3, 5, 1),
        (future, "tool_calls", 1, 0, 1, 0),
    ]
    for _, _, raw, clean, rejected, duplicates in rows:
        assert raw == clean + rejected + duplicates

"""Staging checks again only the hours whose raw rows changed (from the oldest such hour in the
lookback), and still sees every kind of change: a new hour, a deleted row, a row rejected for a
future stamp that is due now. A pass with no new rows rewrites nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from orchestration.runbook.seed import seed
from tests.test_marts_support import fetch, rows_affected, run_dbt

CHECKED = "staging.stg_raw__inference_events_checked"
SELECT = "stg_raw__inference_events_checked"


def build(url: str, **variables: object) -> int:
    """One incremental build of the staging model; the rows it wrote."""
    args = ["run"] + (["--vars", json.dumps(variables)] if variables else [])
    return rows_affected(run_dbt(url, *args, select=SELECT))[SELECT]


def same_counts_per_hour(url: str) -> bool:
    return fetch(
        url,
        f"select count(*) from ("
        f" select load_hour, count(*) from {CHECKED} where load_hour > '-infinity' group by 1"
        " except"
        " select date_trunc('hour', created_at at time zone 'UTC') at time zone 'UTC', count(*)"
        " from raw.inference_events where created_at is not null group by 1) as differing",
    )[0][0] == 0  # fmt: skip


@pytest.fixture(scope="module")
def url(module_db_url: str) -> str:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(module_db_url) as conn:
        seed(conn, "quiet", days=2, events_per_hour=20, seed=5, end=end)
    run_dbt(module_db_url, "run", select=SELECT)
    return module_db_url


def test_nothing_new_rewrites_nothing(url: str) -> None:
    undated = fetch(url, "select count(*) from raw.inference_events where created_at is null")
    assert build(url) == undated[0][0]
    assert same_counts_per_hour(url)


def test_a_deleted_raw_row_is_gone_after_the_next_pass(url: str) -> None:
    newest = fetch(url, f"select max(load_hour) from {CHECKED}")[0][0]
    hour = newest - timedelta(hours=2)
    [(event_id, rows_in_hour)] = fetch(
        url,
        "select min(event_id), count(*) from raw.inference_events"
        " where created_at >= %s and created_at < %s",
        (hour, hour + timedelta(hours=1)),
    )
    with psycopg.connect(url) as conn:
        conn.execute("delete from raw.inference_events where event_id = %s", (event_id,))
    written = build(url)
    # From the changed hour on: that hour (one row fewer) and the two after it (and any rows
    # without a created_at, which every pass checks again).
    after = fetch(
        url,
        "select count(*) from raw.inference_events where created_at >= %s or created_at is null",
        (hour,),
    )
    assert written == after[0][0] and written >= rows_in_hour - 1
    assert fetch(url, f"select count(*) from {CHECKED} where event_id = %s", (event_id,)) == [(0,)]
    assert same_counts_per_hour(url)


def test_a_future_stamped_row_is_judged_again_when_due(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "insert into raw.inference_events (event_id, created_at, user_id, session_id,"
            " feature, trigger_type, model, input_tokens, output_tokens, cost_usd)"
            " values ('early-bird', now() + interval '2 hours', 'u', 's', 'chat', 'user',"
            " 'gpt-4o', 10, 10, 0.01)"
        )
    build(url)
    reason = f"select reject_reason from {CHECKED} where event_id = 'early-bird'"
    assert fetch(url, reason) == [("future_created_at",)]
    # Nothing else changes; with a wider tolerance the row is due: its hour is checked again.
    build(url, future_tolerance_minutes=300)
    assert fetch(url, reason) == [(None,)]

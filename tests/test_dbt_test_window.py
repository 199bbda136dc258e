"""dbt tests over event-level tables check the newest `test_window_hours` of events (everything
on --full-refresh), and still fail on what they guard: a mart hour that disagrees with its events,
and an event kept twice, even when the other copy is older than the window."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from orchestration.runbook.seed import seed
from tests.test_marts_support import run_dbt

END = datetime(2026, 11, 20, 12, tzinfo=UTC)
CHECKED = "staging.stg_raw__inference_events_checked"
MARTS_AGREE = "assert_marts_agree_with_clean_events"
UNIQUE = "unique_in_window_stg_raw__inference_events_event_id__created_at"
TESTS = f"{MARTS_AGREE} {UNIQUE}"


@pytest.fixture(scope="module")
def built(module_db_url: str) -> str:
    with psycopg.connect(module_db_url) as conn:
        seed(conn, "quiet", days=4, events_per_hour=20, seed=11, end=END)
    run_dbt(module_db_url, "build", select="+cost_hourly")
    return module_db_url


def verdicts(url: str, full_refresh: bool = False) -> dict[str, str]:
    args = ["build", "--full-refresh"] if full_refresh else ["build"]
    results = run_dbt(url, *args, select=TESTS, check=False)["results"]
    # (not the on-run-start hook, an `operation.*` result of every invocation)
    return {
        r["unique_id"].split(".")[2]: r["status"]
        for r in results
        if not r["unique_id"].startswith("operation.")
    }


def execute(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def test_clean_data_passes_in_the_window_and_in_full(built: str) -> None:
    assert verdicts(built) == {MARTS_AGREE: "pass", UNIQUE: "pass"}
    assert verdicts(built, full_refresh=True) == {MARTS_AGREE: "pass", UNIQUE: "pass"}


@pytest.mark.parametrize("which", ["newest", "oldest"])
def test_a_mart_hour_that_disagrees_with_its_events_fails(built: str, which: str) -> None:
    order = "desc" if which == "newest" else "asc"
    [(hour,)] = execute(built, f"select hour from marts.cost_hourly order by hour {order} limit 1")
    execute(built, "update marts.cost_hourly set requests = requests + 1 where hour = %s", (hour,))
    try:
        windowed, full = verdicts(built), verdicts(built, full_refresh=True)
    finally:
        execute(
            built, "update marts.cost_hourly set requests = requests - 1 where hour = %s", (hour,)
        )
    # The newest hour is in the window; the oldest (four days back) only in the full check.
    assert windowed[MARTS_AGREE] == ("fail" if which == "newest" else "pass")
    assert full[MARTS_AGREE] == "fail"


@pytest.mark.parametrize("copy_at", ["newest", "original"])
def test_an_event_kept_twice_fails(built: str, copy_at: str) -> None:
    """A second kept copy of the oldest event: stamped now (in the window) it is caught by every
    pass, against its copy days older; both copies old, only the full check sees them."""
    [(event_id,)] = execute(
        built, f"select event_id from {CHECKED} where reject_reason is null"
        " and not is_duplicate order by created_at limit 1",
    )  # fmt: skip
    stamp = f"(select max(created_at) from {CHECKED})" if copy_at == "newest" else "created_at"
    columns = [
        name
        for (name,) in execute(
            built,
            "select column_name from information_schema.columns where table_schema = 'staging'"
            " and table_name = 'stg_raw__inference_events_checked' order by ordinal_position",
        )
    ]
    values = ", ".join(stamp if name == "created_at" else name for name in columns)
    [(ctid,)] = execute(
        built,
        f"insert into {CHECKED} ({', '.join(columns)}) select {values} from {CHECKED}"
        " where event_id = %s returning ctid::text",
        (event_id,),
    )
    try:
        windowed, full = verdicts(built), verdicts(built, full_refresh=True)
    finally:
        execute(built, f"delete from {CHECKED} where ctid = %s::tid", (ctid,))
    assert windowed[UNIQUE] == ("fail" if copy_at == "newest" else "pass")
    assert full[UNIQUE] == "fail"

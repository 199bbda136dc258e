"""On clean input every runbook mart equals the runbook's own query, to 1e-9 (CONTRACT section 4).

The queries below are the runbook's SQL verbatim, checked against the runbook kept with the tests
(tests/fixtures/cost-spike-runbook.md, itself checked against ../shared when a checkout has it).
Only their time window changes: `WHERE created_at > NOW() - ...` is removed (the marts hold every
hour), or matched to one hour or day (step 6 groups by tool only). For a daily mart whose
runbook query is hourly, or the reverse, `DATE_TRUNC('hour', created_at) as hour` becomes
`DATE_TRUNC('day', created_at) as day` (or the reverse); nothing else is touched. The data set
holds every scenario of `costwatch seed`, appended into one database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from orchestration.runbook.seed import SCENARIOS, seed
from tests.support.marts import (
    RUNBOOK_MARTS,
    assert_close_rows,
    fetch,
    run_dbt,
)
from tests.support.runbook import (
    RUNBOOK,
    SHARED_RUNBOOK,
    STEP_1,
    STEP_2,
    STEP_3_RATIO,
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

END = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def every_scenario(module_db_url: str) -> str:
    """Every scenario, two days each at 40 events/hour, appended one day apart; marts built by
    dbt on a server whose time zone is not UTC (nor a whole number of hours from it): every
    hour and day is still UTC's."""
    dbname = psycopg.conninfo.conninfo_to_dict(module_db_url)["dbname"]
    with psycopg.connect(module_db_url, autocommit=True) as conn:
        conn.execute(f"alter database \"{dbname}\" set timezone = 'Asia/Kathmandu'")
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
    run_dbt(module_db_url, "build")
    return module_db_url


def test_the_queries_are_the_runbooks_own() -> None:
    text = " ".join(RUNBOOK.read_text().split())
    for sql in (STEP_1, STEP_2, STEP_3_TRIGGERS, STEP_3_RATIO, STEP_4, STEP_5, STEP_6):
        assert " ".join(sql.split()) in text


def test_the_runbook_kept_with_the_tests_is_the_teams() -> None:
    """The copy the tests read is the runbook on-call reads (where a checkout has both)."""
    if not SHARED_RUNBOOK.exists():
        pytest.skip("this checkout has no ../shared (a user's clone): the kept copy stands alone")
    assert RUNBOOK.read_text() == SHARED_RUNBOOK.read_text()


def test_the_data_holds_every_scenario_and_is_clean(every_scenario: str) -> None:
    quality = fetch(
        every_scenario,
        "select sum(raw_rows), sum(clean_rows), sum(rejected_rows) + sum(duplicate_rows)"
        " from marts.data_quality_daily",
    )
    raw, clean, dropped = quality[0]
    assert raw == clean > 10 * 2 * 24 * 40 * 0.5
    assert dropped == 0
    tags = fetch(
        every_scenario,
        "select count(distinct date_trunc('day', created_at)) from raw.inference_events",
    )
    assert tags[0][0] >= len(SCENARIOS) + 1


@pytest.mark.parametrize("grain", ["hour", "day"])
def test_cost_marts_equal_steps_1_and_2(every_scenario: str, grain: str) -> None:
    table = "cost_hourly" if grain == "hour" else "cost_daily"
    step_1, step_2 = STEP_1, STEP_2
    if grain == "day":
        step_1, step_2 = regrained(step_1, "day"), regrained(step_2, "day")
    key = (lambda v: v) if grain == "hour" else as_day
    expected_1 = [(key(h), *rest) for h, *rest in runbook(every_scenario, without_window(step_1))]
    expected_2 = [(key(h), *rest) for h, *rest in runbook(every_scenario, without_window(step_2))]
    mart = f"select {grain}, requests, unique_users, total_cost_usd, avg_cost_per_request_usd"
    actual = fetch(every_scenario, f"{mart} from marts.{table} order by 1")
    assert_close_rows([(r[0], r[1], r[3], r[4]) for r in actual], expected_1, f"{table} step 1")
    assert_close_rows(actual, expected_2, f"{table} step 2")


def test_trigger_hourly_equals_step_3(every_scenario: str) -> None:
    expected = runbook(every_scenario, without_window(STEP_3_TRIGGERS))
    actual = fetch(
        every_scenario,
        "select hour, trigger_type, requests, cost_usd from marts.trigger_hourly order by 1, 2",
    )
    assert_close_rows(actual, expected, "trigger_hourly")


@pytest.mark.parametrize("grain", ["hour", "day"])
def test_recompute_marts_equal_step_3(every_scenario: str, grain: str) -> None:
    table = f"recompute_{'hourly' if grain == 'hour' else 'daily'}"
    expected = recompute_expected(every_scenario, grain)
    actual = fetch(
        every_scenario,
        f"select {grain}, total, hidden, hidden_ratio, hidden_cost_usd"
        f" from marts.{table} order by 1",
    )
    assert_close_rows(actual, expected, table)
    assert any(row[2] > 0 for row in actual)


@pytest.mark.parametrize("grain", ["hour", "day"])
def test_tokens_marts_equal_step_4(every_scenario: str, grain: str) -> None:
    table = f"tokens_{'hourly' if grain == 'hour' else 'daily'}"
    sql = STEP_4 if grain == "hour" else regrained(STEP_4, "day")
    key = (lambda v: v) if grain == "hour" else as_day
    expected = [(key(b), *rest) for b, *rest in runbook(every_scenario, without_window(sql))]
    actual = fetch(
        every_scenario,
        f"select {grain}, avg_input_tokens, avg_output_tokens, p95_input_tokens,"
        f" p95_output_tokens from marts.{table} order by 1",
    )
    assert_close_rows(actual, expected, table)


@pytest.mark.parametrize("grain", ["hour", "day"])
def test_feature_cost_marts_equal_step_5(every_scenario: str, grain: str) -> None:
    table = f"feature_cost_{'hourly' if grain == 'hour' else 'daily'}"
    sql = STEP_5 if grain == "day" else regrained(STEP_5, "hour")
    key = (lambda v: v) if grain == "hour" else as_day
    expected = sorted((key(b), *rest) for b, *rest in runbook(every_scenario, without_window(sql)))
    actual = fetch(
        every_scenario,
        f"select {grain}, feature, requests, total_cost_usd, cost_per_request_usd"
        f" from marts.{table} order by 1, 2",
    )
    assert_close_rows(actual, expected, table)


@pytest.mark.parametrize("grain", ["hour", "day"])
def test_tool_failure_marts_equal_step_6(every_scenario: str, grain: str) -> None:
    """Step 6 groups by tool over a window: run it once per hour (day) with the window matched."""
    table = f"tool_failures_{'hourly' if grain == 'hour' else 'daily'}"
    step = timedelta(hours=1) if grain == "hour" else timedelta(days=1)
    buckets = fetch(
        every_scenario,
        f"select distinct date_trunc('{grain}', created_at) from raw.tool_calls order by 1",
    )
    sql = matched_window(STEP_6)
    expected = []
    with psycopg.connect(every_scenario) as conn:
        conn.execute("set timezone = 'UTC'")
        conn.execute("set search_path = raw")
        for (start,) in buckets:
            label = start if grain == "hour" else as_day(start)
            rows = conn.execute(sql, {"start": start, "end": start + step}).fetchall()
            expected += [(label, *row) for row in rows]
    expected.sort(key=lambda row: (row[0], row[1]))
    actual = fetch(
        every_scenario,
        f"select {grain}, tool_name, total_calls, failures, failure_rate, avg_retries"
        f" from marts.{table} order by 1, 2",
    )
    assert_close_rows(actual, expected, table)
    assert any(row[3] > 0 for row in actual)


def test_every_mart_is_covered() -> None:
    covered = {
        "cost_hourly", "cost_daily", "trigger_hourly", "recompute_hourly", "recompute_daily",
        "tokens_hourly", "tokens_daily", "feature_cost_hourly", "feature_cost_daily",
        "tool_failures_hourly", "tool_failures_daily",
    }  # fmt: skip
    assert covered == set(RUNBOOK_MARTS)

"""Incremental marts: one more hour costs one window of work, late events land in their hour,
duplicates of already-loaded events stay duplicates, and a replay or a full refresh gives the
same marts.

The window of an incremental run is the newest hour already built minus
`late_event_lookback_hours` (6): with one more hour of events, every model reads and rewrites
only the 8 hours from (newest - 6 h) to the new hour, whatever the length of the history. The
staging models narrow it further: they check again from the oldest hour of that window whose raw
rows changed (here the hour the late events landed in, 3 hours back).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from orchestration.runbook.seed import seed
from tests.conftest import costwatch_env, run_costwatch
from tests.test_marts_support import (
    RUNBOOK_MARTS,
    assert_close_rows,
    fetch,
    rows_affected,
    run_dbt,
    snapshot,
)

END = datetime(2026, 2, 10, tzinfo=UTC)
LOOKBACK_HOURS = 6
LATE_EVENTS = 5
INFERENCE_COLUMNS = (
    "created_at, user_id, session_id, feature, trigger_type, model, input_tokens,"
    " output_tokens, cost_usd, user_agent"
)
TOOL_COLUMNS = "created_at, event_id, feature, tool_name, success, retries, latency_ms"
STAGING = ("stg_raw__inference_events_checked", "stg_raw__tool_calls_checked")


def append_one_hour(url: str, newest_hour: datetime) -> None:
    """One more hour (a copy of the newest, shifted), late events, and duplicates of old ids."""
    late_hour = newest_hour - timedelta(hours=3)
    with psycopg.connect(url) as conn:
        conn.execute(
            f"insert into raw.inference_events (event_id, {INFERENCE_COLUMNS})"
            f" select event_id || '-next', created_at + interval '1 hour',"
            f" {INFERENCE_COLUMNS.split(', ', 1)[1]}"
            " from raw.inference_events where created_at >= %s",
            (newest_hour,),
        )
        conn.execute(
            f"insert into raw.tool_calls (call_id, {TOOL_COLUMNS})"
            f" select call_id || '-next', created_at + interval '1 hour',"
            f" {TOOL_COLUMNS.split(', ', 1)[1]}"
            " from raw.tool_calls where created_at >= %s",
            (newest_hour,),
        )
        # Late: new events stamped 3 hours before the newest hour, arriving only now.
        conn.execute(
            f"insert into raw.inference_events (event_id, {INFERENCE_COLUMNS})"
            f" select event_id || '-late', {INFERENCE_COLUMNS}"
            " from raw.inference_events where created_at >= %s and created_at < %s"
            " order by event_id limit %s",
            (late_hour, late_hour + timedelta(hours=1), LATE_EVENTS),
        )
        # Duplicates of events already loaded: one inside the window, one from the first day.
        for since in (newest_hour - timedelta(hours=2), END - timedelta(days=3)):
            conn.execute(
                f"insert into raw.inference_events (event_id, {INFERENCE_COLUMNS})"
                f" select event_id, %s, user_id, session_id, feature, trigger_type, model,"
                f" input_tokens, output_tokens, 99, user_agent"
                " from raw.inference_events where created_at >= %s order by created_at limit 1",
                (newest_hour + timedelta(hours=1, minutes=20), since),
            )
        conn.execute(
            f"insert into raw.tool_calls (call_id, {TOOL_COLUMNS})"
            f" select call_id, %s, {TOOL_COLUMNS.split(', ', 1)[1]}"
            " from raw.tool_calls order by created_at limit 1",
            (newest_hour + timedelta(hours=1, minutes=5),),
        )


@pytest.fixture(scope="module")
def runs(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """3 days run in full; one more hour built incrementally (dbt build, with its tests); a
    replay through the real pass (`costwatch run`: Dagster, every asset, checks, sensors); a
    full refresh."""
    url = module_db_url
    with psycopg.connect(url) as conn:
        seed(conn, "quiet", days=3, events_per_hour=60, seed=7, end=END)
    out: dict = {"url": url}
    out["full"] = rows_affected(run_dbt(url, "run"))
    newest_hour = fetch(url, "select max(hour) from marts.cost_hourly")[0][0]
    out["before"] = {
        "late_hour": fetch(
            url,
            "select requests from marts.cost_hourly where hour = %s",
            (newest_hour - timedelta(hours=3),),
        )[0][0],
    }
    append_one_hour(url, newest_hour)
    out["newest_hour"] = newest_hour
    # Staging's window: from the oldest changed hour, the late events' (3 hours back).
    out["window_raw_rows"] = fetch(
        url,
        "select count(*) from raw.inference_events where created_at >= %s",
        (newest_hour - timedelta(hours=3),),
    )[0][0]
    out["lookback_raw_rows"] = fetch(
        url,
        "select count(*) from raw.inference_events where created_at >= %s",
        (newest_hour - timedelta(hours=LOOKBACK_HOURS),),
    )[0][0]
    out["incremental"] = rows_affected(run_dbt(url, "build"))
    out["after_incremental"] = snapshot(url, (*RUNBOOK_MARTS, "data_quality_daily"))
    env = costwatch_env(url, tmp_path_factory.mktemp("costwatch"))
    out["pass"] = run_costwatch("run", env=env)
    out["after_replay"] = snapshot(url, (*RUNBOOK_MARTS, "data_quality_daily"))
    run_dbt(url, "run", "--full-refresh")
    out["after_full_refresh"] = snapshot(url, (*RUNBOOK_MARTS, "data_quality_daily"))
    return out


def test_one_more_hour_costs_one_window_not_the_history(runs: dict) -> None:
    full, incremental = runs["full"], runs["incremental"]
    print("\nrows written per model: full build -> incremental run after one more hour")
    for model in sorted(full):
        print(f"  {model:40s} {full[model]:>8} -> {incremental[model]:>6}")
    total_raw = fetch(runs["url"], "select count(*) from raw.inference_events")[0][0]
    # Staging reads exactly the raw rows from the oldest changed hour (the late events', 3 hours
    # back) to the new hour: not the 6 hours of lookback whose rows did not change.
    assert incremental["stg_raw__inference_events_checked"] == runs["window_raw_rows"]
    assert runs["window_raw_rows"] < runs["lookback_raw_rows"] < total_raw / 6
    # The intermediate models rebuild only the hours staging checked again: from the late hour
    # for inference events, the new hour alone for tool calls (nothing late arrived there).
    late_hour = runs["newest_hour"] - timedelta(hours=3)
    new_hour = runs["newest_hour"] + timedelta(hours=1)
    for model, since in (
        ("int_inference_hourly_facts", late_hour),
        ("int_inference_hourly_distributions", late_hour),
        ("int_tool_calls_hourly_facts", new_hour),
    ):
        rebuilt = fetch(
            runs["url"], f"select count(*) from intermediate.{model} where hour >= %s", (since,)
        )[0][0]
        assert incremental[model] == rebuilt, model
    # The hourly marts rewrite the 8 hours of the window.
    assert incremental["cost_hourly"] == LOOKBACK_HOURS + 2
    assert full["cost_hourly"] == 72
    # Daily percentiles and distinct users re-read whole days: the days the window touches.
    assert incremental["int_inference_daily_distributions"] <= 2
    # The daily marts roll up hourly facts (small) and rewrite at most their newest 3 days.
    assert incremental["cost_daily"] <= 3
    for model, rows in incremental.items():
        hourly = model.startswith(("stg_", "int_")) or model.endswith("_hourly")
        if hourly and model != "int_inference_daily_distributions":
            assert rows <= max(full[model] / 4, 20), model


def test_a_replay_through_costwatch_run_changes_nothing(runs: dict) -> None:
    result = runs["pass"]
    failures = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if any(word in line for word in ("ERROR", "FAIL", "Failure", "Error in"))
    ]
    assert result.returncode == 0, "\n".join(failures[:40]) + result.stderr[-2000:]
    for table in runs["after_incremental"]:
        assert_close_rows(runs["after_replay"][table], runs["after_incremental"][table], table)


def test_incremental_marts_equal_a_full_refresh(runs: dict) -> None:
    incremental, full = runs["after_incremental"], runs["after_full_refresh"]
    for table in incremental:
        assert_close_rows(incremental[table], full[table], table)


def test_late_events_land_in_their_own_hour(runs: dict) -> None:
    late_hour = runs["newest_hour"] - timedelta(hours=3)
    requests = fetch(
        runs["url"], "select requests from marts.cost_hourly where hour = %s", (late_hour,)
    )[0][0]
    assert requests == runs["before"]["late_hour"] + LATE_EVENTS


def test_duplicates_of_loaded_events_stay_duplicates(runs: dict) -> None:
    url = runs["url"]
    duplicates = fetch(
        url,
        "select source, sum(duplicate_rows) from marts.data_quality_daily group by 1 order by 1",
    )
    assert duplicates == [("inference_events", 2), ("tool_calls", 1)]
    assert fetch(
        url, "select count(*) from staging.stg_raw__inference_events where cost_usd = 99"
    ) == [(0,)]
    reconciled = fetch(
        url,
        "select count(*) from marts.data_quality_daily"
        " where raw_rows != clean_rows + rejected_rows + duplicate_rows",
    )
    assert reconciled == [(0,)]

"""The spike diagnosis built hour by hour through an incident equals a full refresh, exactly.

The diagnosis keeps per (spike, hour) aggregates (int_diagnosis_slot_*): a pass computes again
only the spike hours whose window changed (a new hour of an open spike, a spike whose start,
baseline hours or weights moved as its level did) or whose facts staging checked again (late
events). A `tool_outage` incident (tool storm, retries, more traffic: every per-hour model has
work) arrives one hour per pass, with late events landing in an earlier spike hour; after every
pass that consumes a kind of change (the first spike, the late events, the last hour) the diagnosis
and the triage marts must equal, column by column and without tolerance, the ones a
`--full-refresh` builds from the same data in another database.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from orchestration.runbook.seed import seed
from tests.conftest import create_database, drop_database
from tests.support.marts import fetch, rows_affected, run_dbt

END = datetime(2026, 10, 20, 20, tzinfo=UTC)
# The incident starts 10 hours before END: the first build sees its first hours (a spike not yet
# confirmed), each pass one more.
FIRST_END = END - timedelta(hours=7)
SELECTION = "+spike_summary +spike_runbook_steps"
DIAGNOSIS = (
    "marts.cost_baseline_hourly",
    "intermediate.int_diagnosis_windows",
    "intermediate.int_diagnosis_slot_tools",
    "marts.spike_diagnosis",
    "marts.spike_causes",
    "marts.spike_summary",
    "marts.spike_runbook_steps",
    "intermediate.int_diagnosis_inference",
    "intermediate.int_diagnosis_tools",
    "intermediate.int_diagnosis_traffic",
)
SLOT_MODELS = (
    "int_diagnosis_slot_inference",
    "int_diagnosis_slot_tools",
    "int_diagnosis_slot_traffic",
)
INFERENCE_COLUMNS = (
    "created_at, user_id, session_id, feature, trigger_type, model, input_tokens,"
    " output_tokens, cost_usd, user_agent"
)


def table(url: str, name: str) -> list[tuple]:
    """Every row of `name`, every column, sorted by its text (json as text, exact numbers)."""
    columns = [
        row[0]
        for row in fetch(
            url,
            "select column_name from information_schema.columns"
            " where table_schema || '.' || table_name = %s order by ordinal_position",
            (name,),
        )
    ]
    assert columns, name
    select = ", ".join(f'"{column}"::text' for column in columns)
    return sorted(fetch(url, f"select {select} from {name}"), key=repr)


def move_later_rows(url: str, since: datetime) -> None:
    """Hold back the events and tool calls from `since` on (they arrive one hour per pass)."""
    with psycopg.connect(url) as conn:
        for name in ("inference_events", "tool_calls"):
            conn.execute(
                f"create table raw.later_{name} as select * from raw.{name} where created_at >= %s",
                (since,),
            )
            conn.execute(f"delete from raw.{name} where created_at >= %s", (since,))


def arrive(url: str, until: datetime) -> None:
    """The held-back rows stamped before `until` arrive."""
    with psycopg.connect(url) as conn:
        for name in ("inference_events", "tool_calls"):
            conn.execute(
                f"insert into raw.{name} select * from raw.later_{name} where created_at < %s",
                (until,),
            )
            conn.execute(f"delete from raw.later_{name} where created_at < %s", (until,))


def late_events(url: str, hour: datetime, tag: str, count: int = 7) -> None:
    """`count` new events stamped in `hour`, arriving only now."""
    with psycopg.connect(url) as conn:
        conn.execute(
            f"insert into raw.inference_events (event_id, {INFERENCE_COLUMNS})"
            f" select event_id || %s, {INFERENCE_COLUMNS}"
            " from raw.inference_events where created_at >= %s and created_at < %s"
            " order by event_id limit %s",
            (f"-late-{tag}", hour, hour + timedelta(hours=1), count),
        )


def copy_raw(source: str, target: str) -> None:
    """The raw tables of `source` into `target` (the same data, built from scratch there)."""
    with psycopg.connect(source) as src, psycopg.connect(target) as dst:
        for name in ("inference_events", "tool_calls", "change_events"):
            dst.execute(f"delete from raw.{name}")
            with (
                src.cursor().copy(f"copy raw.{name} to stdout") as out,
                dst.cursor().copy(f"copy raw.{name} from stdin") as into,
            ):
                for data in out:
                    into.write(data)


@pytest.fixture(scope="module")
def passes(server_url: str, module_db_url: str) -> dict:
    url = module_db_url
    with psycopg.connect(url) as conn:
        seed(conn, "tool_outage", days=9, events_per_hour=400, seed=11, end=END)
    move_later_rows(url, FIRST_END)
    run_dbt(url, "seed", select="cause_catalogue")
    run_dbt(url, "run", select=SELECTION)
    name = f"cw_test_diagnosis_full_refresh_{os.getpid()}"
    reference = create_database(server_url, name)
    run_dbt(reference, "seed", select="cause_catalogue")
    out: dict = {"compared": [], "written": [], "spikes": []}
    try:
        hour = FIRST_END
        while hour < END:
            hour += timedelta(hours=1)
            arrive(url, hour)
            if hour == END - timedelta(hours=3):
                # late events in an earlier spike hour (within the lookback: staging checks it
                # again; a baseline hour is a day or more back, beyond it by design)
                late_events(url, hour - timedelta(hours=3), "spike")
            written = rows_affected(run_dbt(url, "run", select=SELECTION))
            out["written"].append({model: written.get(model) for model in SLOT_MODELS})
            out["spikes"].append(fetch(url, "select spike_id, hours from marts.cost_spikes"))
            # Compared where each kind of change has just been consumed (the suite's time: a
            # full refresh costs several incremental passes): the first pass with a spike (new
            # slots), the pass with late events and the one after it (slots computed again
            # from re-checked facts, then a grown spike over them), and the last.
            first_spike = out["spikes"][-1] and not any(out["spikes"][:-1])
            late = END - timedelta(hours=3)
            if first_spike or hour in (late, late + timedelta(hours=1), END):
                copy_raw(url, reference)
                run_dbt(reference, "run", "--full-refresh", select=SELECTION)
                out["compared"].append(
                    (hour, {name: (table(url, name), table(reference, name)) for name in DIAGNOSIS})
                )
        out["slot_rows"] = {
            model: fetch(url, f"select count(*) from intermediate.{model}")[0][0]
            for model in SLOT_MODELS
        }
    finally:
        drop_database(server_url, name)
    return out


def test_the_incident_is_diagnosed(passes: dict) -> None:
    """The comparison means something: a spike was found and diagnosed, a tool storm among it."""
    _, last = passes["compared"][-1]
    diagnosis, _ = last["marts.spike_diagnosis"]
    assert passes["spikes"][-1], "no spike found"
    assert diagnosis, "no diagnosis"
    assert any("tool_retry_storm" in row for row in diagnosis), diagnosis


def differences(incremental: list[tuple], full: list[tuple]) -> list:
    """The cells that differ (row, column, incremental, full), or the row counts."""
    if len(incremental) != len(full):
        return [("rows", len(incremental), len(full))]
    return [
        (i, j, a, b)
        for i, (left, right) in enumerate(zip(incremental, full, strict=True))
        for j, (a, b) in enumerate(zip(left, right, strict=True))
        if a != b
    ]


def test_every_pass_equals_a_full_refresh_exactly(passes: dict) -> None:
    for hour, tables in passes["compared"]:
        for name, (incremental, full) in tables.items():
            diff = differences(incremental, full)
            assert not diff, f"{name} after the pass up to {hour:%Y-%m-%d %H:%M}: {diff[:5]}"


def test_an_open_spikes_new_hour_adds_one_hours_work(passes: dict) -> None:
    """The last pass (one more hour of an open spike) writes a slot or two, not the spike."""
    print("\nrows written per pass:", passes["written"], "\nspikes:", passes["spikes"][-1])
    last, total = passes["written"][-1], passes["slot_rows"]
    hours = passes["spikes"][-1][0][1]
    assert hours >= 5
    for model in SLOT_MODELS:
        # the new hour, and the one before it that was still filling in the previous pass
        assert 0 < last[model] <= 2 * total[model] / hours, (model, last[model], total[model])

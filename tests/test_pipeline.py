"""`costwatch run` as a user runs it: empty database, seeded data, a model that cannot build."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from orchestration.core.config import Config
from orchestration.defs.dbt import unfinished_nodes
from orchestration.runbook.seed import seed
from tests.conftest import costwatch_env, query, run_costwatch

END = datetime(2026, 11, 18, 15, tzinfo=UTC)  # a Wednesday afternoon


def test_unfinished_nodes_reads_run_results() -> None:
    results = {
        "results": [
            {"unique_id": "model.costwatch.cost_hourly", "status": "success"},
            {"unique_id": "model.costwatch.tokens_hourly", "status": "error",
             "message": "Database Error in model tokens_hourly\n  division by zero"},
            {"unique_id": "model.costwatch.tokens_daily", "status": "skipped", "message": None},
            {"unique_id": "test.costwatch.unique_cost_hourly_hour.abc", "status": "fail",
             "message": "Got 2 results, configured to fail if != 0"},
        ]
    }  # fmt: skip
    assert unfinished_nodes(results, ("model",)) == {
        "tokens_hourly": "Database Error in model tokens_hourly",
        "tokens_daily": "skipped",
    }
    assert unfinished_nodes(results, ("test",)) == {
        "unique_cost_hourly_hour": "Got 2 results, configured to fail if != 0"
    }


def test_run_on_an_empty_database(db_url: str, tmp_path: Path) -> None:
    env = costwatch_env(db_url, tmp_path)
    result = run_costwatch("run", "--json", str(tmp_path / "pass.json"), env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "costwatch pass finished" in result.stdout
    figures = json.loads((tmp_path / "pass.json").read_text())
    assert figures["success"] and not figures["checks_failed"]
    assert "marts/cost_hourly" in figures["materialized"]
    assert query(db_url, "select count(*) from marts.cost_hourly") == [(0,)]
    assert query(db_url, "select count(*) from marts.cost_spikes") == [(0,)]
    assert query(db_url, "select count(*) from ops.incidents") == [(0,)]
    triage = run_costwatch("triage", env=env)
    assert triage.returncode == 0, triage.stderr
    # Piped, the report is Markdown: the empty database's own report, nothing else.
    assert triage.stdout == (
        "# No cost spike\n\nThe marts hold no hours yet: load events, then run costwatch.\n\n"
    )


def test_run_on_seeded_data_then_a_model_that_cannot_build(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url) as conn:
        # 120 events/h: at 60 the loop's daytime hours sit within the noise floor of the
        # day-type baseline (issue 13's detection), and this test is about the pass, not the floor.
        seed(conn, "autosave_loop", days=8, events_per_hour=120, end=END)
    env = costwatch_env(db_url, tmp_path)
    result = run_costwatch("run", "--json", str(tmp_path / "pass.json"), env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    figures = json.loads((tmp_path / "pass.json").read_text())
    assert figures["success"] and not figures["checks_failed"], figures["checks_failed"]
    # Where the time went is recorded: phases, the dbt step, each model.
    # The incident step is a step of the job: nothing runs after it.
    assert {"dbt_manifest", "definitions_import", "execute"} <= set(figures["timings"])
    assert "sensors" not in figures["timings"]
    assert "ops__incidents" in figures["steps"]
    assert "costwatch_dbt_assets" in figures["steps"]
    assert "marts/cost_hourly" in figures["models"]
    hours = query(db_url, "select count(*) from marts.cost_hourly")[0][0]
    assert hours == 8 * 24
    spikes = query(db_url, "select spike_start from marts.cost_spikes")
    assert len(spikes) == 1
    assert query(db_url, "select root_cause from ops.incidents") == [("hidden_recompute",)]

    # A setting of the right type that breaks one model's SQL (a weekday out of integer range;
    # a value of the wrong type never reaches dbt): the pass fails, one line names the model,
    # and that model's table is the one of the last good pass, whole.
    before = query(db_url, "select count(*), sum(total_cost_usd) from marts.cost_baseline_hourly")
    broken = costwatch_env(db_url, tmp_path, COSTWATCH_VAR_SPIKE_WEEKEND_ISODOW="[6, 99999999999]")
    with psycopg.connect(db_url) as conn:
        seed(conn, "quiet", hours=1, events_per_hour=60, end=END.replace(hour=16), seed=3)
    failed = run_costwatch("run", env=broken)
    assert failed.returncode == 1
    error_lines = [line for line in failed.stdout.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, failed.stdout[-3000:]
    # The models that read the broken var are named.
    broken_models = error_lines[0].split("dbt did not build ", 1)[1].split(" because")[0]
    assert "cost_baseline_hourly" in broken_models.split(", ")
    assert "Traceback" not in failed.stdout + failed.stderr
    assert (
        query(db_url, "select count(*), sum(total_cost_usd) from marts.cost_baseline_hourly")
        == before
    )

    # The next good pass catches up with the hour appended meanwhile.
    again = run_costwatch("run", env=env)
    assert again.returncode == 0, again.stdout[-3000:]
    assert query(db_url, "select count(*) from marts.cost_hourly")[0][0] == 8 * 24 + 1
    assert query(db_url, "select count(*) from marts.cost_baseline_hourly")[0][0] == 8 * 24 + 1


def test_a_run_that_dagster_cannot_continue_fails_with_one_line(monkeypatch) -> None:
    """The database restarting under Dagster's own storage raises out of the run (it is not a
    failed step): the pass still ends with one `error:` line in its summary, no traceback."""
    from orchestration import pipeline

    class OperationalError(Exception):
        pass

    class StorageError(Exception):  # SQLAlchemy's shape: the driver's error as `.orig`
        def __init__(self) -> None:
            super().__init__("(psycopg2.OperationalError) server closed the connection\n[SQL: ...]")
            self.orig = OperationalError("server closed the connection unexpectedly\n\tdetail")

    def execute(job, full_refresh: bool, config) -> pipeline.PassResult:
        raise StorageError

    monkeypatch.setattr(pipeline, "_execute", execute)
    result = pipeline._execute_or_fail(None, full_refresh=False, config=Config.load({}))
    assert not result.success
    errors = [line for line in result.summary().splitlines() if line.startswith("error:")]
    assert errors == [
        "error: the run stopped: OperationalError: server closed the connection unexpectedly"
    ]

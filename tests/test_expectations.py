"""Great Expectations suites (expectations/*.json): each passes on clean seeded data and fails,
naming the right expectation, on data broken the way it guards against.

One module database: 5 days of the autosave_loop scenario ending now (so raw freshness holds
and cost_spikes has a spike), marts built once with dbt. Each test breaks one thing and puts it
back, raw rows by a marker, marts from a copy.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from orchestration.core.config import Config
from orchestration.core.database import dbt_env
from orchestration.defs.expectations import build_expectation_checks, outcome_to_check_result
from orchestration.defs.project import partial_parse_for_profile
from orchestration.runbook.expectations.results import SuiteOutcome
from orchestration.runbook.expectations.runner import (
    before_gx_import,
    sqlalchemy_url,
    validate_suite,
)
from orchestration.runbook.expectations.suites import (
    CHECK_NAME,
    CheckSettings,
    Suite,
    SuiteError,
    load_suite,
    load_suites,
)
from orchestration.runbook.seed import default_end, seed

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT = str(Path(sys.executable).with_name("dbt"))
MARTS = ("cost_hourly", "tokens_hourly", "tool_failures_hourly", "cost_spikes")
MARKER = "gx-test"  # user_agent / tool_name of the dirty raw rows a test inserts
SUITES = {s.name: s for s in load_suites()}
SETTINGS = CheckSettings()


def run_dbt(url: str, target: Path) -> None:
    env = {
        **os.environ,
        **dbt_env(url),
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(target),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    partial_parse_for_profile(
        target, Config.load(database_url=url)
    )  # dbt parses only what changed, not the project
    select = " ".join(f"+{m}" for m in (*MARTS, "data_quality_daily"))
    result = subprocess.run(
        [DBT, "run", "--project-dir", "dbt_project", "--profiles-dir", "dbt_project"]
        + ["--select", *select.split()],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.fixture(scope="module")
def url(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    with psycopg.connect(module_db_url) as conn:
        # 16 days: the baseline needs 3 earlier days of the onset's own day type (weekday or
        # weekend), and the data ends now (freshness), on whatever weekday the suite runs.
        seed(conn, "autosave_loop", days=16, events_per_hour=200, seed=3, end=default_end())
    run_dbt(module_db_url, tmp_path_factory.mktemp("dbt_target"))
    return module_db_url


def execute(url: str, *statements: str) -> None:
    with psycopg.connect(url) as conn:
        for statement in statements:
            conn.execute(statement)


def validate(url: str, name: str, **kwargs) -> SuiteOutcome:
    return validate_suite(url, SUITES[name], SETTINGS, **kwargs)


def failed(outcome: SuiteOutcome) -> list[str]:
    return [f.expectation for f in outcome.findings]


@contextlib.contextmanager
def dirty_raw(url: str, *statements: str) -> Iterator[None]:
    """Dirty raw rows (marked with MARKER), deleted afterwards."""
    execute(url, *statements)
    try:
        yield
    finally:
        execute(
            url,
            f"delete from raw.inference_events where user_agent = '{MARKER}'",
            f"delete from raw.tool_calls where tool_name = '{MARKER}' or feature = '{MARKER}'",
        )


@contextlib.contextmanager
def corrupted(url: str, table: str, *statements: str) -> Iterator[None]:
    """A mart corrupted in place, restored from a copy afterwards."""
    execute(url, f"create table marts.gx_backup as select * from marts.{table}", *statements)
    try:
        yield
    finally:
        execute(
            url,
            f"truncate marts.{table}",
            f"insert into marts.{table} select * from marts.gx_backup",
            "drop table marts.gx_backup",
        )


# --------------------------------------------------------------------------- the suites as data


def test_one_suite_per_asset_with_its_severity() -> None:
    assert {s.asset_key: s.severity for s in SUITES.values()} == {
        ("raw", "inference_events"): "WARN",
        ("raw", "tool_calls"): "WARN",
        ("marts", "cost_hourly"): "ERROR",
        ("marts", "tokens_hourly"): "ERROR",
        ("marts", "tool_failures_hourly"): "ERROR",
        ("marts", "cost_spikes"): "ERROR",
    }


def test_every_expectation_is_a_valid_gx_expectation() -> None:
    before_gx_import()
    from great_expectations.core import ExpectationSuite

    for suite in SUITES.values():
        gx_suite = ExpectationSuite(**{k: suite.document[k] for k in ("name", "expectations")})
        assert len(gx_suite.expectations) == len(suite.document["expectations"]), suite.name


def test_a_malformed_suite_is_named(tmp_path: Path) -> None:
    path = tmp_path / "marts.x.json"
    path.write_text('{"name": "marts.x", "expectations": [{"type": "x"}], "meta": {}}')
    with pytest.raises(SuiteError, match="marts.x.json: meta.costwatch needs"):
        load_suite(path)
    path.write_text("{not json")
    with pytest.raises(SuiteError, match="marts.x.json: not a readable JSON suite"):
        load_suite(path)


def test_settings_come_from_the_environment() -> None:
    settings = CheckSettings.from_env(
        {"COSTWATCH_FRESHNESS_HOURS": "6", "COSTWATCH_CHECK_WINDOW_HOURS": "48"}
    )
    assert (settings.freshness_hours, settings.window_hours) == (6.0, 48.0)
    assert CheckSettings.from_env({}) == CheckSettings(2.0, 24.0)
    with pytest.raises(SuiteError, match="COSTWATCH_FRESHNESS_HOURS must be a number"):
        CheckSettings.from_env({"COSTWATCH_FRESHNESS_HOURS": "soon"})


def test_raw_batches_are_the_recent_window_marts_the_whole_table() -> None:
    raw = SUITES["raw.inference_events"].batch_query(24)
    assert "created_at > (select least(max(created_at), now() + interval '1 hour')" in raw
    assert "interval '24 hours'" in raw and "created_at is null" in raw
    assert SUITES["marts.cost_hourly"].batch_query(24) is None


def test_sqlalchemy_url_uses_psycopg3() -> None:
    assert (
        sqlalchemy_url("postgresql://u:p@127.0.0.1:5/db")
        == "postgresql+psycopg://u:p@127.0.0.1:5/db"
    )


# --------------------------------------------------------------------------- clean data passes


@pytest.mark.parametrize("name", sorted(SUITES))
def test_clean_seeded_data_passes(url: str, name: str) -> None:
    outcome = validate(url, name)
    assert outcome.passed, [f.as_dict() for f in outcome.findings]
    assert outcome.rows and outcome.rows > 0  # not vacuous: cost_spikes holds the incident


# --------------------------------------------------------------------------- raw data breaks

INSERT_EVENT = (
    "insert into raw.inference_events select {event_id}, {created_at}, user_id, session_id, "
    "feature, {trigger_type}, model, {input_tokens}, output_tokens, cost_usd, '" + MARKER + "' "
    "from raw.inference_events where user_agent <> '" + MARKER + "' "
    "order by created_at desc limit {n}"
)


def event_rows(n: int = 3, **overrides: str) -> str:
    cols = {
        "event_id": "event_id || '-gx'",
        "created_at": "created_at",
        "trigger_type": "trigger_type",
        "input_tokens": "input_tokens",
    }
    return INSERT_EVENT.format(n=n, **{**cols, **overrides})


RAW_BREAKS = {
    "unknown trigger type": (
        "raw.inference_events",
        event_rows(trigger_type="'Hover'"),
        "expect_column_values_to_be_in_set(trigger_type)",
    ),
    "null event id": (
        "raw.inference_events",
        event_rows(event_id="null"),
        "expect_column_values_to_not_be_null(event_id)",
    ),
    "duplicate event id": (
        "raw.inference_events",
        event_rows(event_id="event_id"),
        "expect_column_values_to_be_unique(event_id)",
    ),
    "negative tokens": (
        "raw.inference_events",
        event_rows(input_tokens="-5"),
        "expect_column_values_to_be_between(input_tokens)",
    ),
    "stamped in the future": (
        "raw.inference_events",
        event_rows(n=1, created_at="now() + interval '3 days'"),
        "expect_column_max_to_be_between(created_at)",
    ),
    "p95 tokens x20 for an hour (characters logged as tokens)": (
        "raw.inference_events",
        event_rows(
            n=2000,
            created_at="date_trunc('hour', now()) - interval '3 hours' "
            "+ random() * interval '1 hour'",
            input_tokens="input_tokens * 20",
        ),
        "unexpected_rows_expectation: Hourly p95 of input or output tokens within 10x",
    ),
    "null tool success": (
        "raw.tool_calls",
        "insert into raw.tool_calls select call_id || '-gx', created_at, event_id, feature, "
        f"'{MARKER}', null, retries, latency_ms from raw.tool_calls "
        "order by created_at desc limit 2",
        "expect_column_values_to_not_be_null(success)",
    ),
    "duplicate call id": (
        "raw.tool_calls",
        "insert into raw.tool_calls select call_id, created_at, event_id, '"
        + MARKER
        + "', tool_name, success, retries, latency_ms from raw.tool_calls "
        "order by created_at desc limit 2",
        "expect_column_values_to_be_unique(call_id)",
    ),
    "negative retries": (
        "raw.tool_calls",
        "insert into raw.tool_calls select call_id || '-gx', created_at, event_id, feature, "
        f"'{MARKER}', success, -1, latency_ms from raw.tool_calls "
        "order by created_at desc limit 2",
        "expect_column_values_to_be_between(retries)",
    ),
}


@pytest.mark.parametrize("case", sorted(RAW_BREAKS))
def test_broken_raw_data_fails_the_right_expectation(url: str, case: str) -> None:
    suite, statement, expectation = RAW_BREAKS[case]
    with dirty_raw(url, statement):
        outcome = validate(url, suite)
    assert not outcome.passed
    assert any(name.startswith(expectation) for name in failed(outcome)), failed(outcome)
    finding = next(f for f in outcome.findings if f.expectation.startswith(expectation))
    assert finding.sample or finding.observed_value is not None  # the UI shows what was wrong


def test_stale_raw_data_fails_freshness(url: str) -> None:
    later = default_end() + timedelta(hours=5)
    outcome = validate_suite(url, SUITES["raw.inference_events"], SETTINGS, now=later)
    assert failed(outcome) == ["expect_column_max_to_be_between(created_at)"]
    relaxed = CheckSettings(freshness_hours=12)
    assert validate_suite(url, SUITES["raw.inference_events"], relaxed, now=later).passed


# --------------------------------------------------------------------------- marts break

MART_BREAKS = {
    "cost_hourly duplicate hour": (
        "cost_hourly",
        ["insert into marts.cost_hourly select * from marts.cost_hourly order by hour limit 1"],
        [
            "expect_column_values_to_be_unique(hour)",
            "unexpected_rows_expectation: requests per day reconcile with data_quality_daily",
        ],
    ),
    "cost_hourly hour lost": (
        "cost_hourly",
        ["delete from marts.cost_hourly where hour = (select min(hour) from marts.cost_hourly)"],
        ["unexpected_rows_expectation: requests per day reconcile with data_quality_daily"],
    ),
    "cost_hourly negative cost": (
        "cost_hourly",
        [
            "update marts.cost_hourly set total_cost_usd = -total_cost_usd, "
            "avg_cost_per_request_usd = -avg_cost_per_request_usd "
            "where hour = (select max(hour) from marts.cost_hourly)"
        ],
        [
            "expect_column_values_to_be_between(total_cost_usd)",
            "expect_column_values_to_be_between(avg_cost_per_request_usd)",
        ],
    ),
    "tokens_hourly p95 x20": (
        "tokens_hourly",
        [
            "update marts.tokens_hourly set p95_input_tokens = p95_input_tokens * 20 "
            "where hour = (select max(hour) from marts.tokens_hourly)"
        ],
        ["unexpected_rows_expectation: hourly p95 tokens within 10x"],
    ),
    "tool failure rate 1.5": (
        "tool_failures_hourly",
        [
            "update marts.tool_failures_hourly set failure_rate = 1.5 "
            "where (hour, tool_name) = (select hour, tool_name from marts.tool_failures_hourly "
            "order by hour desc, tool_name limit 1)"
        ],
        [
            "expect_column_values_to_be_between(failure_rate)",
            "unexpected_rows_expectation: failures <= total_calls",
        ],
    ),
    "tool failures duplicate key": (
        "tool_failures_hourly",
        [
            "insert into marts.tool_failures_hourly select * from marts.tool_failures_hourly "
            "order by hour, tool_name limit 1"
        ],
        [
            "expect_compound_columns_to_be_unique(hour, tool_name)",
            "unexpected_rows_expectation: calls per day reconcile with data_quality_daily",
        ],
    ),
    "cost_spikes duplicate spike": (
        "cost_spikes",
        ["insert into marts.cost_spikes select * from marts.cost_spikes limit 1"],
        ["expect_column_values_to_be_unique(spike_id)"],
    ),
    "cost_spikes overlapping spikes": (
        "cost_spikes",
        [
            "insert into marts.cost_spikes select spike_id || '-bis', spike_start + interval "
            "'1 hour', spike_end + interval '1 hour', hours, peak_hour + interval '1 hour', "
            "total_cost_usd, baseline_cost_usd, excess_cost_usd, pct_above_baseline, false "
            "from marts.cost_spikes limit 1"
        ],
        ["unexpected_rows_expectation: spikes do not overlap"],
    ),
    "cost_spikes peak outside the spike": (
        "cost_spikes",
        ["update marts.cost_spikes set peak_hour = spike_end + interval '1 hour'"],
        ["unexpected_rows_expectation: start <= peak <= end"],
    ),
    "cost_spikes hours not the run's length": (
        "cost_spikes",
        ["update marts.cost_spikes set hours = hours + 1"],
        ["unexpected_rows_expectation: start <= peak <= end"],
    ),
}


@pytest.mark.parametrize("case", sorted(MART_BREAKS))
def test_broken_marts_fail_the_right_expectations(url: str, case: str) -> None:
    table, statements, expectations = MART_BREAKS[case]
    with corrupted(url, table, *statements):
        outcome = validate(url, f"marts.{table}")
    names = failed(outcome)
    for expectation in expectations:
        assert any(name.startswith(expectation) for name in names), (expectation, names)


def test_data_quality_daily_out_of_step_fails_reconciliation(url: str) -> None:
    statement = "update marts.data_quality_daily set clean_rows = clean_rows + 1"
    with corrupted(url, "data_quality_daily", statement):
        outcome = validate(url, "marts.tool_failures_hourly")
    assert failed(outcome) == [
        "unexpected_rows_expectation: calls per day reconcile with data_quality_daily.clean_rows "
        "(tool_calls)"
    ]
    sample = outcome.findings[0].sample
    assert sample and {"day", "mart_calls", "dq_clean_rows"} <= set(sample[0])


def test_raw_rows_the_cleaning_did_not_count_fail_reconciliation(url: str) -> None:
    """A settled day of raw data that changed after the marts were built (or that the cleaning
    lost) no longer matches data_quality_daily.raw_rows."""
    late_row = event_rows(
        n=1, created_at="(select max(hour) from marts.cost_hourly) - interval '36 hours'"
    )
    with dirty_raw(url, late_row):
        outcome = validate(url, "marts.cost_hourly")
    assert failed(outcome) == [
        "unexpected_rows_expectation: raw rows of the last 2 settled days reconcile with "
        "data_quality_daily.raw_rows (inference_events)"
    ]
    (row,) = outcome.findings[0].sample
    assert row["raw_table_rows"] == row["dq_raw_rows"] + 1


def test_a_missing_table_is_a_finding_not_a_crash(module_db_url: str, url: str) -> None:
    suite = SUITES["marts.cost_spikes"]
    missing = Suite(**{**suite.__dict__, "table": "no_such_table"})
    outcome = validate_suite(url, missing, SETTINGS)
    assert not outcome.passed
    assert outcome.findings[0].error


# --------------------------------------------------------------------------- Dagster


def check_result(outcome: SuiteOutcome, name: str) -> dg.AssetCheckResult:
    return outcome_to_check_result(SUITES[name], outcome)


def test_check_result_metadata_reads_well(url: str) -> None:
    with dirty_raw(url, RAW_BREAKS["unknown trigger type"][1]):
        outcome = validate(url, "raw.inference_events")
    result = check_result(outcome, "raw.inference_events")
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.check_name == CHECK_NAME
    meta = result.metadata
    assert meta["expectations_failed"].value == 1
    assert "expect_column_values_to_be_in_set(trigger_type)" in meta["failed_expectations"].value
    assert '"Hover"' in meta["failed_expectations"].value
    (finding,) = meta["findings"].value
    assert finding["unexpected_count"] == 3 and finding["sample"] == [
        {"value": "Hover", "count": 3}
    ]
    assert "trigger_type" in result.description


def test_checks_run_through_dagster_with_their_severities(url: str) -> None:
    """The two multi-asset checks, run by Dagster on stand-ins for the raw and mart assets."""
    from orchestration.defs.resources import PostgresResource

    checks = build_expectation_checks()
    stand_ins = [dg.AssetSpec(list(s.asset_key)) for s in SUITES.values()]
    job = dg.define_asset_job("gx", selection=dg.AssetSelection.all_asset_checks())
    defs = dg.Definitions(
        assets=stand_ins,
        asset_checks=checks,
        jobs=[job],
        resources={"database": PostgresResource.for_url(url)},
    )
    statement = "update marts.tool_failures_hourly set failure_rate = 1.5"
    with (
        dirty_raw(url, RAW_BREAKS["null tool success"][1]),
        corrupted(url, "tool_failures_hourly", statement),
    ):
        outcome = defs.resolve_job_def("gx").execute_in_process(raise_on_error=False)
    evaluations = {e.asset_key.to_user_string(): e for e in outcome.get_asset_check_evaluations()}
    assert set(evaluations) == {"/".join(s.asset_key) for s in SUITES.values()}
    assert {k for k, e in evaluations.items() if not e.passed} == {
        "raw/tool_calls",
        "marts/tool_failures_hourly",
    }
    assert evaluations["raw/tool_calls"].severity == dg.AssetCheckSeverity.WARN
    assert evaluations["marts/tool_failures_hourly"].severity == dg.AssetCheckSeverity.ERROR
    assert outcome.success  # a failed check is a finding, not a crashed run


def test_definitions_attach_the_suites_and_the_pass_runs_them() -> None:
    from orchestration.definitions import PASS_JOB_NAME
    from orchestration.definitions import defs as load_defs

    defs = load_defs()
    graph = defs.resolve_asset_graph()
    attached = {
        key.asset_key.to_user_string() for key in graph.asset_check_keys if key.name == CHECK_NAME
    }
    assert attached == {"/".join(s.asset_key) for s in SUITES.values()}
    job = defs.resolve_job_def(PASS_JOB_NAME)
    # The raw assets are external (not materialized by the pass), their checks still run in it.
    assert {"raw_expectations", "mart_expectations"} <= set(job.graph.node_dict)
    raw_check_keys = {
        key
        for key in job.asset_layer.asset_graph.asset_check_keys
        if key.name == CHECK_NAME and key.asset_key.path[0] == "raw"
    }
    assert len(raw_check_keys) == 2


def test_gx_imports_where_pyspark_would_exit_the_process() -> None:
    """`python -c` (like a pytest-xdist worker) has a `__main__` without spec or file: there
    pyspark's Spark Connect client, which GX imports if it can, calls sys.exit(0). costwatch
    keeps it out first, so GX loads and the process goes on."""
    code = (
        "from orchestration.runbook.expectations.runner import before_gx_import\n"
        "before_gx_import()\n"
        "import great_expectations\n"
        "print('gx loaded')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert done.returncode == 0 and done.stdout.strip() == "gx loaded", done.stderr[-2000:]

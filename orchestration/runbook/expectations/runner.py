"""Run suites with Great Expectations 1.x, as SQL on PostgreSQL (GX's SQL datasource).

GX is imported here, lazily: importing it costs seconds, and definitions must load fast. One
ephemeral context (nothing written to disk) per process and database serves every suite of a
pass; its SQLAlchemy engine is reused between suites.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from orchestration.core.database import validate_url
from orchestration.runbook.expectations.results import Finding, SuiteOutcome, finding_from_result
from orchestration.runbook.expectations.suites import CheckSettings, Suite

DATASOURCE = "costwatch"
INDEX_META = "costwatch_index"
# Expectations whose full result costs no more than their verdict: one query each.
FULL_TYPES = {"unexpected_rows_expectation", "expect_table_row_count_to_be_between"}
BOOLEAN = {"result_format": "BOOLEAN_ONLY"}
SUMMARY = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
# unexpected_rows_expectation only returns its rows (capped by GX at 200) with COMPLETE.
COMPLETE = {"result_format": "COMPLETE"}

_lock = threading.Lock()
_contexts: dict[str, Any] = {}


def sqlalchemy_url(url: str) -> str:
    """GX's SQLAlchemy wants a dialect+driver URL; psycopg 3 is costwatch's driver."""
    validate_url(url)
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}"


def before_gx_import() -> None:
    """What must hold before `import great_expectations`: its analytics off (GX reads the
    variable at import), and pyspark's Spark Connect client kept out. pyspark is installed for
    the Spark engine; GX imports `pyspark.sql.connect.dataframe` if it can, and that package's
    `__init__` exits the process (`sys.exit(0)`, "Skipping doctests") when `__main__` has
    neither a spec nor a file and its Connect extras are missing: a pytest-xdist worker,
    `python -c`. costwatch never uses Spark Connect, so GX is told it is not there (an
    ImportError, which GX expects), only in a process where the import would exit."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    main = sys.modules.get("__main__")
    looks_like_doctests = (
        main is not None
        and getattr(main, "__spec__", None) is None
        and not hasattr(main, "__file__")
        and not hasattr(sys, "ps1")
    )
    if looks_like_doctests:
        for name in ("pyspark.sql.connect.dataframe", "pyspark.sql.connect.session"):
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def _context(url: str):
    """The process's GX context for `url`, created once."""
    return _cached_context(
        url,
        lambda sources: sources.add_postgres(DATASOURCE, connection_string=sqlalchemy_url(url)),
    )


def _cached_context(key: str, add_datasource: Callable[[Any], Any]):
    """The process's ephemeral GX context under `key` (a database URL, or the Spark session),
    created once with the one datasource `add_datasource` adds to its `data_sources`."""
    with _lock:
        if key not in _contexts:
            before_gx_import()
            # Start-up time (GX takes seconds to import), and after its analytics are off.
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            logging.getLogger("great_expectations").setLevel(logging.WARNING)
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            add_datasource(context.data_sources)
            _contexts[key] = context
        return _contexts[key]


def warm_up(url: str | None) -> threading.Thread:
    """Import GX and create the context for `url` (None: the Spark datasource's) in a
    background thread.

    The dbt asset starts this once dbt runs in its own process, so the import's seconds of CPU
    overlap dbt instead of following it (started earlier, the GIL serialises it with Dagster's own
    start-up). The suites wait for it (the context lock); if it fails they create the context
    again and report the error themselves.
    """

    def create() -> None:
        try:
            _context(url) if url else _spark_context()
        except Exception:  # noqa: BLE001 - reported by the suite that needs the context
            pass

    thread = threading.Thread(target=create, name="costwatch-gx-warm-up", daemon=True)
    thread.start()
    return thread


def _batch(context, suite: Suite, settings: CheckSettings):
    datasource = context.data_sources.get(DATASOURCE)
    query = suite.batch_query(settings.window_hours)
    existing = {asset.name: asset for asset in datasource.assets}
    asset = existing.get(suite.name)
    wanted = (query, None, None) if query else (None, suite.schema, suite.table)
    if asset is not None and _asset_target(asset) != wanted:
        datasource.delete_asset(suite.name)  # the window setting or the suite's table changed
        asset = None
    if asset is None:
        if query is None:
            asset = datasource.add_table_asset(
                suite.name, table_name=suite.table, schema_name=suite.schema
            )
        else:
            asset = datasource.add_query_asset(suite.name, query=query)
    try:
        definition = asset.get_batch_definition("whole")
    except KeyError:
        definition = asset.add_batch_definition_whole_table("whole")
    return definition.get_batch()


def _asset_target(asset) -> tuple[str | None, str | None, str | None]:
    return (
        getattr(asset, "query", None),
        getattr(asset, "schema_name", None),
        getattr(asset, "table_name", None),
    )


def _gx_suite(suite: Suite, indexed: list[tuple[int, dict[str, Any]]]):
    """A GX suite of some of the file's expectations, each tagged with its index in the file
    (GX does not keep the order of results)."""
    before_gx_import()
    # Start-up time: as in _context.
    from great_expectations.core import ExpectationSuite

    expectations = [{**e, "meta": {**(e.get("meta") or {}), INDEX_META: i}} for i, e in indexed]
    return ExpectationSuite(
        name=suite.name, expectations=expectations, meta=suite.document.get("meta")
    )


def _validate(batch, suite, indexed, parameters, result_format) -> dict[int, dict[str, Any]]:
    if not indexed:
        return {}
    validation = batch.validate(
        _gx_suite(suite, indexed), expectation_parameters=parameters, result_format=result_format
    )
    out = {}
    for result in validation.results:
        as_dict = result.to_json_dict()
        out[int(as_dict["expectation_config"]["meta"].pop(INDEX_META))] = as_dict
    return out


def _run(batch, suite: Suite, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate in two rounds, so that clean data costs one cheap round.

    Round 1: column expectations for their verdict only (BOOLEAN_ONLY: GX folds them into a few
    aggregate queries and fetches no sample); row-count and unexpected-rows expectations in full
    (their observed value is one query). Round 2: only the failed column expectations again,
    with counts and a sample of offending values (SUMMARY).
    """
    indexed = list(enumerate(suite.document["expectations"]))
    full = [(i, e) for i, e in indexed if e["type"] in FULL_TYPES]
    columns = [(i, e) for i, e in indexed if e["type"] not in FULL_TYPES]
    results = _validate(batch, suite, full, parameters, COMPLETE)
    verdicts = _validate(batch, suite, columns, parameters, BOOLEAN)
    results.update(verdicts)
    failed = [(i, e) for i, e in columns if not verdicts[i].get("success")]
    results.update(_validate(batch, suite, failed, parameters, SUMMARY))
    return [results[i] for i, _ in indexed]


def validate_suite(
    url: str, suite: Suite, settings: CheckSettings, now: datetime | None = None
) -> SuiteOutcome:
    """Validate one suite on its batch; failures of GX itself become findings, never raise."""
    return _outcome(suite, settings, lambda: _batch(_context(url), suite, settings), now)


# --------------------------------------------------------------------------- on Spark
# The suites run on Spark through GX's Spark datasource, in the Spark session that built the
# marts, once dbt has finished (tests/support/spark_runner.py). Chosen over GX on the marts'
# Parquet files: a second session cannot open while dbt holds the Derby metastore, and a new one
# after dbt costs another JVM start (~20 s); GX's pandas datasource has no unexpected_rows
# (the cross-table rules), and its SQL datasource on DuckDB (duckdb-engine 0.17) cannot reflect a
# table under SQLAlchemy 2.1. On Databricks the same code runs in the job's own session.
SPARK_DATASOURCE = "costwatch_spark"
_RAW_TABLE = re.compile(r"\braw\.(inference_events|tool_calls|change_events)\b")
_AT_UTC = re.compile(r"\s+at\s+time\s+zone\s+'UTC'", re.IGNORECASE)
_FLOAT8 = re.compile(r"::float8\b", re.IGNORECASE)


def spark_sql(query: str, raw: str) -> str:
    """A suite's SQL (PostgreSQL's) as Spark SQL: the session's zone is UTC (profiles.yml), so
    `x at time zone 'UTC'` is `x` there (a timestamp is an instant shown in UTC either way), and
    `raw.<table>` is the Parquet folder the dbt sources read (COSTWATCH_SPARK_RAW), and
    `::float8` is `::double` (64-bit on both; Spark has no float8). Everything else in the
    suites is the same text on both engines (tests/test_engine_spark.py runs them)."""
    query = _FLOAT8.sub("::double", _AT_UTC.sub("", query))
    if "/" in raw or ":" in raw:  # a folder of Parquet folders, as the dbt sources read it
        return _RAW_TABLE.sub(lambda m: f"parquet.`{raw}/{m[1]}`", query)
    return _RAW_TABLE.sub(lambda m: f"{raw}.{m[1]}", query)  # catalog tables in schema `raw`


def _spark_context():
    return _cached_context(SPARK_DATASOURCE, lambda sources: sources.add_spark(SPARK_DATASOURCE))


def _spark_batch(spark, suite: Suite, settings: CheckSettings, raw: str):  # noqa: ANN001
    query = (
        suite.batch_query(settings.window_hours) or f"select * from {suite.schema}.{suite.table}"
    )
    frame = spark.sql(spark_sql(query, raw))
    if suite.recent_window_column:
        # pyspark returns a TIMESTAMP as a naive datetime in the Python process's zone; as
        # TIMESTAMP_NTZ (the session zone, UTC) it is the UTC wall clock, whatever that zone is,
        # and the wall-clock bounds are given as naive UTC (_naive_utc).
        column = suite.recent_window_column
        frame = frame.withColumn(column, frame[column].cast("timestamp_ntz"))
    datasource = _spark_context().data_sources.get(SPARK_DATASOURCE)
    existing = {asset.name: asset for asset in datasource.assets}
    asset = existing.get(suite.name) or datasource.add_dataframe_asset(suite.name)
    try:
        definition = asset.get_batch_definition("whole")
    except KeyError:
        definition = asset.add_batch_definition_whole_dataframe("whole")
    return definition.get_batch(batch_parameters={"dataframe": frame})


def validate_suite_on_spark(
    spark,  # noqa: ANN001 (pyspark's SparkSession: not imported here)
    suite: Suite,
    settings: CheckSettings,
    raw: str,
    now: datetime | None = None,
) -> SuiteOutcome:
    """Validate one suite on the Spark tables (marts in the session's catalog, raw tables from
    `raw`, COSTWATCH_SPARK_RAW), with the suite's unexpected-rows SQL through spark_sql."""
    expectations = [_spark_expectation(e, raw) for e in suite.document["expectations"]]
    spark_suite = replace(suite, document={**suite.document, "expectations": expectations})
    return _outcome(
        spark_suite,
        settings,
        lambda: _spark_batch(spark, spark_suite, settings, raw),
        now,
        convert=_naive_utc,
    )


def _naive_utc(parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value
        for name, value in parameters.items()
    }


def _spark_expectation(expectation: dict[str, Any], raw: str) -> dict[str, Any]:
    kwargs = expectation.get("kwargs") or {}
    if "unexpected_rows_query" not in kwargs:
        return expectation
    query = spark_sql(kwargs["unexpected_rows_query"], raw)
    return {**expectation, "kwargs": {**kwargs, "unexpected_rows_query": query}}


def _outcome(
    suite: Suite,
    settings: CheckSettings,
    batch_of: Callable[[], Any],
    now: datetime | None,
    convert: Callable[[dict[str, Any]], dict[str, Any]] = lambda parameters: parameters,
) -> SuiteOutcome:
    """Validate `suite` on the batch `batch_of` returns; GX's own failures become findings."""
    started = time.monotonic()
    batch_text = suite.batch_description(settings.window_hours)
    evaluated = len(suite.document["expectations"])
    try:
        batch = batch_of()
        parameters = convert(settings.parameters(now))
        results = _run(batch, suite, parameters)
    except Exception as err:  # GX raises many types; the check must still report
        message = str(err).strip().splitlines()
        return SuiteOutcome(
            suite=suite.name,
            evaluated=evaluated,
            findings=[
                Finding(
                    expectation="(suite could not run)",
                    type="error",
                    column=None,
                    error=f"{type(err).__name__}: {message[0] if message else ''}"[:500],
                )
            ],
            rows=None,
            seconds=time.monotonic() - started,
            batch=batch_text,
        )
    rows = None
    findings = []
    for result in results:
        body = result.get("result") or {}
        if result["expectation_config"]["type"] == "expect_table_row_count_to_be_between":
            rows = body.get("observed_value")
        elif rows is None and body.get("element_count") is not None:
            rows = body["element_count"]
        if not result.get("success"):
            findings.append(finding_from_result(result))
    return SuiteOutcome(
        suite=suite.name,
        evaluated=evaluated,
        findings=findings,
        rows=rows,
        seconds=time.monotonic() - started,
        batch=batch_text,
    )

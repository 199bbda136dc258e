"""Run suites with Great Expectations 1.x, as SQL on PostgreSQL (GX's SQL datasource).

GX is imported here, lazily: importing it costs seconds, and definitions must load fast. One
ephemeral context (nothing written to disk) per process and database serves every suite of a
pass; its SQLAlchemy engine is reused between suites.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import datetime
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
    with _lock:
        if url not in _contexts:
            before_gx_import()
            # Start-up time (GX takes seconds to import), and after its analytics are off.
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            logging.getLogger("great_expectations").setLevel(logging.WARNING)
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            context.data_sources.add_postgres(DATASOURCE, connection_string=sqlalchemy_url(url))
            _contexts[url] = context
        return _contexts[url]


def warm_up(url: str) -> threading.Thread:
    """Import GX and create the context for `url` in a background thread.

    The dbt asset starts this once dbt runs in its own process, so the import's seconds of CPU
    overlap dbt instead of following it (started earlier, the GIL serialises it with Dagster's own
    start-up). The suites wait for it (the context lock); if it fails they create the context
    again and report the error themselves.
    """

    def create() -> None:
        try:
            _context(url)
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
    started = time.monotonic()
    batch_text = suite.batch_description(settings.window_hours)
    evaluated = len(suite.document["expectations"])
    try:
        context = _context(url)
        batch = _batch(context, suite, settings)
        parameters = settings.parameters(now)
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

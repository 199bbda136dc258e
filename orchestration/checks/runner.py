"""Run suites with Great Expectations 1.x, as SQL on PostgreSQL (GX's SQL datasource).

GX is imported here, lazily: importing it costs seconds, and definitions must load fast. One
ephemeral context (nothing written to disk) per process and database serves every suite of a
pass; its SQLAlchemy engine is reused between suites.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Any

from orchestration.checks.results import Finding, SuiteOutcome, finding_from_result
from orchestration.checks.suites import CheckSettings, Suite
from orchestration.database import validate_url

DATASOURCE = "costwatch"
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


def _context(url: str):
    """The process's GX context for `url`, created once."""
    with _lock:
        if url not in _contexts:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            logging.getLogger("great_expectations").setLevel(logging.WARNING)
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            context.data_sources.add_postgres(DATASOURCE, connection_string=sqlalchemy_url(url))
            _contexts[url] = context
        return _contexts[url]


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


def _expectation_suite(suite: Suite, types: set[str] | None, exclude: bool):
    from great_expectations.core import ExpectationSuite

    chosen = [
        e
        for e in suite.document["expectations"]
        if types is None or ((e["type"] in types) != exclude)
    ]
    if not chosen:
        return None
    return ExpectationSuite(name=suite.name, expectations=chosen, meta=suite.document.get("meta"))


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
        rows_types = {"unexpected_rows_expectation"}
        results: list[dict[str, Any]] = []
        for part, result_format in (
            (_expectation_suite(suite, rows_types, exclude=True), SUMMARY),
            (_expectation_suite(suite, rows_types, exclude=False), COMPLETE),
        ):
            if part is None:
                continue
            validation = batch.validate(
                part, expectation_parameters=parameters, result_format=result_format
            )
            results += [r.to_json_dict() for r in validation.results]
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
        if rows is None and body.get("element_count") is not None:
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

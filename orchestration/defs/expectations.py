"""Great Expectations suites (`expectations/*.json`) as Dagster asset checks.

Two multi-asset checks, so that GX starts once per group and not once per asset:
- `raw_expectations`: suites on the raw external assets, severity WARN. They do not depend on
  any asset, so they run at the start of a pass (staging quarantines what they find).
- `mart_expectations`: suites on dbt marts, severity ERROR; each runs after its mart is built.
Both can be subset, so a run of one mart runs only that mart's suite. On Spark the same suites
run on the Spark tables (`suite_validator`).
"""

from collections.abc import Callable, Iterator, Sequence

import dagster as dg

from orchestration.core.config import Config
from orchestration.core.engine import spark_raw
from orchestration.defs.resources import PostgresResource
from orchestration.runbook.expectations.results import SuiteOutcome, markdown_table, summary_line
from orchestration.runbook.expectations.runner import validate_suite, validate_suite_on_spark
from orchestration.runbook.expectations.suites import CHECK_NAME, CheckSettings, Suite, load_suites

__all__ = ["build_expectation_checks", "expectation_checks", "outcome_to_check_result"]


def outcome_to_check_result(suite: Suite, outcome: SuiteOutcome) -> dg.AssetCheckResult:
    """The result as the Dagster UI shows it: verdict, failed expectations, counts, samples."""
    severity = dg.AssetCheckSeverity[suite.severity]
    metadata: dict[str, dg.RawMetadataValue] = {
        "suite": dg.MetadataValue.path(str(suite.path.relative_to(suite.path.parent.parent))),
        "batch": outcome.batch,
        "rows_checked": outcome.rows if outcome.rows is not None else -1,
        "expectations_evaluated": outcome.evaluated,
        "expectations_failed": len(outcome.findings),
        "seconds": round(outcome.seconds, 3),
        # Same name as dagster-dbt's, so `costwatch run --json` times the suites like dbt tests.
        "Execution Duration": round(outcome.seconds, 3),
        "summary": summary_line(outcome),
    }
    if outcome.findings:
        metadata["failed_expectations"] = dg.MetadataValue.md(markdown_table(outcome.findings))
        metadata["findings"] = dg.MetadataValue.json([f.as_dict() for f in outcome.findings])
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(list(suite.asset_key)),
        check_name=CHECK_NAME,
        passed=outcome.passed,
        severity=severity,
        metadata=metadata,
        description=summary_line(outcome),
    )


def _spec(suite: Suite) -> dg.AssetCheckSpec:
    kind = "warns" if suite.severity == "WARN" else "fails"
    return dg.AssetCheckSpec(
        name=CHECK_NAME,
        asset=dg.AssetKey(list(suite.asset_key)),
        description=(
            f"Great Expectations suite {suite.path.name} ({len(suite.expectation_types)} "
            f"expectations; {kind} when one fails). {suite.description}"
        ).strip(),
    )


def _make_check(name: str, suites: Sequence[Suite], description: str):
    by_key = {dg.AssetCheckKey(dg.AssetKey(list(s.asset_key)), CHECK_NAME): s for s in suites}

    @dg.multi_asset_check(
        name=name,
        specs=[_spec(s) for s in suites],
        can_subset=True,
        description=description,
    )
    def _check(
        context: dg.AssetCheckExecutionContext, database: PostgresResource
    ) -> Iterator[dg.AssetCheckResult]:
        settings = database.check_settings()
        validate = suite_validator(database.settings)
        for key in sorted(context.selected_asset_check_keys, key=lambda k: k.to_user_string()):
            suite = by_key[key]
            outcome = validate(suite, settings)
            log = context.log.info if outcome.passed else context.log.warning
            log(f"{summary_line(outcome)} ({outcome.seconds:.2f}s)")
            yield outcome_to_check_result(suite, outcome)

    return _check


def suite_validator(config: Config) -> Callable[[Suite, CheckSettings], SuiteOutcome]:
    """How this configuration's suites run: GX's SQL datasource on PostgreSQL; on Spark GX's
    Spark datasource in this process's own session over the marts' Parquet (its catalog in
    memory: dbt's Derby metastore is never opened), the raw tables from COSTWATCH_SPARK_RAW."""
    if config.engine != "spark":
        url = config.require_database()
        return lambda suite, settings: validate_suite(url, suite, settings)
    # Start-up time: pyspark, pyarrow and DuckDB load only when the suites run on Spark.
    from orchestration.core.spark_session import marts_session

    spark = marts_session(config.environ)
    raw = spark_raw(config.environ)
    return lambda suite, settings: validate_suite_on_spark(spark, suite, settings, raw)


def build_expectation_checks(suites: Sequence[Suite] | None = None) -> list:
    """One multi-asset check for the raw suites (WARN), one for the mart suites (ERROR)."""
    suites = load_suites() if suites is None else list(suites)
    raw = [s for s in suites if s.severity == "WARN"]
    marts = [s for s in suites if s.severity == "ERROR"]
    checks = []
    if raw:
        checks.append(
            _make_check(
                "raw_expectations",
                raw,
                "Great Expectations on the raw tables (recent window); findings warn.",
            )
        )
    if marts:
        checks.append(
            _make_check(
                "mart_expectations",
                marts,
                "Great Expectations on the marts, after they are built; findings are errors.",
            )
        )
    return checks


def raw_check_asset_keys(suites: Sequence[Suite] | None = None) -> list[dg.AssetKey]:
    suites = load_suites() if suites is None else list(suites)
    return [dg.AssetKey(list(s.asset_key)) for s in suites if s.severity == "WARN"]


expectation_checks = build_expectation_checks()

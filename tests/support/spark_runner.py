"""`python -m tests.support.spark_runner SPEC.json`: a full build, then an incremental pass, on
local Spark in one process, so one JVM serves both (dbt-spark's session is the process's
SparkSession: the second invocation reuses it). Between the two, the raw folder is replaced with
the next raw state, and the day partitions of the daily marts are recorded (newest file's mtime)
before and after the pass. The environment (COSTWATCH_ENGINE=spark, COSTWATCH_HOME,
COSTWATCH_SPARK_RAW) comes from the caller, tests/support/spark.py.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from dbt.cli.main import dbtRunner


def partitions(folder: Path) -> dict[str, int]:
    """day=... folder -> newest mtime (ns) of its files."""
    out = {}
    for part in sorted(folder.glob("day=*")):
        out[part.name] = max((f.stat().st_mtime_ns for f in part.iterdir()), default=0)
    return out


def main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    runner = dbtRunner()
    common = ["--project-dir", spec["project"], "--profiles-dir", spec["project"]]
    select = ["--select", spec["select"]]
    built = runner.invoke(
        ["build", *common, *select, "--resource-type", "seed", "--resource-type", "model"]
    )
    if not built.success:
        return 1
    warehouse = Path(spec["warehouse"])
    before = {name: partitions(warehouse / name) for name in spec["daily_marts"]}
    raw = Path(spec["raw"])
    shutil.rmtree(raw)
    shutil.copytree(spec["raw_next"], raw)
    passed = runner.invoke(["run", *common, *select])
    if not passed.success:
        return 1
    after = {name: partitions(warehouse / name) for name in spec["daily_marts"]}
    report = {"before": before, "after": after}
    if spec.get("now"):
        report["suites"] = run_suites(raw, datetime.fromisoformat(spec["now"]))
    Path(spec["report"]).write_text(json.dumps(report))
    return 0


def run_suites(raw: Path, now: datetime) -> dict[str, dict]:
    """Every expectation suite through GX's Spark datasource, in the session dbt used (it has
    finished: no second JVM, no second metastore client), on the final marts and raw folder;
    then the cost_hourly suite on a broken copy (one hour twice), which must find it."""
    from pyspark.sql import SparkSession

    from orchestration.runbook.expectations.runner import validate_suite_on_spark
    from orchestration.runbook.expectations.suites import CheckSettings, load_suites

    spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
    settings = CheckSettings()
    out = {}
    suites = load_suites()
    for suite in suites:
        out[suite.name] = _outcome(validate_suite_on_spark(spark, suite, settings, str(raw), now))
    spark.sql(
        "create or replace global temp view cost_hourly_broken as select * from marts.cost_hourly"
        " union all (select * from marts.cost_hourly order by hour limit 1)"
    )
    cost_hourly = next(s for s in suites if s.name == "marts.cost_hourly")
    broken = replace(cost_hourly, schema="global_temp", table="cost_hourly_broken")
    out["broken cost_hourly"] = _outcome(
        validate_suite_on_spark(spark, broken, settings, str(raw), now)
    )
    return out


def _outcome(outcome) -> dict:  # noqa: ANN001 (SuiteOutcome)
    return {
        "evaluated": outcome.evaluated,
        "rows": outcome.rows,
        "seconds": round(outcome.seconds, 3),
        "findings": [f"{f.expectation}: {f.error or ''}".strip(": ") for f in outcome.findings],
        "details": [repr((f.observed_value, f.sample[:3]))[:300] for f in outcome.findings],
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""`python -m tests.support.spark_runner SPEC.json`: the cost_hourly suite on a broken copy of
the Spark mart (one hour twice), through the session the pass's suites use (in-memory catalog,
views over the warehouse's Parquet: orchestration/core/spark_session.py), in a process of its
own so the test process starts no JVM. The pass itself ran every suite on the clean marts.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path


def main(spec_file: str) -> int:
    from orchestration.core.spark_session import marts_session
    from orchestration.runbook.expectations.runner import validate_suite_on_spark
    from orchestration.runbook.expectations.suites import CheckSettings, load_suites

    spec = json.loads(Path(spec_file).read_text())
    spark = marts_session({"COSTWATCH_HOME": spec["home"]})
    spark.sql(
        "create or replace global temp view cost_hourly_broken as select * from marts.cost_hourly"
        " union all (select * from marts.cost_hourly order by hour limit 1)"
    )
    cost_hourly = next(s for s in load_suites() if s.name == "marts.cost_hourly")
    broken = replace(cost_hourly, schema="global_temp", table="cost_hourly_broken")
    outcome = validate_suite_on_spark(
        spark, broken, CheckSettings(), spec["raw"], datetime.fromisoformat(spec["now"])
    )
    report = {
        "rows": outcome.rows,
        "findings": [f"{f.expectation}: {f.error or ''}".strip(": ") for f in outcome.findings],
    }
    Path(spec["report"]).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

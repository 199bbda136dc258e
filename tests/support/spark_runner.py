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
    Path(spec["report"]).write_text(json.dumps({"before": before, "after": after}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

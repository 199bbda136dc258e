"""Where the dbt project runs (CONTRACT section 10): PostgreSQL, or Spark through dbt-spark.

On Spark the raw tables are Parquet folders under `COSTWATCH_SPARK_RAW` (or catalog tables it
names) and the marts are tables in the session's warehouse (`$COSTWATCH_HOME/spark/warehouse`,
Parquet, the daily marts partitioned by day). Python reads those marts' Parquet files directly
(pyarrow), never through a second Spark session: the embedded Derby metastore admits one JVM,
and dbt holds it while it runs (../shared/SPARK.md). Incidents, alerts, actions and Dagster's
storage stay in PostgreSQL on either engine: after a Spark build the pass copies the marts the
incident step and the triage report read into PostgreSQL (orchestration/defs/decision_marts.py).
The files themselves (pyarrow, DuckDB: slow to
import) are orchestration/core/spark_files.py's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestration.core.database import PROJECT_ROOT

ENGINES = ("postgres", "spark")
RAW_TABLES = ("inference_events", "tool_calls", "change_events")


class EngineError(ValueError):
    """A setting of the engine that cannot be used (one line, for the CLI)."""


def engine_name(environ: Mapping[str, str] | None = None) -> str:
    """`COSTWATCH_ENGINE`, checked: postgres (the default) or spark."""
    environ = os.environ if environ is None else environ
    name = (environ.get("COSTWATCH_ENGINE") or "postgres").strip().lower()
    if name not in ENGINES:
        raise EngineError(f"COSTWATCH_ENGINE must be one of {', '.join(ENGINES)}, got {name!r}")
    return name


def spark_home(environ: Mapping[str, str] | None = None) -> Path:
    """The local Spark session's folder (profiles.yml: warehouse and metastore), under
    COSTWATCH_HOME as the configuration has it (default: the project's `.costwatch/`)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("COSTWATCH_HOME") or PROJECT_ROOT / ".costwatch").resolve() / "spark"


def spark_raw(environ: Mapping[str, str] | None = None) -> str:
    """`COSTWATCH_SPARK_RAW`: a folder of Parquet folders (made absolute), or a schema name."""
    environ = os.environ if environ is None else environ
    value = (environ.get("COSTWATCH_SPARK_RAW") or "").strip()
    if not value:
        raise EngineError(
            "COSTWATCH_ENGINE=spark needs COSTWATCH_SPARK_RAW: a folder holding inference_events/,"
            " tool_calls/ and change_events/ as Parquet, or the schema of those tables"
        )
    if "://" in value or ":/" in value:
        return value  # s3://, abfss://, dbfs:/ ...: the cluster resolves it
    if "/" in value or value.startswith("."):
        folder = Path(value).resolve()
        missing = [t for t in RAW_TABLES if not (folder / t).is_dir()]
        if missing:
            raise EngineError(
                f"COSTWATCH_SPARK_RAW={value}: no {', '.join(m + '/' for m in missing)} folder"
                " of Parquet files there"
            )
        return str(folder)
    return value


def dbt_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables profiles.yml and the sources read on Spark (absolute paths)."""
    environ = os.environ if environ is None else environ
    if engine_name(environ) != "spark":
        return {}
    return {
        "COSTWATCH_ENGINE": "spark",
        "COSTWATCH_SPARK_RAW": spark_raw(environ),
        "COSTWATCH_HOME": str(spark_home(environ).parent),
    }


# The models not ported to Spark yet, left out of the Spark pass (dbt `--exclude` syntax; their
# tests go with them). The one place to shorten as models are ported; empty: Spark builds all.
SPARK_NOT_PORTED: tuple[str, ...] = (
    "path:models/intermediate/diagnosis",
    "spike_diagnosis",
    "path:models/marts/triage",
    "path:models/marts/providers",
    "stg_model_prices",
    "cause_catalogue",
)

# On Spark, what the pass copies into PostgreSQL after the build: every mart that
# orchestration/runbook/incidents and orchestration/runbook/triage read (`grep -o
# "marts\.[a-z_]*"` there), by name in schema `marts` (orchestration/defs/decision_marts.py).
DECISION_MARTS = (
    "cost_baseline_hourly",
    "cost_spikes",
    "spike_diagnosis",
    "feature_cost_baseline_hourly",
    "spike_summary",
    "spike_causes",
    "spike_runbook_steps",
    "cost_hourly",
    "feature_cost_hourly",
    "recompute_hourly",
    "tokens_hourly",
    "tool_failures_hourly",
    "trigger_hourly",
)


def check_engine(environ: Mapping[str, str] | None = None) -> str:
    """The engine, with what it needs checked before anything runs (one line when unusable):
    on Spark, the raw tables' folder or schema."""
    name = engine_name(environ)
    if name == "spark":
        spark_raw(environ)
    return name

"""Where the dbt project runs (CONTRACT section 10): PostgreSQL, or Spark through dbt-spark.

On Spark the raw tables are Parquet folders under `COSTWATCH_SPARK_RAW` (or catalog tables it
names) and the marts are tables in the session's warehouse (`$COSTWATCH_HOME/spark/warehouse`,
Parquet, the daily marts partitioned by day). Python reads those marts' Parquet files directly
(pyarrow), never through a second Spark session: the embedded Derby metastore admits one JVM,
and dbt holds it while it runs (../shared/SPARK.md). Incidents, alerts, actions and Dagster's
storage stay in PostgreSQL on either engine.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ENGINES = ("postgres", "spark")
RAW_TABLES = ("inference_events", "tool_calls", "change_events")
# Spark's name for a null partition value (a data_quality_daily row without a day).
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


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
    """The local Spark session's folder (profiles.yml: warehouse and metastore)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("COSTWATCH_HOME") or ".costwatch").resolve() / "spark"


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


# --------------------------------------------------------------------------- raw Parquet

# The contract's raw columns (orchestration/sql/init.sql) as Arrow types. Timestamps in
# microseconds (Spark refuses pandas' nanoseconds); costs as doubles (the models compute in
# doubles on Spark: macros/engine/as_cost.sql).
_TS = pa.timestamp("us", tz="UTC")
RAW_SCHEMAS: dict[str, pa.Schema] = {
    "inference_events": pa.schema(
        [
            ("event_id", pa.string()),
            ("created_at", _TS),
            ("user_id", pa.string()),
            ("session_id", pa.string()),
            ("feature", pa.string()),
            ("trigger_type", pa.string()),
            ("model", pa.string()),
            ("input_tokens", pa.int32()),
            ("output_tokens", pa.int32()),
            ("cost_usd", pa.float64()),
            ("user_agent", pa.string()),
            ("cached_input_tokens", pa.int32()),
            ("cache_write_tokens", pa.int32()),
            ("reasoning_tokens", pa.int32()),
            ("provider", pa.string()),
            ("cost_source", pa.string()),
        ]
    ),
    "tool_calls": pa.schema(
        [
            ("call_id", pa.string()),
            ("created_at", _TS),
            ("event_id", pa.string()),
            ("feature", pa.string()),
            ("tool_name", pa.string()),
            ("success", pa.bool_()),
            ("retries", pa.int32()),
            ("latency_ms", pa.int32()),
        ]
    ),
    "change_events": pa.schema(
        [
            ("change_id", pa.string()),
            ("changed_at", _TS),
            ("kind", pa.string()),
            ("feature", pa.string()),
            ("description", pa.string()),
        ]
    ),
}


def export_raw_parquet(conn, folder: Path) -> dict[str, int]:  # noqa: ANN001 (psycopg)
    """Write PostgreSQL's raw tables as `folder/<table>/part-0.parquet` (replacing them): the
    same rows for Spark (tests, `make bench ENGINE=spark`). Returns the rows per table."""
    counts = {}
    for table, schema in RAW_SCHEMAS.items():
        columns = ", ".join(
            f"(extract(epoch from {f.name}) * 1000000)::bigint as {f.name}"
            if f.type == _TS
            else f.name
            for f in schema
        )
        target = folder / table
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("*.parquet"):
            old.unlink()
        read_types = {f.name: (pa.int64() if f.type == _TS else f.type) for f in schema}
        with tempfile.NamedTemporaryFile(suffix=".csv") as scratch:
            with conn.cursor().copy(
                f"copy (select {columns} from raw.{table}) to stdout with (format csv)"
            ) as copy:
                for chunk in copy:
                    scratch.write(chunk)
            scratch.flush()
            part = target / "part-0.parquet"
            rows = _csv_to_parquet(Path(scratch.name), schema, read_types, part)
        counts[table] = rows
    return counts


def _csv_to_parquet(source: Path, schema: pa.Schema, read_types: dict, target: Path) -> int:
    convert = pa_csv.ConvertOptions(
        column_types=read_types,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )
    read = pa_csv.ReadOptions(column_names=schema.names, block_size=64 << 20)
    rows = 0
    with pq.ParquetWriter(target, schema) as writer:
        if source.stat().st_size:
            reader = pa_csv.open_csv(source, read_options=read, convert_options=convert)
            for batch in reader:
                arrays = [
                    batch.column(i).cast(_TS) if f.type == _TS else batch.column(i)
                    for i, f in enumerate(schema)
                ]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                rows += batch.num_rows
        else:
            writer.write_table(schema.empty_table())
    return rows


# --------------------------------------------------------------------------- marts on Spark


def mart_folder(name: str, schema: str = "marts", environ: Mapping[str, str] | None = None) -> Path:
    """Where the local session's warehouse keeps a table's Parquet files."""
    return spark_home(environ) / "warehouse" / f"{schema}.db" / name


def read_mart(
    name: str, schema: str = "marts", environ: Mapping[str, str] | None = None
) -> pa.Table:
    """A Spark table of the local warehouse as an Arrow table. Spark keeps a partition column
    (`day`) as folder names, and last: it is typed back to a date here."""
    folder = mart_folder(name, schema, environ)
    if not folder.is_dir():
        raise EngineError(f"{schema}.{name} has not been built on Spark (no {folder})")
    partitions = sorted(
        {p.name.split("=", 1)[0] for p in folder.iterdir() if p.is_dir() and "=" in p.name}
    )
    files = ds.dataset(
        folder,
        format="parquet",
        partitioning=ds.partitioning(
            pa.schema([(p, pa.string()) for p in partitions]),
            flavor="hive",
        )
        if partitions
        else None,
    )
    table = files.to_table()
    for column in partitions:  # day=2026-03-01 (or Spark's null) back to a date
        index = table.schema.get_field_index(column)
        values = table.column(index)
        values = pc.if_else(pc.equal(values, HIVE_NULL), None, values)
        table = table.set_column(index, column, values.cast(pa.date32()))
    return table

"""The Spark engine's files: raw tables written as Parquet, and the local warehouse's marts
read back (pyarrow) and queried (DuckDB) without a Spark session (orchestration/core/engine.py
says why). Imported only on the Spark path: pyarrow and DuckDB take ~0.5 s to import.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from psycopg import sql
from psycopg.types.json import Jsonb

from orchestration.core.engine import EngineError, spark_home

# Spark's name for a null partition value (a data_quality_daily row without a day).
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


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


def spark_marts(environ: Mapping[str, str] | None = None) -> list[str]:
    """The marts the local Spark warehouse holds as Parquet (views have no files)."""
    folder = spark_home(environ) / "warehouse" / "marts.db"
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith((".", "_")) and any(p.rglob("*.parquet"))
    )


def query_spark_marts(
    query: str, timeout_seconds: float, environ: Mapping[str, str] | None = None
) -> tuple[list[str], Iterator[tuple]]:
    """One read-only query on the local Spark marts, in DuckDB over their Parquet files: every
    mart as a view in schema `marts` (first on the search path), then file access and the
    configuration locked, one SELECT statement only, cancelled after `timeout_seconds`.
    Returns the column names and the rows (fetched in batches)."""
    names = spark_marts(environ)
    if not names:
        raise EngineError(
            "no marts on Spark yet (nothing under"
            f" {spark_home(environ) / 'warehouse' / 'marts.db'}): `costwatch run` builds them"
        )
    con = duckdb.connect(":memory:")
    con.execute("create schema marts")
    for name in names:
        con.register(f"__arrow_{name}", read_mart(name, environ=environ))
        con.execute(f'create view marts."{name}" as select * from "__arrow_{name}"')
    con.execute("set search_path = 'marts,main'")
    con.execute("set enable_external_access = false")  # no files read or written by the query
    con.execute("set lock_configuration = true")
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as err:
        raise EngineError(_first(err)) from None
    if len(statements) != 1:
        raise EngineError("one statement only")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise EngineError("only queries are run: the marts are read-only")
    timer = threading.Timer(timeout_seconds, con.interrupt)
    timer.start()
    try:
        cursor = con.execute(query)
    except duckdb.InterruptException:
        timer.cancel()
        raise EngineError(f"the query ran longer than {timeout_seconds:g}s") from None
    except duckdb.Error as err:
        timer.cancel()
        raise EngineError(_first(err)) from None
    columns = [d[0] for d in cursor.description]

    def rows() -> Iterator[tuple]:
        try:
            while batch := cursor.fetchmany(2000):
                yield from batch
        except duckdb.InterruptException:
            raise EngineError(f"the query ran longer than {timeout_seconds:g}s") from None
        finally:
            timer.cancel()
            con.close()

    return columns, rows()


def _first(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


# --------------------------------------------------------------------------- copies in PostgreSQL


# Arrow's types as PostgreSQL's (the marts' own there: timestamptz hours, date days, numeric).
def _pg_type(kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_int8(kind) or pa.types.is_int16(kind):
        return "smallint"
    if pa.types.is_int32(kind):
        return "integer"
    if pa.types.is_integer(kind):
        return "bigint"
    if pa.types.is_float32(kind):
        return "real"
    if pa.types.is_floating(kind):
        return "double precision"
    if pa.types.is_decimal(kind):
        return "numeric"
    if pa.types.is_timestamp(kind):
        return "timestamptz" if kind.tz else "timestamp"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_nested(kind):
        return "jsonb"
    raise EngineError(f"a Spark mart column of type {kind} has no PostgreSQL type here")


def copy_marts_to_postgres(
    conn,
    names: tuple[str, ...],
    environ: Mapping[str, str] | None = None,  # noqa: ANN001
) -> dict[str, int | None]:
    """Replace PostgreSQL's `marts.<name>` with the Spark mart of that name (same columns,
    PostgreSQL's types) for every one of `names`, in one transaction of `conn` (committed by
    the caller); a name Spark has not built loses its stale copy. The marts are read before
    any table is touched, so the tables are locked only while they are written. Returns the
    rows copied per name (None: not built on Spark)."""
    built = set(spark_marts(environ))
    tables = {name: read_mart(name, environ=environ) for name in names if name in built}
    conn.execute("create schema if not exists marts")
    copied: dict[str, int | None] = {}
    for name in names:
        table = sql.Identifier("marts", name)
        conn.execute(sql.SQL("drop table if exists {}").format(table))
        data = tables.get(name)
        if data is None:
            copied[name] = None
            continue
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(_pg_type(f.type)))
            for f in data.schema
        )
        conn.execute(sql.SQL("create table {} ({})").format(table, columns))
        nested = {i for i, f in enumerate(data.schema) if pa.types.is_nested(f.type)}
        with conn.cursor().copy(sql.SQL("copy {} from stdin").format(table)) as copy:
            for batch in data.to_batches():
                for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                    if nested:
                        row = tuple(
                            Jsonb(v) if i in nested and v is not None else v
                            for i, v in enumerate(row)
                        )
                    copy.write_row(row)
        copied[name] = data.num_rows
    return copied

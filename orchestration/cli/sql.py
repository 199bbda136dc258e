"""`costwatch sql "SELECT ..." [--format table|csv|json]`: a read-only query on the marts.

With COSTWATCH_ENGINE=spark the marts are the local Spark warehouse's Parquet files, queried in
DuckDB in-process with file access and configuration locked, one SELECT only, the same formats
(orchestration/core/spark_files.py: query_spark_marts). Otherwise PostgreSQL, as follows.

For analysts and scripts. The query runs in a READ ONLY transaction with `marts` first on the
search path (`select * from cost_hourly` works), as one statement only (a server-side cursor's
DECLARE, or a prepared statement: `commit; delete ...` is refused whole), under a statement
timeout; anything that would write fails in one line and changes nothing. Rows stream out: a
CSV of a whole mart is not held in memory.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TextIO

import psycopg

from orchestration.cli.common import CostwatchError, positive_int
from orchestration.core.database import connect, first_line
from orchestration.core.embedded import database_url
from orchestration.core.engine import EngineError, engine_name

FORMATS = ("table", "csv", "json")
TABLE_ROWS_MAX = 10_000  # a terminal table past this is unreadable: use csv or json


def register(sub: argparse._SubParsersAction) -> None:
    sql = sub.add_parser(
        "sql",
        help="run a read-only query on the marts (analysts, scripts)",
        description="Run one read-only SQL statement on the marts of the engine in use "
        "(schema marts first on the search path) and print its rows.",
    )
    sql.add_argument("query", help='one SQL statement, e.g. "select * from cost_daily"')
    sql.add_argument(
        "--format", choices=FORMATS, default="table", help="table (default), csv or json"
    )
    sql.add_argument(
        "--timeout",
        type=positive_int,
        default=300,
        metavar="SECONDS",
        help="cancel the query after this many seconds (default 300)",
    )
    sql.set_defaults(handler=_cmd_sql)


def engine() -> str:
    try:
        return engine_name()
    except EngineError as err:
        raise CostwatchError(str(err)) from None


def reads_spark() -> bool:
    """Whether `costwatch sql` reads the Spark marts (no PostgreSQL to start)."""
    try:
        return engine_name() == "spark"
    except EngineError:
        return False


def _cmd_sql(args: argparse.Namespace) -> int:
    name = engine()
    query = args.query.strip().rstrip(";").strip()
    if not query:
        raise CostwatchError("no query given")
    if name == "spark":
        # pyarrow and DuckDB (~0.5 s): only when the Spark marts are queried.
        from orchestration.core.spark_files import query_spark_marts

        try:
            columns, rows = query_spark_marts(query, args.timeout)
            write(columns, rows, args.format, sys.stdout)
        except EngineError as err:
            raise CostwatchError(str(err)) from None
        return 0
    with connect(database_url()) as conn:
        conn.execute("set transaction read only")
        conn.execute("select set_config('search_path', 'marts, public', true)")
        conn.execute(
            "select set_config('statement_timeout', %s, true)", (f"{args.timeout * 1000}",)
        )
        streamed = _is_select(query)
        try:
            with conn.cursor(name="costwatch_sql") if streamed else conn.cursor() as cur:
                # A prepared statement is one statement: `commit; delete ...` is refused whole.
                cur.execute(query) if streamed else cur.execute(query, prepare=True)
                if cur.description is None:
                    raise CostwatchError("the statement returned no rows (only queries are run)")
                columns = [c.name for c in cur.description]
                write(columns, _rows(cur), args.format, sys.stdout)
        except psycopg.errors.QueryCanceled:
            raise CostwatchError(f"the query ran longer than {args.timeout}s") from None
        except psycopg.errors.UndefinedTable as err:
            raise CostwatchError(
                f"{first_line(err)} (the marts are in schema marts; `costwatch run` builds them)"
            ) from None
        conn.rollback()  # nothing to keep, even for a statement the server accepted
    return 0


def _is_select(query: str) -> bool:
    """Whether a server-side cursor can stream it (DECLARE takes a SELECT or VALUES only)."""
    first = query.split(None, 1)[0].lower() if query.split() else ""
    return first in ("select", "with", "values", "table")


def _rows(cur: psycopg.Cursor) -> Iterator[Sequence[Any]]:
    while True:
        batch = cur.fetchmany(2000)
        if not batch:
            return
        yield from batch


def write(columns: list[str], rows: Iterable[Sequence[Any]], fmt: str, out: TextIO) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else _csv(v) for v in row])
    elif fmt == "json":
        out.write("[")
        for i, row in enumerate(rows):
            record = {name: _json(value) for name, value in zip(columns, row, strict=True)}
            out.write(("," if i else "") + "\n  " + json.dumps(record, ensure_ascii=False))
        out.write("\n]\n")
    else:
        out.write(table(columns, rows))


def table(columns: list[str], rows: Iterable[Sequence[Any]]) -> str:
    """Aligned plain text (numbers to the right), then the row count, as psql prints it."""
    cells: list[list[str]] = []
    numeric = [True] * len(columns)
    for n, row in enumerate(rows):
        if n == TABLE_ROWS_MAX:
            raise CostwatchError(
                f"more than {TABLE_ROWS_MAX} rows: add a limit, or use --format csv or json"
            )
        cells.append(["" if v is None else _text(v) for v in row])
        for i, v in enumerate(row):
            if v is not None and not _is_number(v):
                numeric[i] = False
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str], header: bool = False) -> str:
        parts = [
            v.rjust(w) if numeric[i] and not header else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return " | ".join(parts).rstrip()

    out = [line(columns, header=True), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    out.append(f"({len(cells)} row{'' if len(cells) == 1 else 's'})")
    return "\n".join(out) + "\n"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _text(value: Any) -> str:
    """A value in the terminal table: as in the CSV, with control characters (which would move
    a terminal's cursor) shown escaped, never interpreted."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in _csv(value))


def _csv(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value

"""Writing ingested rows to the raw tables: COPY into a session temp table, then one insert that
skips ids already ingested. `app.ingested_ids` (a primary key on source and id) remembers every
id an ingester wrote, so a re-sent span, a re-read file or a second run of the same export is
never counted twice, even from two processes at once; the raw tables keep no constraint.
Rows without an id are written as they are (staging rejects them, counted)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from orchestration.ingest.mapping import INFERENCE_COLUMNS, TOOL_COLUMNS

TABLES = {
    "inference_events": ("event_id", INFERENCE_COLUMNS),
    "tool_calls": ("call_id", TOOL_COLUMNS),
}


@dataclass
class Written:
    inference_events: int = 0
    tool_calls: int = 0
    skipped: int = 0  # ids already ingested (re-sent)


class Store:
    """One connection, used by one thread at a time (the receiver's writer, or a file load)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, connect_timeout=5)
            with self._conn.transaction():
                for table, (_, columns) in TABLES.items():
                    self._conn.execute(
                        f"create temp table incoming_{table} on commit delete rows as"
                        f" select {', '.join(columns)} from raw.{table} with no data"
                    )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, inference: Sequence[tuple], tools: Sequence[tuple]) -> Written:
        """Store rows in one transaction; on any database error nothing is stored and the
        connection is dropped (the next write reconnects)."""
        written = Written()
        try:
            conn = self._connection()
            with conn.transaction():
                for table, rows in (("inference_events", inference), ("tool_calls", tools)):
                    if rows:
                        added = self._insert(conn, table, rows)
                        setattr(written, table, added)
                        written.skipped += len(rows) - added
        except psycopg.Error:
            self.close()
            raise
        return written

    @staticmethod
    def _insert(conn: psycopg.Connection, table: str, rows: Sequence[tuple]) -> int:
        key, columns = TABLES[table]
        names = ", ".join(columns)
        with conn.cursor() as cur:
            with cur.copy(f"copy incoming_{table} ({names}) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(
                f"""
                with batch as (
                    select distinct on ({key}) * from incoming_{table}
                    where {key} is not null
                    order by {key}
                ),
                fresh as (
                    insert into app.ingested_ids (source, id)
                    select '{table}', {key} from batch
                    on conflict do nothing
                    returning id
                )
                insert into raw.{table} ({names})
                select {names} from batch where {key} in (select id from fresh)
                union all
                select {names} from incoming_{table} where {key} is null
                """
            )
            return cur.rowcount

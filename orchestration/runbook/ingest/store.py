"""Writing ingested rows to the raw tables: COPY into a session temp table, then one insert
that skips the rows whose id the raw table already holds at the same created_at (its
created_at index finds them; a re-sent span keeps its start time, a re-read file its rows). The
raw tables keep no constraint: writers take one advisory lock per transaction, so two ingesters
(the receiver, `costwatch ingest`) never insert the same id at once. Rows without an id are
written as they are (staging rejects them, counted)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from orchestration.runbook.ingest.mapping import INFERENCE_COLUMNS, TOOL_COLUMNS

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
        seen: set[str] = set()
        with conn.cursor() as cur:
            with cur.copy(f"copy incoming_{table} ({names}) from stdin") as copy:
                for row in rows:  # one copy of an id per batch (the first); the id is column 0
                    if row[0] is not None:
                        if row[0] in seen:
                            continue
                        seen.add(row[0])
                    copy.write_row(row)
            cur.execute("select pg_advisory_xact_lock(hashtext('costwatch.ingest'))")
            cur.execute(
                f"""
                insert into raw.{table} ({names})
                select {names} from incoming_{table} as batch
                where
                    batch.{key} is null
                    or (
                        batch.created_at is not null
                        and not exists (
                            select 1 from raw.{table} as stored
                            where stored.created_at = batch.created_at
                                and stored.{key} = batch.{key}
                        )
                    )
                    or (
                        batch.created_at is null
                        and not exists (
                            select 1 from raw.{table} as stored
                            where stored.created_at is null and stored.{key} = batch.{key}
                        )
                    )
                """
            )
            return cur.rowcount

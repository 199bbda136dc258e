"""After a failed pass: the scratch relations dbt left behind, dropped so analysts see only the
marts (the next pass's dbt would drop them too)."""

from __future__ import annotations

import contextlib
import time

import psycopg
import psycopg.sql

from orchestration.core import locks
from orchestration.core.database import DatabaseError, connect
from orchestration.core.locks import PASS_LOCK_KEY

# dbt's scratch relations: `<model>__dbt_tmp` (being built) and `<model>__dbt_backup` (the old
# one, dropped by dbt only after its commit: a pass killed in between leaves it behind).
DBT_SCRATCH = r"__dbt_(tmp|backup)$"
DBT_SCHEMAS = ("staging", "intermediate", "marts")


def drop_dbt_leftovers(url: str, wait_seconds: float = 15.0) -> list[str]:
    """After a failed pass: drop the scratch relations dbt left in costwatch's schemas, so that
    analysts see only the marts. Only when no pass runs (the pass lock, tried, never waited for);
    the database may be coming back from a restart, so connecting is retried for a while. Best
    effort: the next pass's dbt drops them too. Returns what was dropped."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            conn = connect(url)  # one transaction: the lock, then the drops
            break
        except DatabaseError:
            if time.monotonic() >= deadline:
                return []
            time.sleep(0.5)
    dropped: list[str] = []
    with conn, contextlib.suppress(psycopg.Error):
        if not locks.try_lock(conn, PASS_LOCK_KEY):  # held by this transaction until it ends
            return []
        rows = conn.execute(
            "select n.nspname, c.relname, c.relkind from pg_class as c"
            " join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = any(%s) and c.relname ~ %s and c.relkind in ('r', 'v', 'm')",
            (list(DBT_SCHEMAS), DBT_SCRATCH),
        ).fetchall()
        for schema, name, kind in rows:
            what = {"r": "table", "v": "view", "m": "materialized view"}[kind]
            conn.execute(
                psycopg.sql.SQL("drop {} if exists {} cascade").format(
                    psycopg.sql.SQL(what), psycopg.sql.Identifier(schema, name)
                )
            )
            dropped.append(f"{schema}.{name}")
    return dropped

"""Locks that serialise passes and incident steps, where analysts cannot take them.

A PostgreSQL advisory lock is open to every role that can connect: an analyst holding
`pg_advisory_lock(hashtext('costwatch.pass'))` would stall every pass. These locks are rows of
`ops.locks`, locked `for update` by a transaction held for the lock's lifetime; `for update` needs
the UPDATE privilege on `ops.locks`, which only costwatch's own role has (analysts get no access
to the `ops` schema at all). Closing the connection, or the session dying, releases it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psycopg

from orchestration.core.database import connect

_DDL = (
    "create schema if not exists ops; create table if not exists ops.locks (name text primary key)"
)


def _ensure(conn: psycopg.Connection, name: str) -> None:
    try:
        conn.execute("insert into ops.locks (name) values (%s) on conflict do nothing", (name,))
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        conn.execute(_DDL)
        conn.execute("insert into ops.locks (name) values (%s) on conflict do nothing", (name,))
    conn.commit()


def try_lock(conn: psycopg.Connection, name: str) -> bool:
    """Take `name` in `conn`'s open transaction (held until it ends), or False if taken."""
    row = conn.execute(
        "select 1 from ops.locks where name = %s for update skip locked", (name,)
    ).fetchone()
    if row is None:
        conn.rollback()
    return row is not None


@contextlib.contextmanager
def held(url: str, name: str, wait_seconds: float, poll: float = 0.2) -> Iterator[bool]:
    """Hold the lock `name` (True), waiting up to `wait_seconds`; False when it stayed taken."""
    conn = connect(url)
    try:
        _ensure(conn, name)
        deadline = time.monotonic() + wait_seconds
        while not try_lock(conn, name):
            if time.monotonic() >= deadline:
                yield False
                return
            time.sleep(poll)
        yield True
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()  # ends the transaction, releasing the lock


PASS_LOCK_KEY = "costwatch.pass"


class PassError(RuntimeError):
    """The pass could not run; the message is the one line the user sees."""


# Databases whose pass lock this process holds: a pass's own steps (the dbt resource) re-enter it.
_held: dict[str, int] = {}


@contextlib.contextmanager
def pass_lock(url: str, wait_seconds: float) -> Iterator[None]:
    """Hold the pass's lock, waiting up to `wait_seconds` for another pass to end.

    Re-entrant within a process: `costwatch run` takes it for the whole pass, and the dbt
    resource (which a `dagster dev` run initialises in its own process) takes it again.
    """
    if _held.get(url):
        _held[url] += 1
        try:
            yield
        finally:
            _held[url] -= 1
        return
    # A row of ops.locks, out of analysts' reach (orchestration/core/locks.py).
    with held(url, PASS_LOCK_KEY, wait_seconds, poll=0.5) as got:
        if not got:
            raise PassError(
                f"another costwatch pass is running on this database "
                f"(waited {wait_seconds:.0f}s); try again when it ends"
            )
        _held[url] = 1
        try:
            yield
        finally:
            _held.pop(url, None)

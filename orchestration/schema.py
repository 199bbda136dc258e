"""`costwatch db init` and `db grant-analyst`: costwatch's own tables and who may read what."""

from __future__ import annotations

import re
from importlib import resources

from psycopg import sql

from orchestration.database import DatabaseError, connect

INIT_SQL = resources.files("orchestration") / "sql" / "init.sql"
_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")


def init_database(url: str) -> None:
    """Create the raw, app and ops schemas and tables if missing; never drop or rewrite data."""
    with connect(url) as conn:
        # Two `db init` at once must not race on `create ... if not exists`.
        conn.execute("select pg_advisory_xact_lock(hashtext('costwatch.db_init'))")
        conn.execute(INIT_SQL.read_text())


def grant_analyst(url: str, role: str) -> None:
    """Give `role` read access to the marts only: not raw (user ids), not app, not ops."""
    if not _ROLE_NAME.match(role):
        raise DatabaseError(f"not a valid role name: {role!r}")
    ident = sql.Identifier(role)
    with connect(url) as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
        if not exists:
            raise DatabaseError(f"role {role!r} does not exist: create it first (create role ...)")
        conn.execute(sql.SQL("create schema if not exists marts"))
        for schema in ("raw", "app", "ops", "staging", "intermediate"):
            conn.execute(
                sql.SQL("revoke all on all tables in schema {} from {}").format(
                    sql.Identifier(schema), ident
                )
            )
            conn.execute(
                sql.SQL("revoke usage on schema {} from {}").format(sql.Identifier(schema), ident)
            )
        conn.execute(sql.SQL("grant usage on schema marts to {}").format(ident))
        conn.execute(sql.SQL("grant select on all tables in schema marts to {}").format(ident))
        # Tables dbt creates later (it replaces them on every full build) stay readable.
        conn.execute(
            sql.SQL("alter default privileges in schema marts grant select on tables to {}").format(
                ident
            )
        )

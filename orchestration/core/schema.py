"""`costwatch db init` and `db grant-analyst`: costwatch's own tables and who may read what."""

from __future__ import annotations

import re
from importlib import resources

from psycopg import sql

from orchestration.core.database import PROJECT_ROOT, DatabaseError, connect
from orchestration.core.dbt_seeds import load_missing_price_seeds

INIT_SQL = resources.files("orchestration") / "sql" / "init.sql"
_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")


def init_database(url: str) -> None:
    """Create the raw, app and ops schemas and tables if missing; never drop or rewrite data."""
    with connect(url) as conn:
        # Two `db init` at once must not race on `create ... if not exists`.
        conn.execute("select pg_advisory_xact_lock(hashtext('costwatch.db_init'))")
        conn.execute(INIT_SQL.read_text())
        load_missing_price_seeds(conn, PROJECT_ROOT / "dbt_project" / "seeds")


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
        # ... except their user and session ids (dbt's post-hook does it for rebuilt marts).
        conn.execute("create schema if not exists ops")
        conn.execute("create table if not exists ops.analyst_roles (role_name text primary key)")
        conn.execute("insert into ops.analyst_roles values (%s) on conflict do nothing", (role,))
        for table, allowed in _marts_with_ids(conn):
            conn.execute(sql.SQL("revoke select on {} from {}").format(table, ident))
            conn.execute(
                sql.SQL("grant select ({}) on {} to {}").format(
                    sql.SQL(", ").join(sql.Identifier(c) for c in allowed), table, ident
                )
            )


ID_COLUMNS = ("user_id", "session_id")


def _marts_with_ids(conn) -> list[tuple[sql.Identifier, list[str]]]:  # noqa: ANN001
    """Marts with a user or session id column, and their other columns."""
    rows = conn.execute(
        "select table_name, array_agg(column_name::text order by ordinal_position) "
        "filter (where column_name <> all(%s)) from information_schema.columns "
        "where table_schema = 'marts' group by table_name "
        "having bool_or(column_name = any(%s))",
        (list(ID_COLUMNS), list(ID_COLUMNS)),
    ).fetchall()
    return [(sql.Identifier("marts", name), list(columns or [])) for name, columns in rows]


# The contract's raw columns (section 3). Extra columns are fine; missing or retyped ones are not.
RAW_COLUMNS: dict[str, dict[str, str]] = {
    "raw.inference_events": {
        "event_id": "text",
        "created_at": "timestamp with time zone",
        "user_id": "text",
        "session_id": "text",
        "feature": "text",
        "trigger_type": "text",
        "model": "text",
        "input_tokens": "integer",
        "output_tokens": "integer",
        "cost_usd": "numeric",
        "user_agent": "text",
    },
    "raw.tool_calls": {
        "call_id": "text",
        "created_at": "timestamp with time zone",
        "event_id": "text",
        "feature": "text",
        "tool_name": "text",
        "success": "boolean",
        "retries": "integer",
        "latency_ms": "integer",
    },
    "raw.change_events": {
        "change_id": "text",
        "changed_at": "timestamp with time zone",
        "kind": "text",
        "feature": "text",
        "description": "text",
    },
    "app.feature_flags": {
        "feature": "text",
        "enabled": "boolean",
        "updated_at": "timestamp with time zone",
        "updated_by": "text",
    },
}
# Types a column may have instead of the contract's, because the pipeline casts them safely.
_COMPATIBLE = {
    "text": {"text", "character varying", "character"},
    "integer": {"integer", "smallint", "bigint"},
    "numeric": {"numeric", "double precision", "real", "integer", "bigint"},
}


def check_raw_schema(url: str) -> None:
    """Fail with one line naming the table and column when a raw table drifted from the contract."""
    with connect(url) as conn:
        rows = conn.execute(
            """
            select table_schema || '.' || table_name, column_name, data_type
            from information_schema.columns
            where table_schema in ('raw', 'app')
            """
        ).fetchall()
    found: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        found.setdefault(table, {})[column] = data_type
    for table, columns in RAW_COLUMNS.items():
        if table not in found:
            raise DatabaseError(f"table {table} does not exist: run `costwatch db init`")
        for column, expected in columns.items():
            actual = found[table].get(column)
            if actual is None:
                raise DatabaseError(f"table {table} has no column {column} ({expected} expected)")
            if actual != expected and actual not in _COMPATIBLE.get(expected, ()):
                raise DatabaseError(
                    f"column {table}.{column} is {actual}, the contract says {expected}"
                )

"""Least privilege and schema drift: who may read what, and raw tables that changed shape."""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest

from orchestration.core.database import DatabaseError, connect, url_for_database
from orchestration.core.schema import check_raw_schema, grant_analyst
from orchestration.pipeline import pass_lock
from orchestration.runbook.incidents import engine
from orchestration.runbook.incidents.settings import IncidentSettings
from tests.conftest import costwatch_env, run_costwatch


@pytest.fixture
def analyst(db_url: str, server_url: str):
    """A login role with nothing granted yet; dropped after the test."""
    role = f"analyst_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    with connect(server_url, autocommit=True) as conn:
        conn.execute(f"create role {role} login password '{password}'")
    host_part = db_url.split("@", 1)[1]  # host:port/db of the test database
    yield role, f"postgresql://{role}:{password}@{host_part}"
    with connect(db_url, autocommit=True) as conn:
        conn.execute(f"drop owned by {role}")
    with connect(server_url, autocommit=True) as conn:
        conn.execute(f"drop role if exists {role}")


def _can_select(url: str, table: str) -> bool:
    with psycopg.connect(url) as conn:
        try:
            conn.execute(f"select * from {table} limit 1")
        except psycopg.errors.InsufficientPrivilege:
            return False
    return True


def test_grant_analyst_reads_marts_only(db_url: str, analyst, tmp_path: Path) -> None:
    role, role_url = analyst
    with psycopg.connect(db_url) as conn:
        conn.execute("create table marts.cost_hourly (hour timestamptz, total_cost_usd numeric)")
        conn.execute("create table staging.stg_users (user_id text)")
        conn.execute("insert into raw.inference_events (event_id, user_id) values ('e', 'u-1')")
    result = run_costwatch("db", "grant-analyst", role, env=costwatch_env(db_url, tmp_path))
    assert result.returncode == 0, result.stderr

    assert _can_select(role_url, "marts.cost_hourly")
    # Tables dbt (re)creates later are readable too.
    with psycopg.connect(db_url) as conn:
        conn.execute("create table marts.cost_spikes (spike_id text)")
    assert _can_select(role_url, "marts.cost_spikes")
    for table in (
        "raw.inference_events", "raw.tool_calls", "app.feature_flags",
        "ops.incidents", "ops.alerts", "staging.stg_users",
    ):  # fmt: skip
        assert not _can_select(role_url, table), table
    with psycopg.connect(role_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("update app.feature_flags set enabled = false")


def test_analysts_cannot_take_the_pass_or_incident_locks(db_url: str, analyst) -> None:
    role, role_url = analyst
    grant_analyst(db_url, role)
    with psycopg.connect(role_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("select 1 from ops.locks for update")
    # An analyst's advisory lock on the old key no longer stalls anything.
    with psycopg.connect(role_url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(hashtext('costwatch.pass'))")
        conn.execute("select pg_advisory_lock(hashtext('costwatch.incidents'))")
        with pass_lock(db_url, wait_seconds=1):
            pass
        assert engine.tick(db_url, settings=IncidentSettings()).skipped != (
            "another incident step holds the lock"
        )


def test_analysts_never_read_user_or_session_ids(db_url: str, analyst, tmp_path: Path) -> None:
    """Through marts.rejected_* (rebuilt by dbt after the grant too): every column but the ids."""
    role, role_url = analyst
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "create table marts.rejected_inference_events"
            " (event_id text, user_id text, session_id text, reason text)"
        )
        conn.execute("insert into marts.rejected_inference_events values ('e', 'u-1', 's-1', 'x')")
    grant_analyst(db_url, role)
    with psycopg.connect(role_url) as conn:
        assert conn.execute(
            "select event_id, reason from marts.rejected_inference_events"
        ).fetchall() == [("e", "x")]
    for column in ("user_id", "session_id", "*"):
        with psycopg.connect(role_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"select {column} from marts.rejected_inference_events")


def test_grant_analyst_rejects_unknown_and_malformed_roles(db_url: str) -> None:
    with pytest.raises(DatabaseError, match="does not exist"):
        grant_analyst(db_url, "nobody_here_" + secrets.token_hex(3))
    with pytest.raises(DatabaseError, match="not a valid role name"):
        grant_analyst(db_url, "x; drop table raw.inference_events")
    assert psycopg.connect(db_url).execute("select count(*) from raw.inference_events").fetchone()


@pytest.mark.parametrize(
    "ddl, message",
    [
        (
            "alter table raw.inference_events drop column cost_usd",
            "table raw.inference_events has no column cost_usd (numeric expected)",
        ),
        (
            "alter table raw.tool_calls alter column success type text",
            "column raw.tool_calls.success is text, the contract says boolean",
        ),
        (
            "alter table raw.inference_events alter column created_at type text",
            "column raw.inference_events.created_at is text, the contract says timestamp",
        ),
    ],
)
def test_schema_drift_is_named_and_nothing_dropped(
    db_url: str, tmp_path: Path, ddl: str, message: str
) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "insert into raw.tool_calls (call_id, tool_name, success) values ('c1', 'web', true)"
        )
        conn.execute(ddl)
    with pytest.raises(DatabaseError) as info:
        check_raw_schema(db_url)
    assert message in str(info.value)
    result = run_costwatch("run", env=costwatch_env(db_url, tmp_path))
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select count(*) from raw.tool_calls").fetchone() == (1,)


def test_extra_raw_column_is_fine(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("alter table raw.inference_events add column region text")
        conn.execute("alter table raw.inference_events alter column cost_usd type double precision")
    check_raw_schema(db_url)  # compatible: an extra column, a float cost


def test_url_for_database_keeps_credentials() -> None:
    url = "postgresql://u:p@127.0.0.1:5/a?sslmode=disable"
    assert url_for_database(url, "b") == "postgresql://u:p@127.0.0.1:5/b?sslmode=disable"

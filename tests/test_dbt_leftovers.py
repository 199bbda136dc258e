"""A failed pass drops the scratch relations dbt left behind (`__dbt_tmp`, `__dbt_backup`), and
only when no other pass is running."""

from __future__ import annotations

import psycopg

from orchestration.core.dbt_leftovers import drop_dbt_leftovers
from orchestration.core.locks import PASS_LOCK_KEY
from tests.test_faults_support import leftover_relations

SCRATCH = ["marts.cost_hourly__dbt_backup", "staging.stg_x__dbt_tmp"]


def _make_leftovers(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in ("marts", "staging"):
            conn.execute(f"create schema if not exists {schema}")
        conn.execute("create table marts.cost_hourly__dbt_backup (hour timestamptz)")
        conn.execute("create view staging.stg_x__dbt_tmp as select 1 as x")
        conn.execute("create table marts.keep_me (x int)")  # not dbt's scratch: stays


def test_leftovers_are_dropped_and_nothing_else(db_url: str) -> None:
    _make_leftovers(db_url)
    assert leftover_relations(db_url) == SCRATCH
    assert sorted(drop_dbt_leftovers(db_url)) == SCRATCH
    assert leftover_relations(db_url) == []
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select to_regclass('marts.keep_me')").fetchone()[0] is not None


def test_nothing_is_dropped_while_another_pass_runs(db_url: str) -> None:
    _make_leftovers(db_url)
    with psycopg.connect(db_url) as other_pass:  # holds the pass's lock row until it ends
        other_pass.execute("select 1 from ops.locks where name = %s for update", (PASS_LOCK_KEY,))
        assert drop_dbt_leftovers(db_url) == []
        assert leftover_relations(db_url) == SCRATCH


def test_an_unreachable_database_gives_up_quietly() -> None:
    url = "postgresql://nobody:secret@127.0.0.1:1/nothing"
    assert drop_dbt_leftovers(url, wait_seconds=1) == []

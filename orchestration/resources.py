"""Dagster resources: the PostgreSQL costwatch watches."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from dagster_dbt import DbtCliResource
from pydantic import PrivateAttr

from orchestration.database import connect


class PostgresResource(dg.ConfigurableResource):
    """costwatch's database (COSTWATCH_DATABASE_URL, set by `costwatch` for the embedded one)."""

    url: str

    @contextmanager
    def connection(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with connect(self.url, autocommit=autocommit) as conn:
            yield conn


class PassLockedDbtCliResource(DbtCliResource):
    """dbt, used only while holding the pass's advisory lock on `database_url`.

    `costwatch run` already holds it (the lock is re-entrant in its process); a run that
    `dagster dev` launches (the hourly schedule, the UI) takes it here, so it waits for a
    `costwatch run` on the same database instead of rebuilding the marts beside it.
    """

    database_url: str
    _lock: contextlib.ExitStack = PrivateAttr(default_factory=contextlib.ExitStack)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from orchestration.pipeline import PassError, pass_lock, pass_wait_seconds

        super().setup_for_execution(context)
        try:
            self._lock.enter_context(pass_lock(self.database_url, pass_wait_seconds()))
        except PassError as err:
            raise dg.Failure(description=str(err)) from None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._lock.close()

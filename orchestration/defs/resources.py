"""Dagster resources: the PostgreSQL costwatch watches."""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property

import dagster as dg
import psycopg
from dagster_dbt import DbtCliResource
from packaging import version
from pydantic import PrivateAttr

from orchestration.core.database import connect
from orchestration.core.locks import PassError, pass_lock, pass_wait_seconds


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
        super().setup_for_execution(context)
        try:
            self._lock.enter_context(pass_lock(self.database_url, pass_wait_seconds()))
        except PassError as err:
            raise dg.Failure(description=str(err)) from None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._lock.close()

    # Two start-up costs of dagster-dbt's `cli()` that a pass does not need (pinned dagster-dbt;
    # tests/test_dbt_resource.py fails if an upgrade renames them):
    @cached_property
    def _cli_version(self) -> version.Version:
        """dagster-dbt asks `dbt --version` (a whole dbt start-up, ~5 s) which dbt it runs: the
        dbt on this resource is the installed dbt-core's executable, so ask the package."""
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        """dagster-dbt imports dbt and opens an adapter in this process (~4 s) only to serve
        `fetch_column_metadata` and `fetch_row_counts`, which costwatch does not use; dbt itself
        runs in its own process either way."""
        return None

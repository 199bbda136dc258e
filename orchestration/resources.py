"""Dagster resources: the PostgreSQL costwatch watches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg

from orchestration.database import connect


class PostgresResource(dg.ConfigurableResource):
    """costwatch's database (COSTWATCH_DATABASE_URL, set by `costwatch` for the embedded one)."""

    url: str

    @contextmanager
    def connection(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with connect(self.url, autocommit=autocommit) as conn:
            yield conn

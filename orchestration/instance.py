"""Dagster's instance: runs, event log and schedules in costwatch's PostgreSQL.

`costwatch run`, `make dev` (`dagster dev`) and the tests all read `$DAGSTER_HOME/dagster.yaml`,
which costwatch writes (`write_instance_config`): its storage classes are the dagster-postgres
ones, with the URL resolved when the instance is built, the way the CLI resolves it
(`COSTWATCH_DAGSTER_STORAGE_URL`, else `COSTWATCH_DATABASE_URL`, else the embedded server). So
the file holds no password, and a `dagster dev` and a `costwatch run` on the same database share
one storage: schema `dagster` of that database (PostgreSQL's row locks and dagster-postgres'
upserts keep them consistent; passes themselves are serialised by the pass lock).

The storage's connections use `synchronous_commit = off`: Dagster commits once per event, and a
crash loses at most the last few hundred milliseconds of run log, never costwatch's data (which
dbt writes on its own connections). Runs older than `COSTWATCH_RUN_RETENTION_DAYS` (14) are
deleted with their event logs after each pass (`prune_old_runs`).
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dagster as dg
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqlEventLogStorageTable
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage

from orchestration.core.config import Config
from orchestration.core.database import DatabaseError, connect, costwatch_home, first_line
from orchestration.core.embedded import configured_url, database_url

DAGSTER_SCHEMA = "dagster"
STORAGE_URL_ENV = "COSTWATCH_DAGSTER_STORAGE_URL"
# Deleting runs is bounded per pass, so one pass never spends long on it.
PRUNE_BATCH = 200

MARKER = "# Written by costwatch (orchestration/instance.py)."
INSTANCE_YAML = f"""{MARKER} Rewritten when it differs; delete this line to keep your edits.
# Runs, event log and schedules in PostgreSQL: schema `{DAGSTER_SCHEMA}` of costwatch's database
# (COSTWATCH_DAGSTER_STORAGE_URL for another one), the URL resolved as the `costwatch` CLI does.
run_storage:
  module: orchestration.instance
  class: CostwatchRunStorage
event_log_storage:
  module: orchestration.instance
  class: CostwatchEventLogStorage
schedule_storage:
  module: orchestration.instance
  class: CostwatchScheduleStorage
telemetry:
  enabled: false
nux:
  enabled: false
retention:
  schedule:
    purge_after_days: 14
  sensor:
    purge_after_days:
      skipped: 1
      failure: 14
      success: 14
"""


# What costwatch wrote before (SQLite storage, telemetry off): replaced by INSTANCE_YAML.
LEGACY_YAML = ("", "telemetry:\n  enabled: false")


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or costwatch_home() / "dagster")


def write_instance_config(home: Path | None = None) -> Path:
    """Write costwatch's dagster.yaml into `home` (default $DAGSTER_HOME) unless it is current
    or a user took it over (removed the marker line). Atomic: a reader sees old or new."""
    home = home or dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    try:
        current = config.read_text()
    except FileNotFoundError:
        current = None
    if current == INSTANCE_YAML:
        return config
    ours = current is None or MARKER in current or current.strip() in LEGACY_YAML
    if not ours:
        return config  # the user's own configuration
    tmp = config.with_name(f".dagster.yaml.{os.getpid()}")
    tmp.write_text(INSTANCE_YAML)
    os.replace(tmp, config)
    return config


def with_storage_options(url: str) -> str:
    """`url` for SQLAlchemy with the storage's session settings: its schema first on the search
    path, and asynchronous commits. The driver is psycopg2, the one dagster-postgres is written
    for (SQLAlchemy 2.1 defaults to psycopg 3, whose `with conn:` closes the connection that
    dagster-postgres' pooled engine means to keep)."""
    parts = urlsplit(url)._replace(scheme="postgresql+psycopg2")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-c search_path={DAGSTER_SCHEMA} -c synchronous_commit=off"))
    return urlunsplit(parts._replace(query=urlencode(query)))


_prepared: set[str] = set()


# The storage database of the instance `dagster_instance` is building (its storages are made
# while the instance is): the configuration's, handed over without the environment.
_building_for: str | None = None


def storage_url() -> str:
    """The SQLAlchemy URL of Dagster's storage; creates its schema the first time. Under
    `dagster dev` (which builds the instance itself) it is resolved as the CLI resolves it."""
    base = (
        _building_for
        or os.environ.get(STORAGE_URL_ENV, "").strip()
        or configured_url()
        or database_url()
    )
    if base not in _prepared:
        deadline = time.monotonic() + 10
        while True:
            try:
                with connect(base, autocommit=True) as conn:
                    conn.execute(f'create schema if not exists "{DAGSTER_SCHEMA}"')
                break
            except DatabaseError:
                raise
            except Exception:  # two processes creating the schema at once: one wins
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        _prepared.add(base)
    return with_storage_options(base)


def _pooled(storage):
    """One connection kept open and reused (dagster-postgres opens one per event otherwise):
    the same engine dagster-webserver uses, without a statement timeout."""
    storage.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)
    return storage


class _CostwatchStorage:
    """The three storages' shared configuration: no config of their own, the URL resolved as the
    CLI resolves it, one pooled engine."""

    @classmethod
    def config_type(cls):
        return {}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return _pooled(cls(postgres_url=storage_url(), inst_data=inst_data))


class CostwatchRunStorage(_CostwatchStorage, PostgresRunStorage):
    pass


class CostwatchEventLogStorage(_CostwatchStorage, PostgresEventLogStorage):
    """dagster-postgres' event log with fewer round trips per event (a pass stores ~500 events:
    every asset, check, plan and output), for the pinned dagster-postgres (tests/test_instance.py
    fails if an upgrade renames what this overrides):
    - no `NOTIFY` after each insert: nothing listens (dagster-postgres keeps it "to support
      version skew" and watches the table by polling);
    - the event tags table and the asset-key columns are looked up once per process, not once per
      materialization: that lookup checked a second connection out of a one-connection pool,
      so each materialization opened a new PostgreSQL connection (a backend fork)."""

    def store_event(self, event: EventLogEntry) -> None:
        # PostgresEventLogStorage.store_event, less the NOTIFY.
        insert = self.prepare_insert_event(event)
        with self._connect() as conn:
            returned = conn.execute(insert.returning(SqlEventLogStorageTable.c.id))
            event_id = int(returned.scalar_one())
        if (
            event.is_dagster_event
            and event.dagster_event_type in ASSET_EVENTS
            and event.dagster_event.asset_key
        ):
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [event], [event_id])
                self._store_asset_event(conn, event, event_id)
        if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
            self.store_asset_check_event(event, event_id)

    def has_table(self, table_name: str) -> bool:
        """A table found stays found (Dagster's migrations add tables, never drop them)."""
        known = self.__dict__.setdefault("_costwatch_tables", set())
        if table_name not in known and super().has_table(table_name):
            known.add(table_name)
        return table_name in known

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        known = self.__dict__.setdefault("_costwatch_asset_key_columns", set())
        if column_name not in known and super()._has_asset_key_col_on_connection(conn, column_name):
            known.add(column_name)
        return column_name in known


class CostwatchScheduleStorage(_CostwatchStorage, PostgresScheduleStorage):
    pass


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
_instances: dict[tuple[str, str], dg.DagsterInstance] = {}


def dagster_instance(config: Config | None = None):
    """The persistent Dagster instance under the configuration's Dagster home (default
    $COSTWATCH_HOME/dagster), storing in its database, so runs of `costwatch run` show in
    `dagster dev`. One per home and database per process (a long-lived process running pass
    after pass keeps its storage connections)."""
    global _building_for
    config = config or Config.load()
    home = config.dagster_home
    write_instance_config(home)
    base = config.dagster_storage_url or config.database_url or database_url()
    key = (str(home), base)
    instance = _instances.get(key)
    if instance is None:
        _building_for = base
        try:
            instance = dg.DagsterInstance.from_config(str(home))
        except DatabaseError:
            raise
        except Exception as err:
            raise DatabaseError(f"cannot open Dagster's storage: {first_line(err)}") from None
        finally:
            _building_for = None
        _instances[key] = instance
    return instance


def prune_old_runs(instance, days: float, limit: int = PRUNE_BATCH) -> list[str]:
    """Delete finished runs created more than `days` ago, with their event logs. `days` <= 0
    keeps every run. Returns the deleted run ids (at most `limit` a call)."""
    if days <= 0:
        return []
    cutoff = datetime.now(UTC) - timedelta(days=days)
    records = instance.get_run_records(
        filters=dg.RunsFilter(created_before=cutoff, statuses=FINISHED),
        limit=limit,
        ascending=True,
    )
    deleted = []
    for record in records:
        with contextlib.suppress(Exception):  # another process deleted it first
            instance.delete_run(record.dagster_run.run_id)
            deleted.append(record.dagster_run.run_id)
    return deleted

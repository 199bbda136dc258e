"""Dagster resources: the PostgreSQL costwatch watches, dbt on it, and the settings they share.

Every resource takes the one configuration object (`orchestration.core.config.Config`, built
once per pass or code-location load) as a dependency rather than as config fields, so no value
of it (a password in the database URL, a webhook) shows in the UI's resource config.
"""

# No `from __future__ import annotations`: pydantic must see `dg.ResourceDependency[Config]`
# itself, not its string, to accept a plain object there.
import contextlib
import importlib.metadata
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import dagster as dg
import psycopg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource
from dagster_dbt.asset_utils import (
    extract_runtime_selection_from_args,
    get_updated_cli_invocation_params_for_context,
)
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation
from dagster_dbt.dagster_dbt_translator import validate_opt_translator
from dagster_dbt.dbt_manifest import DbtManifestParam, validate_manifest
from packaging import version
from pydantic import PrivateAttr

from orchestration.core.config import Config
from orchestration.core.database import connect
from orchestration.core.engine import dbt_environment
from orchestration.core.locks import PassError, pass_lock
from orchestration.defs.dbt_in_process import InProcessDbtInvocation
from orchestration.runbook.expectations.suites import CheckSettings
from orchestration.runbook.incidents.settings import IncidentSettings


class PostgresResource(dg.ConfigurableResource):
    """costwatch's database: the configuration's (COSTWATCH_DATABASE_URL or the embedded one)."""

    settings: dg.ResourceDependency[Config]

    @classmethod
    def for_url(cls, url: str) -> "PostgresResource":
        """The resource on `url`, every other setting as the environment has it."""
        return cls(settings=Config.load(database_url=url))

    @property
    def url(self) -> str:
        return self.settings.require_database()

    def incident_settings(self) -> IncidentSettings:
        """Channels, escalation and the cost cap, from the configuration's environment."""
        return IncidentSettings.from_env(self.settings.environ)

    def check_settings(self) -> CheckSettings:
        """The expectation suites' freshness and window, from the configuration's environment."""
        return CheckSettings.from_env(self.settings.environ)

    @contextmanager
    def connection(self, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with connect(self.url, autocommit=autocommit) as conn:
            yield conn


class PassLockedDbtCliResource(DbtCliResource):
    """dbt on the configuration's database, used only while holding the pass's advisory lock.

    `costwatch run` already holds the lock (it is re-entrant in its process); a run that
    `dagster dev` launches (the hourly schedule, the UI) takes it here, so it waits for a
    `costwatch run` on the same database instead of rebuilding the marts beside it.
    dbt connects through a profiles.yml rendered from the configuration (`dbt_args`).
    """

    settings: dg.ResourceDependency[Config]
    _lock: contextlib.ExitStack = PrivateAttr(default_factory=contextlib.ExitStack)

    @property
    def database_url(self) -> str:
        return self.settings.require_database()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)
        try:
            self._lock.enter_context(pass_lock(self.database_url, self.settings.pass_wait_seconds))
        except PassError as err:
            raise dg.Failure(description=str(err)) from None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._lock.close()

    def dbt_args(self) -> list[str]:
        """What every costwatch dbt command adds: the rendered profile and the dbt vars."""
        # No ANSI colour codes in dbt's log lines (a pipe, a file, the UI's run log).
        args = ["--profiles-dir", str(self.settings.dbt_profiles_dir()), "--no-use-colors"]
        if self.settings.dbt_vars:
            args += ["--vars", json.dumps(dict(self.settings.dbt_vars), sort_keys=True)]
        return args

    def cli(
        self,
        args: Sequence[str],
        *,
        raise_on_error: bool = True,
        manifest: DbtManifestParam | None = None,
        dagster_dbt_translator: DagsterDbtTranslator | None = None,
        context: dg.OpExecutionContext | dg.AssetExecutionContext | None = None,
        target_path: Path | None = None,
    ) -> DbtCliInvocation:
        """dagster-dbt's `cli()`, with dbt in this process on PostgreSQL (`dbt_in_process`).

        On Spark dbt stays a subprocess: its session target starts a JVM in dbt's process,
        and that JVM (holding the local metastore) must end with the command. It gets the
        configuration's Spark settings (engine.dbt_environment), not this process's."""
        # What dagster-dbt's cli() does before it starts its subprocess: the selection of the
        # assets and checks the run asked for, and a target folder of the invocation's own.
        translator = validate_opt_translator(dagster_dbt_translator) or DagsterDbtTranslator()
        cleaned_args, selects, excludes = extract_runtime_selection_from_args(args)
        params = get_updated_cli_invocation_params_for_context(
            context=context,
            manifest=validate_manifest(manifest) if manifest else {},
            dagster_dbt_translator=translator,
            runtime_selects=selects,
            runtime_excludes=excludes,
        )
        project_dir = Path(
            params.dbt_project.project_dir if params.dbt_project else self.project_dir
        )
        target_path = target_path or self._get_unique_target_path(context=context)
        if not target_path.is_absolute():
            target_path = project_dir / target_path
        indirect = (
            ["--indirect-selection", params.indirect_selection] if params.indirect_selection else []
        )
        profile = [*(["--profile", self.profile] if self.profile else []),
                   *(["--target", self.target] if self.target else [])]  # fmt: skip
        dbt_args = [
            *self.global_config_flags,
            *cleaned_args,
            *profile,
            *params.selection_args,
            *indirect,
        ]
        if self.settings.engine != "postgres":
            # dagster-dbt's own subprocess merges dbt's stderr into the JSON lines it parses on
            # stdout: the Spark JVM's log lines (stderr) then land inside them, and the
            # materializations they carried are lost. Here stderr goes to a file of its own.
            target_path.mkdir(parents=True, exist_ok=True)
            with open(target_path / "stderr.log", "wb") as stderr:
                process = subprocess.Popen(
                    [self.dbt_executable, *dbt_args],
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    env=self._subprocess_env(project_dir, target_path),
                    cwd=project_dir,
                )
            return DbtCliInvocation(
                process=process,
                manifest=params.manifest,
                project=params.dbt_project,
                dagster_dbt_translator=params.dagster_dbt_translator,
                project_dir=project_dir,
                target_path=target_path,
                raise_on_error=raise_on_error,
                context=context,
                adapter=None,
                cli_version=self._cli_version,
            )
        return InProcessDbtInvocation.start(
            dbt_args,
            project_dir=project_dir,
            target_path=target_path,
            manifest=params.manifest,
            dagster_dbt_translator=params.dagster_dbt_translator,
            raise_on_error=raise_on_error,
            context=context,
            adapter=None,
            cli_version=self._cli_version,
            project=params.dbt_project,
        )

    def _subprocess_env(self, project_dir: Path, target_path: Path) -> dict[str, str]:
        """dbt's environment as dagster-dbt gives it (JSON logs, its own target folder), with
        the configuration's engine settings (COSTWATCH_SPARK_RAW absolute, COSTWATCH_HOME)."""
        return {
            **os.environ,
            **dbt_environment(self.settings.environ),
            "DAGSTER_DBT_CLI": "true",
            "PYTHONUNBUFFERED": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_LOG_FORMAT": "json",
            "DBT_TARGET_PATH": os.fspath(target_path),
            "DBT_LOG_PATH": os.fspath(target_path),
            "DBT_PROJECT_DIR": str(project_dir),
        }

    # Two start-up costs of dagster-dbt's `cli()` that a pass does not need (pinned dagster-dbt;
    # tests/test_dbt_resource.py fails if an upgrade renames them):
    @cached_property
    def _cli_version(self) -> version.Version:
        """dagster-dbt asks `dbt --version` (a whole dbt start-up, ~5 s) which dbt it runs: the
        dbt on this resource is the installed dbt-core's executable, so ask the package."""
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        """dagster-dbt opens a second dbt adapter in this process (~4 s) only to serve
        `fetch_column_metadata` and `fetch_row_counts`, which costwatch does not use; the
        build has its own, in this process or in dbt's."""
        return None

"""One configuration object: every setting costwatch reads, read once.

`Config.load()` takes a snapshot of the environment (the `COSTWATCH_*` settings, libpq's `PG*`
defaults) and dbt_project.yml's vars with their `COSTWATCH_VAR_*` overrides, once per pass (or
per code-location load under `dagster dev`). The pass, the CLI and the Dagster definitions take
it from there and hand it to the resources (orchestration/defs/resources.py); the incident and
expectation settings are parsed from the same snapshot by their owners in `runbook/`. Nothing
writes `os.environ` to carry a setting on: dbt gets its connection from a profiles.yml rendered
from this object (`dbt_profiles_dir`), and its vars as `--vars`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import jinja2
import yaml

from orchestration.core.database import PROJECT_ROOT, DatabaseError, dbt_env
from orchestration.core.embedded import EmbeddedPostgres
from orchestration.core.settings import read_dbt_vars, setting_problems

DBT_PROFILE_TEMPLATE = PROJECT_ROOT / "dbt_project" / "profiles.yml"
DEFAULT_DBT_THREADS = 4
DEFAULT_PASS_WAIT_SECONDS = 900.0
DEFAULT_LOG_LEVEL = "CRITICAL"
DEFAULT_RUN_RETENTION_DAYS = 14.0


class ConfigError(DatabaseError):
    """A setting costwatch cannot go on without (no database to use); one line."""


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Config:
    # The environment as it was read: every other setting is parsed from this.
    environ: Mapping[str, str] = field(default_factory=lambda: _frozen({}), repr=False)
    # The PostgreSQL costwatch uses; None when nothing is configured and no embedded server runs
    # (the definitions still load, for `dagster definitions validate`; a run says so in one line).
    database_url: str | None = field(default=None, repr=False)
    home: Path = PROJECT_ROOT / ".costwatch"
    engine: str = "postgres"
    # dbt_project.yml's vars that the environment overrides (only those dbt can use).
    dbt_vars: Mapping[str, object] = field(default_factory=lambda: _frozen({}))
    dbt_threads: int = DEFAULT_DBT_THREADS
    pass_wait_seconds: float = DEFAULT_PASS_WAIT_SECONDS
    log_level: str = DEFAULT_LOG_LEVEL  # Dagster's run log on the console (`run -v`: INFO)
    # Dagster's home (dagster.yaml) and where its storage lives (None: costwatch's database).
    dagster_home: Path = PROJECT_ROOT / ".costwatch" / "dagster"
    dagster_storage_url: str | None = field(default=None, repr=False)
    run_retention_days: float = DEFAULT_RUN_RETENTION_DAYS
    debug: bool = False
    # `costwatch ingest otlp`: the bearer token it requires, the span attribute naming a feature.
    otlp_token: str | None = field(default=None, repr=False)
    otlp_feature_attribute: str | None = None
    # One line per setting that could not be used (it then has its default).
    problems: tuple[str, ...] = ()

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        database_url: str | None = None,
        find_embedded: bool = False,
    ) -> Config:
        """Read every setting from `environ` (default: this process's environment). The database
        is `database_url`, else COSTWATCH_DATABASE_URL, else (`find_embedded`) the embedded
        server's if it is running."""
        env = _frozen(os.environ if environ is None else environ)
        url = database_url or (env.get("COSTWATCH_DATABASE_URL") or "").strip() or None
        home = Path(env.get("COSTWATCH_HOME") or PROJECT_ROOT / ".costwatch").resolve()
        if url is None and find_embedded:
            with contextlib.suppress(DatabaseError):
                url = EmbeddedPostgres(home).url()
        variables, _ = read_dbt_vars(env)
        return cls(
            environ=env,
            database_url=url,
            home=home,
            engine=(env.get("COSTWATCH_ENGINE") or "postgres").strip().lower(),
            dbt_vars=_frozen(variables),
            dbt_threads=_whole(env, "COSTWATCH_DBT_THREADS", DEFAULT_DBT_THREADS),
            pass_wait_seconds=_seconds(
                env, "COSTWATCH_PASS_WAIT_SECONDS", DEFAULT_PASS_WAIT_SECONDS
            ),
            log_level=(env.get("COSTWATCH_LOG_LEVEL") or DEFAULT_LOG_LEVEL).strip().upper(),
            dagster_home=Path(env.get("DAGSTER_HOME") or home / "dagster"),
            dagster_storage_url=(env.get("COSTWATCH_DAGSTER_STORAGE_URL") or "").strip() or None,
            run_retention_days=_seconds(
                env, "COSTWATCH_RUN_RETENTION_DAYS", DEFAULT_RUN_RETENTION_DAYS
            ),
            debug=bool(env.get("COSTWATCH_DEBUG")),
            otlp_token=(env.get("COSTWATCH_OTLP_TOKEN") or "").strip() or None,
            otlp_feature_attribute=(env.get("COSTWATCH_OTLP_FEATURE_ATTRIBUTE") or "").strip()
            or None,
            problems=tuple(setting_problems(env)),
        )

    def replace(self, **changes: object) -> Config:
        return dataclasses.replace(self, **changes)

    def require_database(self) -> str:
        """The database URL, or one line saying how to give one."""
        if not self.database_url:
            raise ConfigError(
                "no database: set COSTWATCH_DATABASE_URL, or start the embedded one with "
                "`costwatch db start`"
            )
        return self.database_url

    # ------------------------------------------------------------------ dbt's profile

    def dbt_profile_environment(self) -> dict[str, str]:
        """The values dbt_project/profiles.yml reads with `env_var`, for this configuration (the
        connection as libpq would make it from the URL and the PG* defaults)."""
        values = {
            "COSTWATCH_DBT_THREADS": str(self.dbt_threads),
            "COSTWATCH_ENGINE": self.engine,  # the profile's target
            "COSTWATCH_HOME": str(self.home),  # Spark's warehouse and metastore
        }
        if self.database_url:
            values.update(dbt_env(self.database_url, self.environ))
        return values

    def dbt_profile(self) -> dict:
        """dbt_project/profiles.yml rendered with this configuration's values (as dbt renders
        it: each string a template, `env_var` and `as_number`)."""
        return render_profile(
            yaml.safe_load(DBT_PROFILE_TEMPLATE.read_text()), self.dbt_profile_environment()
        )

    def dbt_profiles_dir(self) -> Path:
        """A folder holding this configuration's rendered profiles.yml, for dbt's
        `--profiles-dir`. Named by its content (two databases, two folders; a second call
        reuses the first's), readable only by this user: it holds the password."""
        text = yaml.safe_dump(self.dbt_profile(), sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        folder = self.home / "dbt-profiles" / digest
        profile = folder / "profiles.yml"
        if not profile.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            scratch = folder / f".profiles.yml.{os.getpid()}"
            with open(os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.write(text)
            os.replace(scratch, profile)
        return folder


def render_profile(node: object, values: Mapping[str, str]) -> object:
    """Render every string of a profiles.yml tree as dbt does, `env_var(name, default)` reading
    `values` instead of the environment."""
    if isinstance(node, dict):
        return {key: render_profile(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [render_profile(value, values) for value in node]
    if not isinstance(node, str) or "{{" not in node:
        return node
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)

    def env_var(name: str, default: str | None = None) -> str:
        if name in values:
            return values[name]
        if default is None:
            raise ConfigError(f"profiles.yml needs {name}, which costwatch does not set")
        return default

    numbers: list[bool] = []

    def as_number(value: object) -> object:
        numbers.append(True)
        return value

    environment.filters["as_number"] = as_number
    rendered = environment.from_string(node).render(env_var=env_var)
    if numbers:
        number = float(rendered)
        return int(number) if number.is_integer() else number
    return rendered


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        return default  # named in `problems` (settings.setting_problems)
    return value if value >= 1 else default


def _seconds(  # a non-negative number (seconds, days)
    env: Mapping[str, str], name: str, default: float
) -> float:
    raw = (env.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value >= 0 else default

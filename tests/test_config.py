"""The one configuration object: read once, rendered for dbt as dbt renders, not via os.environ."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from dbt.config.renderer import ProfileRenderer
from dbt_common.context import set_invocation_context

from orchestration.core.config import DBT_PROFILE_TEMPLATE, Config
from orchestration.core.database import dbt_env

URL = "postgresql://analyst:p%3A%22ss%20%23w@db.example:6543/costs?sslmode=require"


def test_load_reads_every_setting_from_the_snapshot_given(tmp_path: Path) -> None:
    environ = {
        "COSTWATCH_HOME": str(tmp_path),
        "COSTWATCH_DATABASE_URL": URL,
        "COSTWATCH_DBT_THREADS": "2",
        "COSTWATCH_PASS_WAIT_SECONDS": "30",
        "COSTWATCH_LOG_LEVEL": "info",
        "COSTWATCH_RUN_RETENTION_DAYS": "3",
        "COSTWATCH_VAR_SPIKE_THRESHOLD_PCT": "0.3",
        "COSTWATCH_OTLP_TOKEN": "t0ken",
    }
    config = Config.load(environ)
    assert config.database_url == URL
    assert (config.dbt_threads, config.pass_wait_seconds, config.log_level) == (2, 30.0, "INFO")
    assert config.run_retention_days == 3.0 and config.otlp_token == "t0ken"
    assert dict(config.dbt_vars) == {"spike_threshold_pct": 0.3}
    assert config.home == tmp_path.resolve() and config.dagster_home == tmp_path / "dagster"
    assert config.problems == ()
    # A snapshot: changing the mapping afterwards changes nothing, and neither is written back.
    environ["COSTWATCH_DBT_THREADS"] = "8"
    assert config.dbt_threads == 2 and config.environ["COSTWATCH_DBT_THREADS"] == "2"
    with pytest.raises(TypeError):
        config.environ["COSTWATCH_DBT_THREADS"] = "8"  # type: ignore[index]
    # Nothing printed holds the password.
    assert "p%3A" not in repr(config) and "t0ken" not in repr(config)


def test_unreadable_numbers_keep_their_defaults_and_are_named() -> None:
    config = Config.load({"COSTWATCH_DBT_THREADS": "many", "COSTWATCH_PASS_WAIT_SECONDS": "-1"})
    assert (config.dbt_threads, config.pass_wait_seconds) == (4, 900.0)
    assert config.problems == (
        "COSTWATCH_DBT_THREADS must be a whole number of threads (at least 1), got 'many':"
        " using the default",
        "COSTWATCH_PASS_WAIT_SECONDS must be a number of seconds (at least 0), got '-1':"
        " using the default",
    )


def test_no_database_is_one_line() -> None:
    config = Config.load({})
    assert config.database_url is None
    with pytest.raises(Exception, match="^no database: set COSTWATCH_DATABASE_URL"):
        config.require_database()


def test_the_rendered_profile_is_what_dbt_renders_from_the_environment(tmp_path: Path) -> None:
    """dbt's own renderer on profiles.yml, with the variables `costwatch db env` exports, gives
    the same profile as costwatch's rendering without them (a password with quotes, a colon and
    a hash survives both)."""
    config = Config.load(
        {"COSTWATCH_HOME": str(tmp_path), "COSTWATCH_DBT_THREADS": "3"}, database_url=URL
    )
    environ = {
        **dbt_env(URL),
        "COSTWATCH_DBT_THREADS": "3",
        "COSTWATCH_ENGINE": "postgres",
        "COSTWATCH_HOME": str(tmp_path.resolve()),
    }
    set_invocation_context(environ)  # what dbt's env_var() reads (not this process's environment)
    expected = ProfileRenderer({}).render_data(yaml.safe_load(DBT_PROFILE_TEMPLATE.read_text()))
    assert config.dbt_profile() == expected
    output = expected["costwatch"]["outputs"]["default"]
    assert output["password"] == 'p:"ss #w' and output["port"] == 6543 and output["threads"] == 3
    assert expected["costwatch"]["target"] == "default"
    spark = Config.load(
        {"COSTWATCH_HOME": str(tmp_path), "COSTWATCH_ENGINE": "Spark"}
    ).dbt_profile()
    assert spark["costwatch"]["target"] == "spark"
    warehouse = spark["costwatch"]["outputs"]["spark"]["server_side_parameters"]
    assert warehouse["spark.sql.warehouse.dir"] == f"{tmp_path.resolve()}/spark/warehouse"


def test_the_profile_folder_is_private_and_named_by_its_content(tmp_path: Path) -> None:
    config = Config.load({"COSTWATCH_HOME": str(tmp_path)}, database_url=URL)
    folder = config.dbt_profiles_dir()
    profile = folder / "profiles.yml"
    assert yaml.safe_load(profile.read_text()) == config.dbt_profile()
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert config.dbt_profiles_dir() == folder  # reused
    other = config.replace(database_url=URL.replace("/costs", "/other"))
    assert other.dbt_profiles_dir() != folder

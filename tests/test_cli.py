"""The `costwatch` command's edges: one clear line for every mistake, nothing stored changed."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from orchestration.cli import build_parser
from orchestration.core.database import DatabaseError, dbt_env, redact, validate_url
from orchestration.core.settings import dbt_vars
from tests.conftest import COSTWATCH, costwatch_env, query, run_costwatch

# ---------------------------------------------------------------- pure logic, no database


def test_redact_hides_passwords_of_urls() -> None:
    text = "cannot connect to postgresql://bob:s3cr3t@db.example:5432/cw today"
    assert redact(text) == "cannot connect to postgresql://bob:***@db.example:5432/cw today"
    assert redact("postgresql://bob@host/db") == "postgresql://bob@host/db"


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("mysql://u@h/db", "must be a postgresql:// URL"),
        ("postgresql://u:pw@h:notaport/db", "malformed database URL"),
        ("postgresql://u@h/db?nonsense_option=1", "malformed database URL"),
    ],
)
def test_validate_url_rejects_bad_urls(url: str, fragment: str) -> None:
    with pytest.raises(DatabaseError, match=fragment) as info:
        validate_url(url)
    assert "\n" not in str(info.value)
    assert "pw" not in str(info.value)


def test_dbt_env_follows_the_url() -> None:
    env = dbt_env("postgresql://ana:p%40ss@db.internal:6543/costs?sslmode=require")
    assert env == {
        "COSTWATCH_DB_HOST": "db.internal",
        "COSTWATCH_DB_PORT": "6543",
        "COSTWATCH_DB_USER": "ana",
        "COSTWATCH_DB_PASSWORD": "p@ss",
        "COSTWATCH_DB_NAME": "costs",
        "COSTWATCH_DB_SSLMODE": "require",
        "PGTZ": "UTC",  # dbt's sessions in UTC
    }


def test_dbt_vars_from_environment() -> None:
    env = {
        "COSTWATCH_VAR_SPIKE_THRESHOLD_PCT": "0.3",
        "COSTWATCH_VAR_MIN_SPIKE_HOURS": "4",
        "COSTWATCH_VAR_LABEL": "prod eu",
        "COSTWATCH_HOME": "/x",
        "COSTWATCH_VAR_": "ignored",
    }
    assert dbt_vars(env) == {"spike_threshold_pct": 0.3, "min_spike_hours": 4, "label": "prod eu"}


def test_parser_knows_the_contract_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(["seed", "--scenario", "quiet", "--days", "3", "--end", "2026-01-05"])
    assert (args.scenario, args.days, args.end.isoformat()) == (
        "quiet", 3, "2026-01-05T00:00:00+00:00",
    )  # fmt: skip
    assert parser.parse_args(["triage", "--spike", "s1"]).spike == "s1"
    assert parser.parse_args(["incidents", "show", "7"]).incident_id == 7
    assert parser.parse_args(["incidents"]).incidents_command == "list"
    assert parser.parse_args(["run", "--full-refresh"]).full_refresh


# ---------------------------------------------------------------- the real command


def _one_line_error(result, fragment: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("costwatch: error: ")
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_option_and_command(tmp_path: Path) -> None:
    env = costwatch_env("postgresql://nobody@127.0.0.1:1/none", tmp_path)
    _one_line_error(run_costwatch("run", "--frobnicate", env=env), "unrecognized arguments")
    _one_line_error(run_costwatch("explode", env=env), "invalid choice")
    _one_line_error(
        run_costwatch("seed", "--scenario", "quiet", "--days", "-3", env=env), "must be positive"
    )
    _one_line_error(
        run_costwatch("seed", "--scenario", "quiet", "--end", "yesterday", env=env),
        "not an ISO timestamp",
    )


def test_malformed_url(tmp_path: Path) -> None:
    env = costwatch_env("postgresql://bob:hunter2@host:port/db", tmp_path)
    for command in (("db", "status"), ("db", "init"), ("run",)):
        result = run_costwatch(*command, env=env)
        _one_line_error(result, "malformed database URL")
        assert "hunter2" not in result.stderr + result.stdout


def test_unreachable_database(tmp_path: Path) -> None:
    env = costwatch_env("postgresql://bob:hunter2@127.0.0.1:1/costwatch", tmp_path)
    for command in (("db", "status"), ("db", "init"), ("run",), ("seed", "--scenario", "quiet")):
        result = run_costwatch(*command, env=env)
        _one_line_error(result, "cannot connect to the database at postgresql://bob:***@")
        assert "hunter2" not in result.stderr + result.stdout


def test_unknown_scenario_changes_nothing(db_url: str, tmp_path: Path) -> None:
    env = costwatch_env(db_url, tmp_path)
    before = query(db_url, "select count(*) from raw.inference_events")
    result = run_costwatch("seed", "--scenario", "meteor_strike", env=env)
    _one_line_error(result, "unknown scenario 'meteor_strike'; choose one of: quiet,")
    assert query(db_url, "select count(*) from raw.inference_events") == before


def test_missing_raw_table_is_named(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("drop table raw.tool_calls")
    result = run_costwatch("run", env=costwatch_env(db_url, tmp_path))
    _one_line_error(result, "table raw.tool_calls does not exist: run `costwatch db init`")


def test_db_url_prints_the_configured_url(tmp_path: Path) -> None:
    url = "postgresql://someone@127.0.0.1:1/elsewhere"
    result = run_costwatch("db", "url", env=costwatch_env(url, tmp_path))
    assert result.returncode == 0 and result.stdout.strip() == url


def test_db_env_exports_for_dbt(db_url: str, tmp_path: Path) -> None:
    result = run_costwatch("db", "env", env=costwatch_env(db_url, tmp_path))
    assert result.returncode == 0
    assert f"export COSTWATCH_DB_NAME={db_url.rsplit('/', 1)[1]}" in result.stdout
    assert "export COSTWATCH_DB_HOST=127.0.0.1" in result.stdout
    # --exec hands the same variables to a command (how `make dev` starts dagster dev)
    env = costwatch_env(db_url, tmp_path)
    shown = run_costwatch("db", "env", "--exec", "sh", "-c", "echo $COSTWATCH_DB_PORT", env=env)
    assert shown.returncode == 0
    assert shown.stdout.strip() == dbt_env(db_url)["COSTWATCH_DB_PORT"]
    # ... with this venv's dbt first on PATH (dagster-dbt runs `dbt` from PATH under dagster dev)
    found = run_costwatch("db", "env", "--exec", "sh", "-c", "command -v dbt", env=env)
    assert found.stdout.strip() == str(Path(COSTWATCH).with_name("dbt"))

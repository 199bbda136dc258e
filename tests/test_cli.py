"""The `costwatch` command's edges: one clear line for every mistake, nothing stored changed."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from orchestration.cli import build_parser
from orchestration.core.database import DatabaseError, dbt_env, redact, validate_url
from orchestration.core.settings import dbt_vars, setting_problems
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
        "COSTWATCH_VAR_SPIKE_MIN_HOURS": "4",
        "COSTWATCH_VAR_SPIKE_WEEKEND_ISODOW": "[5, 6]",
        "COSTWATCH_VAR_DIAGNOSIS_TRAFFIC_GROWTH": "1",  # a whole number where a float is: fine
        "COSTWATCH_HOME": "/x",
        "COSTWATCH_VAR_": "ignored",
    }
    assert dbt_vars(env) == {
        "spike_threshold_pct": 0.3,
        "spike_min_hours": 4,
        "spike_weekend_isodow": [5, 6],
        "diagnosis_traffic_growth": 1,
    }
    assert setting_problems(env) == []


def test_a_mistyped_setting_is_named_and_dbt_keeps_its_default() -> None:
    env = {
        "COSTWATCH_VAR_SPIKE_THRESHOLD_PCT": "high",
        "COSTWATCH_VAR_SPIKE_MIN_HOURS": "2.5",
        "COSTWATCH_VAR_SPIKE_WEEKEND_ISODOW": '["sat"]',
        "COSTWATCH_VAR_SPIKE_SEVERE_PCT": "NaN",
        "COSTWATCH_VAR_SPIKE_TRESHOLD_PCT": "0.3",
        "COSTWATCH_SLACK_WEBHOOK": "https://hooks.slack.com/services/x",
        "COSTWATCH_NOT_A_THING": "1",
        "COSTWATCH_ALERT_WEBHOOK_URL": "http://127.0.0.1:1/hook",
    }
    assert dbt_vars(env) == {}
    assert setting_problems(env) == [
        "COSTWATCH_VAR_SPIKE_MIN_HOURS must be a whole number, got '2.5': using the default 3",
        "COSTWATCH_VAR_SPIKE_SEVERE_PCT must be a number, got 'NaN': using the default 1.0",
        "COSTWATCH_VAR_SPIKE_THRESHOLD_PCT must be a number, got 'high': using the default 0.2",
        "COSTWATCH_VAR_SPIKE_TRESHOLD_PCT is not a costwatch setting"
        " (did you mean COSTWATCH_VAR_SPIKE_THRESHOLD_PCT?)",
        "COSTWATCH_VAR_SPIKE_WEEKEND_ISODOW must be a JSON list, got '[\"sat\"]':"
        " using the default [6, 7]",
        "COSTWATCH_NOT_A_THING is not a costwatch setting",
        "COSTWATCH_SLACK_WEBHOOK is not a costwatch setting"
        " (did you mean COSTWATCH_SLACK_WEBHOOK_URL?)",
    ]


def test_the_incident_settings_carry_every_setting_problem() -> None:
    from orchestration.runbook.incidents.settings import IncidentSettings

    settings = IncidentSettings.from_env(
        {"COSTWATCH_SLACK_WEBHOOK": "x", "COSTWATCH_COST_CAP_USD": "lots"}
    )
    assert settings.problems == (
        "COSTWATCH_COST_CAP_USD must be a number, got 'lots'",
        "COSTWATCH_SLACK_WEBHOOK is not a costwatch setting"
        " (did you mean COSTWATCH_SLACK_WEBHOOK_URL?)",
    )


def test_every_setting_the_code_reads_is_known() -> None:
    """A COSTWATCH_* name in the code but not in KNOWN_SETTINGS would be reported as a typo."""
    import re

    from orchestration.core.settings import KNOWN_SETTINGS, PREFIX

    root = Path(__file__).resolve().parent.parent
    # These files' docs and cases hold the mistyped examples.
    skip = {
        root / "orchestration" / "core" / "settings.py",
        root / "tests" / "test_incidents_e2e.py",
        Path(__file__).resolve(),
    }
    names = set()
    for folder in ("orchestration", "bench", "tests"):
        for path in (root / folder).rglob("*.py"):
            if path not in skip:
                names |= set(re.findall(r"COSTWATCH_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    prefixes = {PREFIX.rstrip("_"), "COSTWATCH_DB"}  # COSTWATCH_VAR_*, COSTWATCH_DB_* themselves
    read = {n for n in names if not n.startswith(PREFIX) and n not in prefixes}
    assert len(read) > 20
    assert read - KNOWN_SETTINGS == set()


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

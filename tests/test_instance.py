"""Dagster's instance in PostgreSQL: what costwatch writes in DAGSTER_HOME, where a pass's run
goes, retention, and dbt's partial-parse state rewritten for another database."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import msgpack
import pytest

from orchestration import instance as cw_instance
from orchestration.core.config import Config
from orchestration.defs import project
from tests.conftest import costwatch_env, dagster_home, query, run_costwatch


def test_instance_yaml_keeps_storage_in_postgres_and_telemetry_off(tmp_path: Path) -> None:
    config = cw_instance.write_instance_config(tmp_path)
    text = config.read_text()
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert f"{storage}:\n  module: orchestration.instance" in text
    assert "telemetry:\n  enabled: false" in text
    assert "nux:\n  enabled: false" in text
    assert "password" not in text and "postgresql://" not in text  # resolved at run time


def test_instance_yaml_replaces_the_old_default_but_not_a_users_own(tmp_path: Path) -> None:
    legacy, own = tmp_path / "legacy", tmp_path / "own"
    legacy.mkdir()
    own.mkdir()
    (legacy / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (own / "dagster.yaml").write_text("storage:\n  sqlite:\n    base_dir: /somewhere\n")
    cw_instance.write_instance_config(legacy)
    cw_instance.write_instance_config(own)
    assert (legacy / "dagster.yaml").read_text() == cw_instance.INSTANCE_YAML
    assert "sqlite" in (own / "dagster.yaml").read_text()


def test_storage_url_uses_psycopg2_and_the_dagster_schema() -> None:
    url = cw_instance.with_storage_options("postgresql://u:p%40ss@h:5/db?sslmode=require")
    assert url.startswith("postgresql+psycopg2://u:p%40ss@h:5/db?")
    assert "sslmode=require" in url
    assert "search_path%3Ddagster" in url and "synchronous_commit%3Doff" in url


def test_retention_days_must_be_a_number() -> None:
    # Unreadable: the default, and one line naming the setting (the pass reports it, exit 1).
    config = Config.load({"COSTWATCH_RUN_RETENTION_DAYS": "two weeks"})
    assert config.run_retention_days == 14.0
    assert config.problems == (
        "COSTWATCH_RUN_RETENTION_DAYS must be a number of days (at least 0), got 'two weeks':"
        " using the default",
    )
    assert Config.load({"COSTWATCH_RUN_RETENTION_DAYS": "3.5"}).run_retention_days == 3.5
    assert Config.load({"COSTWATCH_RUN_RETENTION_DAYS": "0"}).run_retention_days == 0.0


def test_a_pass_writes_its_run_to_postgres_storage(db_url: str, tmp_path: Path) -> None:
    env = costwatch_env(db_url, tmp_path)
    result = run_costwatch("run", "--json", str(tmp_path / "pass.json"), env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    run_id = json.loads((tmp_path / "pass.json").read_text())["run_id"]
    assert query(db_url, "select run_id, status from dagster.runs") == [(run_id, "SUCCESS")]
    events = query(db_url, "select count(*) from dagster.event_logs where run_id = %s", (run_id,))
    assert events[0][0] > 50
    home = Path(env["DAGSTER_HOME"])
    assert (home / "dagster.yaml").read_text() == cw_instance.INSTANCE_YAML
    assert not list(home.rglob("*.db")), "no SQLite storage beside the PostgreSQL one"


@dg.asset
def tiny_asset() -> int:
    return 1


def test_retention_deletes_an_old_run_and_its_events(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTWATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path)))
    instance = cw_instance.dagster_instance()
    old = dg.materialize([tiny_asset], instance=instance).run_id
    new = dg.materialize([tiny_asset], instance=instance).run_id
    query_sql = (
        "update dagster.runs set create_timestamp = now() - interval '20 days' where run_id = %s"
    )
    import psycopg

    with psycopg.connect(db_url) as conn:
        conn.execute(query_sql, (old,))
    assert cw_instance.prune_old_runs(instance, days=14) == [old]
    assert query(db_url, "select run_id from dagster.runs") == [(new,)]
    assert query(db_url, "select count(*) from dagster.event_logs where run_id = %s", (old,)) == [
        (0,)
    ]
    assert query(db_url, "select count(*) > 0 from dagster.event_logs where run_id = %s", (new,))[
        0
    ][0]
    assert cw_instance.prune_old_runs(instance, days=0) == []  # 0 keeps every run


@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="tiny_checked")])
def tiny_checked():
    return dg.MaterializeResult(
        metadata={"rows": 1}, check_results=[dg.AssetCheckResult(passed=True)]
    )


def test_the_leaner_event_log_stores_what_dagster_reads_back(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CostwatchEventLogStorage overrides parts of the pinned dagster-postgres (no NOTIFY, table
    and column lookups once): they still exist there, and a materialization with a check is
    stored so that Dagster reads both back (the asset's latest event, the check's record)."""
    from dagster_postgres.event_log import PostgresEventLogStorage

    for name in ("store_event", "prepare_insert_event", "index_transaction", "has_table",
                 "_store_asset_event_tags", "_store_asset_event", "store_asset_check_event",
                 "_has_asset_key_col_on_connection"):  # fmt: skip
        assert callable(getattr(PostgresEventLogStorage, name, None)), name
    monkeypatch.setenv("COSTWATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path)))
    instance = cw_instance.dagster_instance()
    assert isinstance(instance.event_log_storage, cw_instance.CostwatchEventLogStorage)
    runs = [dg.materialize([tiny_checked], instance=instance).run_id for _ in range(2)]
    latest = instance.get_latest_materialization_event(dg.AssetKey("tiny_checked"))
    assert latest is not None and latest.run_id == runs[-1]
    assert latest.asset_materialization.metadata["rows"].value == 1
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("tiny_checked"), "positive"), limit=5
    )
    assert [(h.run_id, h.status.value) for h in history] == [(r, "SUCCEEDED") for r in runs[::-1]]
    stored = query(
        db_url,
        "select count(distinct run_id), count(*) from dagster.event_logs"
        " where dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    assert stored == [(2, 2)]


def test_partial_parse_state_is_rewritten_for_another_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state dbt parsed for one database, made current for another: dbt accepts it (the
    profile hash matches what dbt computes) and every relation points at the new database."""
    project.prepare_manifest()
    parsed_for = json.loads(project._profile_file().read_text())
    other = Config.load(
        {"COSTWATCH_HOME": str(tmp_path / "home")},
        database_url=f"postgresql://{parsed_for['user']}@{parsed_for['host']}:{parsed_for['port']}"
        f"/some_other_db?sslmode={parsed_for['sslmode']}",
    )
    assert project.partial_parse_for_profile(tmp_path, other)
    with open(tmp_path / "partial_parse.msgpack", "rb") as handle:
        state = msgpack.unpack(handle, raw=False, strict_map_key=False)
    current = {**parsed_for, "database": "some_other_db"}
    assert state["state_check"]["profile_hash"]["checksum"] == project.dbt_profile_hash(current)
    models = [n for n in state["nodes"].values() if n.get("resource_type") == "model"]
    assert models and all(n["database"] == "some_other_db" for n in models)
    assert all(n["relation_name"].startswith('"some_other_db".') for n in models)
    # dbt itself, with the rewritten state and the new profile: partial parse, no full re-parse
    import subprocess

    env = {
        **os.environ,
        "DBT_TARGET_PATH": str(tmp_path),
        "DBT_LOG_PATH": str(tmp_path),
        "DBT_PROFILES_DIR": str(other.dbt_profiles_dir()),  # the profile costwatch renders
    }
    done = subprocess.run(
        [project.DBT_EXECUTABLE, "parse", "--project-dir", str(project.DBT_PROJECT_DIR)],
        env=env,
        capture_output=True,
        text=True,
        cwd=project.DBT_PROJECT_DIR,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    log = (tmp_path / "dbt.log").read_text()
    assert "Partial parsing enabled" in log and "Starting full parse" not in log
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    model = next(n for n in manifest["nodes"].values() if n["resource_type"] == "model")
    assert model["database"] == "some_other_db"


def test_partial_parse_state_is_left_alone_when_the_hash_rule_does_not_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.prepare_manifest()
    monkeypatch.setattr(project, "dbt_profile_hash", lambda values: "not dbt's rule")
    assert not project.partial_parse_for_profile(tmp_path, Config.load())
    assert not (tmp_path / "partial_parse.msgpack").exists()

"""The suites inside a real pass: `orchestration.pipeline.run_pass` runs them and reports them,
raw findings as warnings that do not stop the pass, marts checked after they are built."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from orchestration.core.database import dbt_env
from orchestration.runbook.expectations.suites import CHECK_NAME, load_suites
from orchestration.runbook.seed import default_end, seed
from tests.conftest import dagster_home

RAW = [f"{'/'.join(s.asset_key)}:{CHECK_NAME}" for s in load_suites() if s.severity == "WARN"]
MARTS = [f"{'/'.join(s.asset_key)}:{CHECK_NAME}" for s in load_suites() if s.severity == "ERROR"]


@pytest.fixture
def pass_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """run_pass writes these into os.environ; monkeypatch puts them back afterwards."""
    for key, value in {"COSTWATCH_DATABASE_URL": db_url, **dbt_env(db_url)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home(tmp_path)))
    return db_url


def test_a_pass_runs_every_suite_and_raw_findings_only_warn(pass_env: str) -> None:
    from orchestration.pipeline import run_pass

    url = pass_env
    with psycopg.connect(url) as conn:
        seed(conn, "autosave_loop", days=4, events_per_hour=200, seed=5, end=default_end())
        conn.execute(
            "insert into raw.inference_events (event_id, created_at, feature, trigger_type, "
            "model, input_tokens, output_tokens, cost_usd, user_agent) "
            "values ('gx-dirty-1', now() - interval '5 minutes', 'chat', 'Hover', "
            "'gpt-4o', 10, 10, 0.01, 'gx-test')"
        )
    result = run_pass(url=url, wait_seconds=60)
    assert result.success, result.summary()
    ours = [name for name in result.checks_warned if name.endswith(f":{CHECK_NAME}")]
    assert ours == ["raw/inference_events:gx_suite"], result.summary()
    assert not [name for name in result.checks_failed if name.endswith(f":{CHECK_NAME}")]
    # Every suite ran (its duration is reported), the marts' ones after their tables existed.
    assert set(RAW + MARTS) <= set(result.checks), sorted(result.checks)
    assert "marts/cost_hourly" in result.materialized

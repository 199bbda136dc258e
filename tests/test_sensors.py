"""The Dagster side on a real database and a real (ephemeral) Dagster instance: the incident
sensor and its cursor, the run-failure alert, and the `cost_spikes` asset check."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest

from orchestration.incidents import sensors
from orchestration.incidents.sensors import (
    COST_SPIKES,
    SPIKE_DIAGNOSIS,
    incident_sensor,
    pipeline_failure_alert,
    spike_asset_checks,
)
from orchestration.resources import PostgresResource
from tests.test_incidents_support import T0, Marts, channel_env, hook_server, rows

NOW = T0 + timedelta(hours=6, minutes=5)


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def clock(monkeypatch):
    """The sensors' clock, moved by the test."""
    state = {"now": NOW}
    monkeypatch.setattr(sensors, "utcnow", lambda: state["now"])
    return state


@pytest.fixture(autouse=True)
def no_channels(monkeypatch):
    for name in (
        "COSTWATCH_ALERT_WEBHOOK_URL",
        "COSTWATCH_SLACK_WEBHOOK_URL",
        "COSTWATCH_PAGERDUTY_ROUTING_KEY",
        "COSTWATCH_COST_CAP_ENABLED",
    ):
        monkeypatch.delenv(name, raising=False)


def materialize_detection(instance: dg.DagsterInstance) -> None:
    for key in (COST_SPIKES, SPIKE_DIAGNOSIS):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))


def reason(result: dg.SensorResult) -> str:
    return result.skip_reason.skip_message


def tick(instance, url: str, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"database": PostgresResource(url=url)}
    )
    return incident_sensor(context)


def test_sensor_opens_on_materialization_and_its_cursor_makes_idle_ticks_free(
    db_url, instance, clock, monkeypatch
):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    materialize_detection(instance)
    with hook_server() as server:
        for key, value in channel_env(server).items():
            monkeypatch.setenv(key, value)
        server.script = [500]  # the webhook is down on the first try

        first = tick(instance, db_url, None)
        assert "1 opened (spike-2026-11-20T03: hidden_recompute auto_save)" in reason(first)
        assert "1 failed (retry later)" in reason(first)
        cursor = json.loads(first.cursor)
        assert cursor["marts/cost_spikes"] and cursor["marts/spike_diagnosis"]
        assert cursor["due"] == (NOW + timedelta(seconds=30)).isoformat()  # the retry
        assert rows(db_url, "select count(*) from ops.incidents") == [(1,)]

        # Nothing new and nothing due: the tick skips without touching the database.
        clock["now"] = NOW + timedelta(seconds=10)
        with monkeypatch.context() as patched:
            patched.setattr(sensors.engine, "tick", lambda *a, **k: pytest.fail("no work"))
            idle = tick(instance, db_url, first.cursor)
        assert reason(idle).startswith("no new materialization of marts/cost_spikes")
        assert "next retry or escalation check at" in reason(idle)
        assert idle.cursor == first.cursor

        # The retry falls due: the down channel is delivered, still one incident.
        clock["now"] = NOW + timedelta(seconds=45)
        retry = tick(instance, db_url, first.cursor)
        assert "0 opened" in reason(retry) and "1 alerts sent" in reason(retry)
        assert json.loads(retry.cursor)["due"] == (NOW + timedelta(minutes=60)).isoformat()
        assert len(server.bodies("/hooks/generic-secret-abc123")) == 2

        # New hours arrive (a materialization) after the hour: escalation.
        marts.append(40)
        materialize_detection(instance)
        clock["now"] = NOW + timedelta(minutes=70)
        escalated = tick(instance, db_url, retry.cursor)
        assert "1 escalated" in reason(escalated)
        assert json.loads(escalated.cursor)["due"] is None

        # Two quiet hours: resolved, PagerDuty resolve sent.
        marts.append(10, 10)
        materialize_detection(instance)
        clock["now"] = NOW + timedelta(hours=3)
        resolved = tick(instance, db_url, escalated.cursor)
        assert "1 resolved" in reason(resolved) and "0 open" in reason(resolved)
        assert server.bodies("/v2/enqueue")[-1]["event_action"] == "resolve"
    kinds = rows(db_url, "select kind, count(*) from ops.alerts group by 1 order by 1")
    assert kinds == [("escalated", 4), ("opened", 4), ("resolved", 4)]


def test_sensor_skips_with_a_reason_when_the_detection_marts_are_missing(db_url, instance, clock):
    result = tick(instance, db_url, None)
    assert "detection marts missing: marts.cost_spikes" in reason(result)


def test_run_failure_sensor_alerts_on_call_once_per_hour(db_url, instance, clock, monkeypatch):
    @dg.op
    def build_marts():
        raise RuntimeError("dbt exploded")

    @dg.job
    def costwatch_pass():
        build_marts()

    outcome = costwatch_pass.execute_in_process(instance=instance, raise_on_error=False)
    failure = next(e for e in outcome.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    with hook_server() as server:
        for key, value in channel_env(server).items():
            monkeypatch.setenv(key, value)
        for _ in range(2):
            context = dg.build_run_status_sensor_context(
                sensor_name="pipeline_failure_alert",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=outcome.dagster_run,
                resources={"database": PostgresResource(url=db_url)},
            ).for_run_failure()
            pipeline_failure_alert(context)
    (body,) = server.bodies("/hooks/generic-secret-abc123")
    assert body["event"] == "pipeline.failed" and body["run_id"] == outcome.run_id
    assert "of costwatch_pass failed" in body["error"]
    assert rows(db_url, "select channel, status from ops.alerts order by channel") == [
        ("log", "sent"), ("pagerduty", "sent"), ("slack", "sent"), ("webhook", "sent"),
    ]  # fmt: skip


@dg.multi_asset(specs=[dg.AssetSpec(COST_SPIKES), dg.AssetSpec(SPIKE_DIAGNOSIS)])
def detection_marts():
    """Stands in for the dbt models: the test wrote their tables already."""
    yield dg.MaterializeResult(asset_key=COST_SPIKES)
    yield dg.MaterializeResult(asset_key=SPIKE_DIAGNOSIS)


def run_check(url: str) -> dg.AssetCheckEvaluation:
    checks = spike_asset_checks([detection_marts])
    result = dg.materialize(
        [detection_marts, *checks], resources={"database": PostgresResource(url=url)}
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_asset_check_warns_while_a_sustained_spike_is_open(db_url):
    marts = Marts(db_url).append(10, 10, 10, 30, 32, 31)
    evaluation = run_check(db_url)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.check_name == "no_sustained_spike_open"
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["spike_id"] == "spike-2026-11-20T03"
    assert meta["spike_start"] == (T0 + timedelta(hours=3)).timestamp()
    assert meta["excess_cost_usd"] == 63.0 and meta["root_cause"] == "hidden_recompute"
    assert "trigger_type=auto_save" in meta["root_cause_detail"]

    marts.append(10)  # one quiet hour: the spike has ended but is not over yet
    evaluation = run_check(db_url)
    assert not evaluation.passed and evaluation.metadata["ongoing"].value is False
    marts.append(10)  # two quiet complete hours: over (the engine resolves it on the same rule)
    assert run_check(db_url).passed


def test_asset_check_only_exists_when_the_detection_model_does():
    @dg.asset(key=["marts", "cost_hourly"])
    def cost_hourly():
        return None

    assert spike_asset_checks([cost_hourly]) == []

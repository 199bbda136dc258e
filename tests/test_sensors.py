"""The Dagster side on a real database and a real (ephemeral) Dagster instance: the
`ops/incidents` asset downstream of the detection marts, the sensors that only launch runs
(with a run_key, or a SkipReason), the run-failure alert, and the `cost_spikes` asset check."""

from __future__ import annotations

import re
from datetime import timedelta

import dagster as dg
import psycopg
import pytest

from orchestration.defs import incidents as incident_defs
from orchestration.defs.incident_checks import spike_asset_checks
from orchestration.defs.incidents import (
    COST_BASELINE,
    COST_SPIKES,
    SPIKE_DIAGNOSIS,
    evaluate_due_sensor,
    evaluate_raw_data_sensor,
    incident_assets,
    pipeline_failure_alert,
)
from orchestration.defs.resources import PostgresResource
from tests.support.incidents import T0, Marts, channel_env, hook_server, rows

NOW = T0 + timedelta(hours=6, minutes=5)


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def clock(monkeypatch):
    """The incident step's clock, moved by the test."""
    state = {"now": NOW}
    monkeypatch.setattr(incident_defs, "utcnow", lambda: state["now"])
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


def reason(result: dg.SensorResult) -> str:
    return result.skip_reason.skip_message


def detection_stand_in(spikes_check_passes: bool):
    """Stands in for the dbt models (the test wrote their tables), with cost_spikes' error
    check passing or failing."""

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(COST_BASELINE),
            dg.AssetSpec(COST_SPIKES),
            dg.AssetSpec(SPIKE_DIAGNOSIS),
        ],
        check_specs=[dg.AssetCheckSpec("not_null_spike_id", asset=COST_SPIKES)],
    )
    def detection_marts():
        yield dg.MaterializeResult(asset_key=COST_BASELINE)
        yield dg.MaterializeResult(asset_key=COST_SPIKES)
        yield dg.AssetCheckResult(
            asset_key=COST_SPIKES,
            check_name="not_null_spike_id",
            passed=spikes_check_passes,
            severity=dg.AssetCheckSeverity.ERROR,
        )
        yield dg.MaterializeResult(asset_key=SPIKE_DIAGNOSIS)

    return detection_marts


def run_pass(instance, url: str, spikes_check_passes: bool = True) -> dg.ExecuteInProcessResult:
    marts = detection_stand_in(spikes_check_passes)
    (incidents,) = incident_assets(set(marts.keys))
    return dg.materialize(
        [marts, incidents],
        instance=instance,
        resources={"database": PostgresResource.for_url(url)},
        raise_on_error=False,
    )


def incidents_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == incident_defs.INCIDENTS
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_incident_step_runs_in_the_pass_after_the_diagnosis(db_url, instance, clock):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    result = run_pass(instance, db_url)
    assert result.success
    meta = incidents_metadata(result)
    assert (meta["incidents_opened"], meta["alerts_sent"], meta["alerts_pending"]) == (1, 1, 0)
    assert meta["problems"] == ""
    assert rows(db_url, "select spike_id, root_cause from ops.incidents") == [
        ("spike-2026-11-20T03", "hidden_recompute")
    ]
    # The step ran after the marts it reads, in the same run.
    order = [
        e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START
    ]
    assert order.index("ops__incidents") > order.index("detection_marts")
    # The next pass: nothing new, nothing doubled.
    clock["now"] = NOW + timedelta(minutes=30)
    assert incidents_metadata(run_pass(instance, db_url))["incidents_opened"] == 0
    assert rows(db_url, "select count(*) from ops.alerts") == [(1,)]


def test_a_failed_detection_check_only_queues_pipeline_failed(db_url, instance, clock):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    meta = incidents_metadata(run_pass(instance, db_url, spikes_check_passes=False))
    assert meta["incidents_opened"] == 0
    assert "marts/cost_spikes:not_null_spike_id" in meta["problems"]
    assert rows(db_url, "select count(*) from ops.incidents") == [(0,)]
    assert rows(db_url, "select kind, status from ops.alerts") == [("pipeline_failed", "sent")]


def test_spikes_built_but_their_diagnosis_not_open_nothing_until_it_is(db_url, instance, clock):
    """`cost_spikes` materialized and `spike_diagnosis` failing in the same step (as dbt does
    when the diagnosis model errors): the incident step does not run on that pass (CONTRACT:
    never before the spike's diagnosis exists); the next pass opens it with the diagnosed cause."""

    @dg.multi_asset(specs=[dg.AssetSpec(COST_BASELINE), dg.AssetSpec(COST_SPIKES),
                           dg.AssetSpec(SPIKE_DIAGNOSIS)])  # fmt: skip
    def detection_marts():
        yield dg.MaterializeResult(asset_key=COST_BASELINE)
        yield dg.MaterializeResult(asset_key=COST_SPIKES)
        raise RuntimeError("Database Error in model spike_diagnosis")

    marts = Marts(db_url)
    marts.append(10, 10, 10, 30, 32, 31)
    with psycopg.connect(db_url) as conn:
        conn.execute("truncate marts.spike_diagnosis")  # the diagnosis did not build
    (incidents,) = incident_assets(set(detection_marts.keys))
    failed = dg.materialize(
        [detection_marts, incidents],
        instance=instance,
        resources={"database": PostgresResource.for_url(db_url)},
        raise_on_error=False,
    )
    assert not failed.success
    started = [
        e.step_key for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_START
    ]
    assert started == ["detection_marts"]
    assert [e.asset_key for e in failed.get_asset_materialization_events()] == [
        COST_BASELINE, COST_SPIKES,
    ]  # fmt: skip
    assert rows(db_url, "select count(*) from ops.incidents") == [(0,)]

    marts.rebuild()  # the diagnosis builds on the next pass
    meta = incidents_metadata(run_pass(instance, db_url))
    assert meta["incidents_opened"] == 1
    assert rows(db_url, "select root_cause from ops.incidents") == [("hidden_recompute",)]


def test_due_sensor_launches_the_step_when_a_retry_falls_due(db_url, instance, clock):
    context = dg.build_sensor_context(instance=instance)
    assert reason(evaluate_due_sensor(context)) == "ops/incidents was never materialized"
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    run_pass(instance, db_url)  # opens the incident: escalation check due in an hour
    result = evaluate_due_sensor(dg.build_sensor_context(instance=instance), now=NOW)
    assert reason(result).startswith("next retry, escalation or follow-up at ")
    later = NOW + timedelta(hours=2)
    result = evaluate_due_sensor(dg.build_sensor_context(instance=instance), now=later)
    (request,) = result.run_requests
    assert request.run_key.startswith("incidents-due-")
    again = evaluate_due_sensor(
        dg.build_sensor_context(instance=instance, cursor=result.cursor), now=later
    )
    assert not again.run_requests and "already requested" in reason(again)


def test_raw_data_sensor_skips_with_a_reason_before_db_init(db_url, instance):
    with psycopg.connect(db_url) as conn:
        conn.execute("drop table raw.inference_events cascade")
    result = evaluate_raw_data_sensor(dg.build_sensor_context(instance=instance), db_url)
    assert reason(result) == "no raw tables yet: run `costwatch db init`"


def test_raw_data_sensor_launches_a_pass_on_new_events_only(db_url, instance):
    context = dg.build_sensor_context(instance=instance)
    assert reason(evaluate_raw_data_sensor(context, db_url)) == "no raw events yet"
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "insert into raw.inference_events (event_id, created_at) values ('e1', %s)", (T0,)
        )
    result = evaluate_raw_data_sensor(dg.build_sensor_context(instance=instance), db_url)
    (request,) = result.run_requests
    assert request.run_key == f"raw-{T0.isoformat()}"
    again = evaluate_raw_data_sensor(
        dg.build_sensor_context(instance=instance, cursor=result.cursor), db_url
    )
    assert not again.run_requests and reason(again).startswith("no raw events newer than")


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
            # The resource depends on the configuration object: open its context as Dagster does.
            with dg.build_run_status_sensor_context(
                sensor_name="pipeline_failure_alert",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=outcome.dagster_run,
                resources={"database": PostgresResource.for_url(db_url)},
            ) as context:
                pipeline_failure_alert(context.for_run_failure())
    (body,) = server.bodies("/hooks/generic-secret-abc123")
    assert body["event"] == "pipeline.failed" and body["run_id"] == outcome.run_id
    assert "of costwatch_pass failed" in body["error"]
    assert rows(db_url, "select channel, status from ops.alerts order by channel") == [
        ("log", "sent"), ("pagerduty", "sent"), ("slack", "sent"), ("webhook", "sent"),
    ]  # fmt: skip


@dg.multi_asset(specs=[dg.AssetSpec(COST_SPIKES), dg.AssetSpec(SPIKE_DIAGNOSIS)])
def detection_marts_only():
    """Stands in for the dbt models: the test wrote their tables already."""
    yield dg.MaterializeResult(asset_key=COST_SPIKES)
    yield dg.MaterializeResult(asset_key=SPIKE_DIAGNOSIS)


def run_check(url: str) -> dg.AssetCheckEvaluation:
    checks = spike_asset_checks([detection_marts_only])
    result = dg.materialize(
        [detection_marts_only, *checks], resources={"database": PostgresResource.for_url(url)}
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
    assert meta["excess_cost_usd"] == "$63.00" and meta["root_cause"] == "hidden_recompute"
    assert re.fullmatch(r"\+\d+%", meta["pct_above_baseline"]), meta["pct_above_baseline"]
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

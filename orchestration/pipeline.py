"""`costwatch run`: one pass of the same Dagster definitions `dagster dev` serves, in-process.

A pass materializes every asset (dbt build with its tests as asset checks, the expectation
suites, the incident step `ops/incidents`, the triage report): the job and nothing after it.
Passes are serialised by a PostgreSQL advisory
lock, so two at once (or a pass and a `dagster dev` tick) never double an incident or race on a
mart.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

from orchestration.core.config import Config
from orchestration.core.database import first_line
from orchestration.core.dbt_leftovers import drop_dbt_leftovers
from orchestration.core.dbt_log import dbt_summary
from orchestration.core.embedded import database_url
from orchestration.core.engine import EngineError, check_engine
from orchestration.core.locks import PASS_LOCK_KEY, PassError, pass_lock
from orchestration.core.schema import check_raw_schema

# The pass's lock lives in orchestration/core/locks.py (the dbt resource takes it too); re-exported.
__all__ = ["PASS_LOCK_KEY", "PassError", "PassResult", "pass_lock", "run_pass"]


@dataclass
class PassResult:
    success: bool
    seconds: float
    run_id: str | None = None
    materialized: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: list[str] = field(default_factory=list)
    checks_warned: list[str] = field(default_factory=list)
    error: str | None = None
    incidents: str | None = None
    dbt: str | None = None  # dbt's one line (its full log only with `costwatch run -v`)
    # Where the time went (seconds): phases of the pass, Dagster steps, dbt nodes, checks.
    timings: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    models: dict[str, float] = field(default_factory=dict)
    checks: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "success": self.success,
            "seconds": round(self.seconds, 3),
            "run_id": self.run_id,
            "materialized": self.materialized,
            "checks_passed": self.checks_passed,
            "checks_failed": self.checks_failed,
            "checks_warned": self.checks_warned,
            "error": self.error,
            "incidents": self.incidents,
            "timings": self.timings,
            "steps": self.steps,
            "models": self.models,
            "checks": self.checks,
        }

    def summary(self) -> str:
        lines = [
            f"costwatch pass {'finished' if self.success else 'FAILED'} in {self.seconds:.1f}s: "
            f"{len(self.materialized)} assets materialized, {self.checks_passed} checks passed, "
            f"{len(self.checks_warned)} warned, {len(self.checks_failed)} failed"
        ]
        if self.dbt:
            lines.append(f"  {self.dbt}")
        lines += [f"  check failed: {name}" for name in self.checks_failed]
        lines += [f"  check warned: {name}" for name in self.checks_warned]
        if self.incidents:
            lines.append(self.incidents)
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)


def preflight(url: str) -> None:
    """Fail early, with one line, when the database or its raw tables are not usable."""
    check_raw_schema(url)


def run_pass(
    full_refresh: bool = False,
    url: str | None = None,
    wait_seconds: float | None = None,
    config: Config | None = None,
) -> PassResult:
    """Materialize every asset through the Dagster definitions (the incident step among them),
    with every setting from `config` (default: read from the environment now) on `url` (default:
    the configured database, else the embedded server, started)."""
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = round(now - since, 3)
        return now

    config = config or Config.load()
    try:  # before anything starts or is written: an engine that cannot run says so
        check_engine(config.environ)
    except EngineError as err:
        raise PassError(str(err)) from None
    url = url or config.database_url or database_url()
    if wait_seconds is None:
        wait_seconds = config.pass_wait_seconds
    config = config.replace(database_url=url, pass_wait_seconds=wait_seconds)
    preflight(url)
    mark = lap("preflight", started)
    # Start-up time: a pass that fails its preflight says so before Dagster's seconds of imports.
    from orchestration.defs.project import ManifestError, prepare_manifest

    mark = lap("dagster_import", mark)
    try:
        prepare_manifest(config)
    except ManifestError as err:
        raise PassError(str(err)) from None
    mark = lap("dbt_manifest", mark)
    # Start-up time, and after prepare_manifest(): the definitions read dbt's manifest on import.
    from orchestration.definitions import PASS_JOB_NAME, build_definitions

    job = build_definitions(config).resolve_job_def(PASS_JOB_NAME)
    mark = lap("definitions_import", mark)
    with pass_lock(url, wait_seconds):
        mark = lap("lock_wait", mark)
        result = _execute_or_fail(job, full_refresh, config)
        lap("execute", mark)
    if not result.success:
        drop_dbt_leftovers(url)
    result.timings = timings
    result.seconds = time.monotonic() - started
    return result


def _execute_or_fail(job: dg.JobDefinition, full_refresh: bool, config: Config) -> PassResult:
    """The run, or a failed result with one line when the run itself could not go on: the
    database restarted or went away under Dagster's storage (its event log is in PostgreSQL),
    which Dagster raises rather than reports as a failed step."""
    started = time.monotonic()
    try:
        return _execute(job, full_refresh, config)
    except Exception as err:  # noqa: BLE001 - one line in the pass's summary, never a traceback
        if config.debug:
            raise
        return PassResult(
            success=False,
            seconds=time.monotonic() - started,
            error=f"the run stopped: {describe_error(err)}",
        )


def describe_error(err: BaseException) -> str:
    """One line for an error a library raised (psycopg; SQLAlchemy, under Dagster's storage,
    wraps the driver's error as `.orig`)."""
    cause = getattr(err, "orig", None) or err
    return f"{type(cause).__name__}: {first_line(cause)}"


def _execute(job: dg.JobDefinition, full_refresh: bool, config: Config) -> PassResult:
    # Start-up time: Dagster loads once the preflight has passed (run_pass imports it first).
    import dagster as dg

    from orchestration.instance import dagster_instance

    instance = dagster_instance(config)
    run_config = {
        "ops": {"costwatch_dbt_assets": {"config": {"full_refresh": full_refresh}}},
        # The pass's summary is what `costwatch run` prints; Dagster's own log of the run is in
        # its instance (the UI). COSTWATCH_LOG_LEVEL=INFO (or DEBUG) streams it to the console.
        "loggers": {"console": {"config": {"log_level": config.log_level}}},
    }
    started = time.monotonic()
    # dagster-dbt re-emits dbt's every log line on stdout: kept to one line unless verbose.
    verbose = config.log_level != "CRITICAL"
    captured = io.StringIO()
    with contextlib.nullcontext() if verbose else contextlib.redirect_stdout(captured):
        outcome = job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
        )
    result = PassResult(
        success=outcome.success,
        seconds=time.monotonic() - started,
        run_id=outcome.run_id,
        dbt=None if verbose else dbt_summary(captured.getvalue()),
    )
    result.materialized = sorted(
        event.asset_key.to_user_string()
        for event in outcome.get_asset_materialization_events()
        if event.asset_key is not None
    )
    _collect_timings(instance, outcome, result)
    _collect_incidents(outcome, result)
    for evaluation in outcome.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if evaluation.passed:
            result.checks_passed += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            result.checks_warned.append(name)
        else:
            result.checks_failed.append(name)
    if not outcome.success:
        result.error = _first_failure(outcome)
    return result


def _collect_timings(instance, outcome, result: PassResult) -> None:
    """Step durations from Dagster's event log; dbt node durations from dagster-dbt's metadata."""
    started: dict[str, float] = {}
    for entry in instance.all_logs(outcome.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            if event.step_key in started:
                result.steps[event.step_key] = round(entry.timestamp - started[event.step_key], 3)
    for event in outcome.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        duration = materialization.metadata.get("Execution Duration")
        if duration is not None:
            result.models[materialization.asset_key.to_user_string()] = float(duration.value)
    for evaluation in outcome.get_asset_check_evaluations():
        duration = evaluation.metadata.get("Execution Duration")
        if duration is not None:
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            result.checks[name] = float(duration.value)


def _first_failure(outcome) -> str:
    for event in outcome.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            cause = error.cause if error is not None and error.cause is not None else error
            if cause is not None:
                message = first_line(cause.message)
                # "dagster._core.definitions.events.Failure: why" -> "why"
                prefix = f"{cause.cls_name}: "
                message = message.split(prefix, 1)[1] if prefix in message else message
                return f"step {event.step_key} failed: {message}"
            return f"step {event.step_key} failed"
    return "the run failed"


INCIDENTS_KEY = "ops/incidents"


def _collect_incidents(outcome, result: PassResult) -> None:
    """The incident step's line; a setting it could not read, or a step of it that failed,
    fails the pass (non-zero exit) after incidents were opened and alerts sent."""
    for event in outcome.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() != INCIDENTS_KEY:
            continue
        summary = materialization.metadata.get("summary")
        problems = materialization.metadata.get("problems")
        result.incidents = summary.value if summary is not None else None
        if problems is not None and problems.value:
            result.success = False
            result.error = result.error or f"incident step: {problems.value}"

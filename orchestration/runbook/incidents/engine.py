"""The incident step of a pass: what runbook steps 7-8 and its escalation do by hand.

`tick`, given a database and `now`, under the incident lock:
1. queues `pipeline_failed` when told the pass failed (its detection models or their checks) or a
   setting cannot be read, and then, on a failed pass, does nothing else;
2. opens, updates, reopens, escalates and resolves incidents (`lifecycle`), follows them up a day
   later (`follow_up`);
3. applies the cost cap (when on and readable);
4. delivers every alert that is due (`delivery`): new ones, and retries whose back-off passed.

Every write is idempotent (unique spike_id, unique (channel, kind, dedup_key, cycle)), so two
steps at once never double anything.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from orchestration.core import locks
from orchestration.core.database import connect, first_line
from orchestration.runbook.incidents import (
    alert_store,
    costcap,
    delivery,
    follow_up,
    lifecycle,
    store,
    transitions,
)
from orchestration.runbook.incidents.settings import IncidentSettings
from orchestration.runbook.incidents.tick_report import TickReport

TICK_LOCK_KEY = "costwatch.incidents"
LOCK_WAIT_SECONDS = 30.0

_log = logging.getLogger("costwatch.incidents")

# Kept for callers of the old module layout.
back_under_threshold = transitions.back_under_threshold


def tick(
    url: str,
    now: datetime | None = None,
    settings: IncidentSettings | None = None,
    log: Any = None,
    pipeline_error: str | None = None,
    run_id: str | None = None,
) -> TickReport:
    """One incident step against the database at `url`. A failed pass (`pipeline_error`) only
    queues and delivers its `pipeline_failed` alert."""
    now = now or datetime.now(UTC)
    log = log or _log
    report = TickReport()
    settings = settings or IncidentSettings.from_env()
    report.problems = list(settings.problems)
    for problem in settings.problems:
        log.error(f"setting ignored: {problem}")
    with _tick_lock(url) as conn:
        if conn is None:
            report.skipped = "another incident step holds the lock"
            return report
        failures = ([pipeline_error] if pipeline_error else []) + [
            f"setting: {p}" for p in settings.problems
        ]
        if failures:
            delivery.queue_pipeline_failed(conn, settings, now, "; ".join(failures), run_id)
        missing = store.missing_tables(conn, store.DETECTION_MARTS)
        if pipeline_error is not None:
            report.skipped = f"the pass failed: {first_line(pipeline_error)}"
        elif missing:
            report.skipped = (
                f"detection marts missing: {', '.join(missing)} (no pass built them yet)"
            )
            log.info(f"incident step: {report.skipped}")
        else:
            _run_steps(conn, settings, now, report, log)
        report.add_delivery(delivery.deliver_due(conn, settings, now, log))
        report.pending = alert_store.pending_count(conn)
        report.still_open = len(store.open_incidents(conn))
        report.next_due_at = next_due(conn, settings, now)
    return report


def _run_steps(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    report: TickReport,
    log: Any,
) -> None:
    """Each step on its own: one that fails is reported and the others (delivery) still run."""
    steps = (
        ("incidents", lambda: lifecycle.evaluate_spikes(conn, settings, now, report, log)),
        ("follow-up", lambda: follow_up.follow_up_due(conn, settings, now, report, log)),
        ("cost cap", lambda: _apply_cost_cap(conn, settings, now, report, log)),
    )
    for name, step in steps:
        try:
            step()
        except psycopg.Error as err:
            report.errors.append(f"{name}: {first_line(err)}")
            log.error(f"{name} step failed: {first_line(err)}")


def deliver_pending(
    url: str, settings: IncidentSettings, now: datetime | None = None
) -> TickReport:
    """Deliver what is due now, under the step's lock (for `costwatch incidents ack|resolve`)."""
    now = now or datetime.now(UTC)
    report = TickReport()
    with _tick_lock(url) as conn:
        if conn is None:
            report.skipped = "another incident step holds the lock; it will deliver them"
            return report
        report.add_delivery(delivery.deliver_due(conn, settings, now))
        report.pending = alert_store.pending_count(conn)
    return report


def notify_pipeline_failure(
    url: str,
    error: str,
    run_id: str | None = None,
    now: datetime | None = None,
    log: Any = None,
    settings: IncidentSettings | None = None,
) -> TickReport:
    """What the run-failure sensor and hook do: a `pipeline_failed` alert, then due retries."""
    return tick(url, now=now, settings=settings, log=log, pipeline_error=error, run_id=run_id)


@contextlib.contextmanager
def _tick_lock(url: str) -> Iterator[psycopg.Connection | None]:
    """An autocommit connection to work with while this process holds the step's lock (a row
    of ops.locks, out of analysts' reach); None if another step kept it 30 s."""
    with locks.held(url, TICK_LOCK_KEY, LOCK_WAIT_SECONDS) as got:
        if not got:
            yield None
            return
        conn = connect(url, autocommit=True)
        try:
            yield conn
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.close()


def _apply_cost_cap(
    conn: psycopg.Connection,
    settings: IncidentSettings,
    now: datetime,
    report: TickReport,
    log: Any,
) -> None:
    open_ones = store.open_incidents(conn)
    incident_id = open_ones[-1]["incident_id"] if open_ones else None
    with conn.transaction():
        decision = costcap.apply_cost_cap(conn, settings, now, incident_id)
    if decision is not None:
        report.actions.append(decision.describe())
        log.warning(decision.describe())


def next_due(
    conn: psycopg.Connection, settings: IncidentSettings, now: datetime
) -> datetime | None:
    """The earliest moment the step has work without new data: a retry, an escalation age,
    a follow-up."""
    candidates = [
        alert_store.next_retry_at(conn),
        store.next_follow_up(conn, now),
    ]
    if settings.escalation_enabled:
        candidates.append(
            store.next_escalation_check(
                conn, timedelta(minutes=settings.escalate_after_minutes), now
            )
        )
    due = [c for c in candidates if c is not None]
    return min(due) if due else None


__all__ = ["TickReport", "deliver_pending", "notify_pipeline_failure", "tick"]

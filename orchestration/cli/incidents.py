"""`costwatch incidents list | show ID | ack ID | resolve ID`: the incident log for humans."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestration.cli.common import Parser, positive_int
from orchestration.core.database import connect
from orchestration.core.embedded import database_url
from orchestration.core.formatting import strip_control
from orchestration.runbook.incidents import alert_store, delivery, engine, store
from orchestration.runbook.incidents.settings import IncidentSettings

# Control characters other than newline and tab (escape sequences would reach the terminal).
_BLOCK_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class IncidentsError(RuntimeError):
    """A one-line error of `costwatch incidents` (the CLI prints it and exits non-zero)."""


def register(sub: argparse._SubParsersAction) -> None:
    incidents = sub.add_parser("incidents", help="the incident log")
    inc_sub = incidents.add_subparsers(dest="incidents_command", parser_class=Parser)
    inc_sub.add_parser("list", help="recent incidents")
    for name, text in (
        ("show", "one incident, with its report"),
        ("ack", "acknowledge: no escalation, PagerDuty acknowledged"),
        ("resolve", "resolve by hand"),
    ):
        p = inc_sub.add_parser(name, help=text)
        p.add_argument("incident_id", type=positive_int, metavar="ID", help="the incident's number")
    incidents.set_defaults(handler=incidents_command, incidents_command="list")


def _console() -> Console:
    """rich, wide enough when piped that a table is never cut to 80 columns."""
    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, soft_wrap=True, width=width)


def _t(value: Any) -> str:
    """Text from the data, safe for rich: no markup, no control characters."""
    return escape(strip_control("" if value is None else str(value)))


def _when(value: Any) -> str:
    if not isinstance(value, datetime):
        return ""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _money(value: Any) -> str:
    return "" if value is None else f"${float(value):,.2f}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def incidents_command(args: argparse.Namespace, url: str | None = None) -> int:
    """Dispatch `costwatch incidents ...`; errors surface as IncidentsError / DatabaseError."""
    url = url or database_url()
    command = getattr(args, "incidents_command", None) or "list"
    out = _console()
    with connect(url) as conn:
        if store.missing_tables(conn, ("ops.incidents", "ops.alerts")):
            raise IncidentsError("the ops tables are missing: run `costwatch db init`")
        if command == "list":
            _list(out, store.list_incidents(conn))
            return 0
        incident_id = int(args.incident_id)
        incident = store.incident(conn, incident_id)
        if incident is None:
            raise IncidentsError(f"no incident {incident_id} (see `costwatch incidents list`)")
        now = datetime.now(UTC)
        if command == "show":
            _show(
                out,
                incident,
                alert_store.alerts_for(conn, incident_id),
                alert_store.actions_for(conn, incident_id),
            )
            return 0
        settings = IncidentSettings.from_env()
        for problem in settings.problems:
            print(f"setting ignored: {strip_control(problem)}", file=sys.stderr)
        if command == "ack":
            # Stops escalation; PagerDuty hears it on the incident's dedup_key.
            first = incident["acknowledged_at"] is None
            store.mark_acknowledged(conn, incident_id, now, _user())
            if first and incident["status"] == "open":
                delivery.queue_incident_alerts(conn, incident_id, "acknowledged", now, settings)
            conn.commit()
            report = engine.deliver_pending(url, settings, now)
            out.print(f"incident {incident_id} acknowledged; {report.sent} alerts sent")
            return 0
        if command == "resolve":
            if not store.mark_resolved(conn, incident_id, now, _user()):
                out.print(f"incident {incident_id} was already resolved")
                return 0
            delivery.queue_incident_alerts(conn, incident_id, "resolved", now, settings)
            conn.commit()
            report = engine.deliver_pending(url, settings, now)
            out.print(
                f"incident {incident_id} resolved; {report.sent} alerts sent"
                + (f", {report.failed} failed (retried by the next tick)" if report.failed else "")
            )
            return 0
    raise IncidentsError(f"unknown incidents command {command!r}")


def _list(out: Console, incidents: list[dict[str, Any]]) -> None:
    if not incidents:
        out.print("no incidents")
        return
    table = Table(box=None, header_style="bold")
    for column in (
        "id",
        "status",
        "severity",
        "spike start",
        "root cause",
        "excess",
        "alerts",
        "opened",
    ):
        table.add_column(column)
    for i in incidents:
        status = i["status"]
        if status == "open" and i.get("escalated_at"):
            status = "open, escalated"
        if status == "open" and i.get("acknowledged_at"):
            status += ", acked"
        alerts = f"{i['alerts_sent']} sent" + (
            f", {i['alerts_failed']} failed" if i["alerts_failed"] else ""
        )
        table.add_row(
            str(i["incident_id"]), status, _t(i["severity"]), _when(i["spike_start"]),
            _t(i["root_cause"]), _money(i["excess_cost_usd"]), alerts, _when(i["opened_at"]),
        )  # fmt: skip
    out.print(table)


def _show(
    out: Console, i: dict[str, Any], alerts: list[dict[str, Any]], actions: list[dict[str, Any]]
) -> None:
    out.print(
        f"[bold]Incident {i['incident_id']}[/bold]: spike {_t(i['spike_id'])} "
        f"({_t(i['status'])}, {_t(i['severity'])})"
    )
    facts = [
        ("spike start", _when(i["spike_start"])),
        ("opened", _when(i["opened_at"])),
        ("acknowledged", f"{_when(i['acknowledged_at'])} {_t(i.get('acknowledged_by'))}".strip()),
        ("escalated", _when(i["escalated_at"])),
        ("resolved", f"{_when(i['resolved_at'])} {_t(i.get('resolved_by'))}".strip()),
        ("reopened", _when(i.get("reopened_at"))),
        ("follow-up", f"{_when(i['follow_up_at'])} {_t(i.get('follow_up_result'))}".strip()),
        ("excess cost", _money(i["excess_cost_usd"])),
        ("root cause", f"{_t(i['root_cause'])}: {_t(i['root_cause_detail'])}"),
        ("mitigation applied", _t(i["mitigation_applied"]) or "none yet"),
        ("alert created", "yes" if i["alert_created"] else "no"),
    ]
    for name, value in facts:
        if value:
            out.print(f"  {name + ':':<20}{value}")
    out.print("\n[bold]Recommended mitigation[/bold]")
    out.print(_t(i["mitigation_recommended"]))
    if alerts:
        table = Table(box=None, header_style="bold", title="alerts", title_justify="left")
        for column in ("id", "channel", "kind", "status", "attempts", "sent", "next try", "error"):
            table.add_column(column)
        for a in alerts:
            table.add_row(
                str(a["alert_id"]), a["channel"], a["kind"], a["status"], str(a["attempts"]),
                _when(a["sent_at"]),
                _when(a["next_attempt_at"]) if a["status"] == "pending" else "",
                _t(a["error"]) if a["status"] in ("failed", "pending") else "",
            )  # fmt: skip
        out.print()
        out.print(table)
    for action in actions:
        mode = "dry-run" if action["dry_run"] else "applied"
        out.print(
            f"action {_t(action['action'])} {_t(action['feature'])} ({mode}) "
            f"at {_when(action['taken_at'])}"
        )
    if i["report_md"]:
        out.print("\n[bold]Report[/bold]")
        out.print(_BLOCK_CONTROL.sub("", i["report_md"]), markup=False)

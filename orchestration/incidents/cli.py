"""`costwatch incidents list | show ID | ack ID | resolve ID`: the incident log for humans."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime
from typing import Any

from orchestration.database import connect, database_url


def _console():
    """rich, wide enough when piped that a table is never cut to 80 columns."""
    import sys

    from rich.console import Console

    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, soft_wrap=True, width=width)


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if isinstance(value, datetime) else ""


def _money(value: Any) -> str:
    return "" if value is None else f"${float(value):,.2f}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def incidents_command(args: argparse.Namespace, url: str | None = None) -> int:
    """Dispatch `costwatch incidents ...`; errors surface as CostwatchError / DatabaseError."""
    from orchestration.cli import CostwatchError
    from orchestration.incidents import engine, store
    from orchestration.incidents.settings import IncidentSettings, SettingsError

    url = url or database_url()
    command = getattr(args, "incidents_command", None) or "list"
    out = _console()
    with connect(url) as conn:
        if store.missing_tables(conn, ("ops.incidents", "ops.alerts")):
            raise CostwatchError("the ops tables are missing: run `costwatch db init`")
        if command == "list":
            _list(out, store.list_incidents(conn))
            return 0
        incident_id = int(args.incident_id)
        incident = store.incident(conn, incident_id)
        if incident is None:
            raise CostwatchError(f"no incident {incident_id} (see `costwatch incidents list`)")
        now = datetime.now(UTC)
        if command == "show":
            _show(
                out,
                incident,
                store.alerts_for(conn, incident_id),
                store.actions_for(conn, incident_id),
            )
            return 0
        if command == "ack":
            store.mark_acknowledged(conn, incident_id, now, _user())
            conn.commit()
            out.print(f"incident {incident_id} acknowledged")
            return 0
        if command == "resolve":
            try:
                settings = IncidentSettings.from_env()
            except SettingsError as err:
                raise CostwatchError(str(err)) from None
            if not store.mark_resolved(conn, incident_id, now, _user()):
                out.print(f"incident {incident_id} was already resolved")
                return 0
            engine.queue_incident_alerts(conn, incident_id, "resolved", now, settings)
            conn.commit()
            report = engine.deliver_pending(url, settings, now)
            out.print(
                f"incident {incident_id} resolved; {report.sent} alerts sent"
                + (f", {report.failed} failed (retried by the next tick)" if report.failed else "")
            )
            return 0
    raise CostwatchError(f"unknown incidents command {command!r}")


def _list(out, incidents: list[dict[str, Any]]) -> None:
    from rich.table import Table

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
            str(i["incident_id"]), status, i["severity"] or "", _when(i["spike_start"]),
            i["root_cause"] or "", _money(i["excess_cost_usd"]), alerts, _when(i["opened_at"]),
        )  # fmt: skip
    out.print(table)


def _show(
    out, i: dict[str, Any], alerts: list[dict[str, Any]], actions: list[dict[str, Any]]
) -> None:
    from rich.table import Table

    out.print(
        f"[bold]Incident {i['incident_id']}[/bold]: spike {i['spike_id']} "
        f"({i['status']}, {i['severity']})"
    )
    facts = [
        ("spike start", _when(i["spike_start"])),
        ("opened", _when(i["opened_at"])),
        ("acknowledged", f"{_when(i['acknowledged_at'])} {i.get('acknowledged_by') or ''}".strip()),
        ("escalated", _when(i["escalated_at"])),
        ("resolved", f"{_when(i['resolved_at'])} {i.get('resolved_by') or ''}".strip()),
        ("follow-up", _when(i["follow_up_at"])),
        ("excess cost", _money(i["excess_cost_usd"])),
        ("root cause", f"{i['root_cause']}: {i['root_cause_detail']}"),
        ("mitigation applied", i["mitigation_applied"] or "none yet"),
        ("alert created", "yes" if i["alert_created"] else "no"),
    ]
    for name, value in facts:
        if value:
            out.print(f"  {name + ':':<20}{value}")
    out.print("\n[bold]Recommended mitigation[/bold]")
    out.print(i["mitigation_recommended"] or "")
    if alerts:
        table = Table(box=None, header_style="bold", title="alerts", title_justify="left")
        for column in ("id", "channel", "kind", "status", "attempts", "sent", "next try", "error"):
            table.add_column(column)
        for a in alerts:
            table.add_row(
                str(a["alert_id"]), a["channel"], a["kind"], a["status"], str(a["attempts"]),
                _when(a["sent_at"]), _when(a["next_attempt_at"]) if a["retryable"] else "",
                a["error"] or "" if a["status"] == "failed" else "",
            )  # fmt: skip
        out.print()
        out.print(table)
    for action in actions:
        mode = "dry-run" if action["dry_run"] else "applied"
        out.print(
            f"action {action['action']} {action['feature'] or ''} ({mode}) "
            f"at {_when(action['taken_at'])}"
        )
    if i["report_md"]:
        out.print("\n[bold]Report[/bold]")
        out.print(i["report_md"], markup=False)

"""What on-call sees in the Dagster UI after a pass: the incidents, where each alert went, the
report with its chart, each as formatted metadata (money as $47.86, ratios as percentages).

- `ops/incidents` (the incident step, orchestration/defs/incidents.py) gets `incident_metadata`:
  open incidents, the newest one in one line, the ack command, a table of recent incidents.
- `ops/alerts` (built here, after the incident step) reads `ops.alerts`: per channel what was
  delivered, failed or queued, and the newest alerts in a table.
- `ops/incident_report` (orchestration/defs/reports.py) gets `report_summary_metadata`: the
  report's five-line summary as text entries, so its page tells the story before any click.

The words and figures are those of the CLI (`costwatch incidents list`, `costwatch triage`):
the incident's own `excess_cost_usd`, the triage summary's lines.
"""

import html
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import dagster as dg
import psycopg
from dagster import AssetExecutionContext

from orchestration.core.database import connect
from orchestration.core.formatting import escape_md, money, pct, strip_control, table
from orchestration.defs.resources import PostgresResource
from orchestration.runbook.incidents import store
from orchestration.runbook.triage.summary import SUMMARY_LABELS, summary_from_markdown

INCIDENTS = dg.AssetKey(["ops", "incidents"])
ALERTS = dg.AssetKey(["ops", "alerts"])
REPORT = dg.AssetKey(["ops", "incident_report"])
# The runbook's last steps (7-8) in the UI's asset graph: the incident step, its alerts, the report.
INCIDENTS_GROUP = "incidents"
TABLE_ROWS = 20
OPS_TABLES = ("ops.incidents", "ops.alerts")
# Always on, whatever is configured: the Dagster log (CONTRACT section 6).
LOG_CHANNEL = "log"
CONFIGURE_HINT = (
    "console log only: set COSTWATCH_SLACK_WEBHOOK_URL, COSTWATCH_ALERT_WEBHOOK_URL or "
    "COSTWATCH_PAGERDUTY_ROUTING_KEY to page someone"
)
# What an alert's status means to the reader.
DELIVERY_WORDS = {
    "sent": "delivered",
    "failed": "failed",
    "pending": "queued",
    "superseded": "superseded",
}


def plain(markdown: str) -> str:
    """A Markdown line as plain text for a text metadata value: no `**`, no backslash escapes,
    no code spans' backticks, HTML entities decoded."""
    text = markdown.replace("**", "")
    text = re.sub(r"\\([\\`*_\[\]|~#+\-=.)])", r"\1", text)
    text = text.replace("`", "")
    return html.unescape(text)


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if isinstance(value, datetime) else "n/a"


def _plus_pct(value: Any) -> str:
    return "n/a" if value is None else f"+{pct(value)}" if float(value) >= 0 else pct(value)


# --------------------------------------------------------------------------- incidents


def incident_status(incident: Mapping[str, Any]) -> str:
    """`open`, `open, escalated, acknowledged`, `resolved`: as `costwatch incidents list`."""
    status = str(incident.get("status") or "open")
    if status == "open" and incident.get("escalated_at"):
        status += ", escalated"
    if status == "open" and incident.get("acknowledged_at"):
        status += ", acknowledged"
    return status


def incident_line(incident: Mapping[str, Any]) -> str:
    """`#1 open (severity high): hidden_recompute, $47.86 excess (+97% over baseline) since
    2026-11-18 10:00 UTC`."""
    return (
        f"#{incident['incident_id']} {incident_status(incident)} (severity "
        f"{strip_control(incident.get('severity') or 'n/a')}): "
        f"{strip_control(incident.get('root_cause') or 'undiagnosed')}, "
        f"{money(incident.get('excess_cost_usd'))} excess "
        f"({_plus_pct(incident.get('pct_above_baseline'))} over baseline) since "
        f"{_when(incident.get('spike_start'))}"
    )


def incidents_table(incidents: Sequence[Mapping[str, Any]]) -> str:
    """Narrow enough for the UI's metadata column (wider tables are cut off there): the
    newest incident's cause and numbers are in `latest_incident`."""
    rows = [
        [
            f"#{i['incident_id']}",
            escape_md(incident_status(i)),
            escape_md(i.get("severity") or "n/a"),
            money(i.get("excess_cost_usd")),
            f"{i['spike_start']:%m-%d %H:%M}" if isinstance(i.get("spike_start"), datetime) else "",
        ]
        for i in incidents
    ]
    headers = ["incident", "status", "severity", "excess", "since (UTC)"]
    return "\n".join(table(headers, rows, align="lllrl"))


def incident_metadata(conn: psycopg.Connection) -> dict[str, Any]:
    """Formatted metadata of `ops/incidents`: how many are open, the newest in one line, the
    ack command, and a table of the latest incidents (open ones first)."""
    missing = store.missing_tables(conn, OPS_TABLES)
    if missing:  # a database `costwatch db init` has not prepared: say so, fail nothing
        return {"latest_incident": dg.MetadataValue.text(f"{', '.join(missing)} missing")}
    incidents = store.list_incidents(conn, limit=TABLE_ROWS)
    open_ones = [i for i in incidents if i["status"] == "open"]
    (open_count,) = conn.execute(
        "select count(*) from ops.incidents where status = 'open'"
    ).fetchone()
    metadata: dict[str, Any] = {"open_incidents": dg.MetadataValue.int(int(open_count))}
    if not incidents:
        metadata["latest_incident"] = dg.MetadataValue.text("no incidents")
        return metadata
    latest = open_ones[0] if open_ones else incidents[0]
    metadata["latest_incident"] = dg.MetadataValue.text(incident_line(latest))
    metadata["severity"] = dg.MetadataValue.text(strip_control(latest.get("severity") or "n/a"))
    metadata["excess"] = dg.MetadataValue.text(money(latest.get("excess_cost_usd")))
    metadata["over_baseline"] = dg.MetadataValue.text(_plus_pct(latest.get("pct_above_baseline")))
    if latest.get("root_cause_detail"):
        # what the cause is pinned on (`hidden_recompute (trigger_type=auto_save)`); the
        # detail's own figures were worded when the incident opened, the excess above is now
        cause = strip_control(latest["root_cause_detail"]).split(": ", 1)[0]
        metadata["root_cause"] = dg.MetadataValue.text(cause)
    if latest["status"] == "open" and not latest.get("acknowledged_at"):
        metadata["ack"] = dg.MetadataValue.text(f"costwatch incidents ack {latest['incident_id']}")
    ordered = sorted(incidents, key=lambda i: i["status"] != "open")  # stable: newest first
    metadata["incidents"] = dg.MetadataValue.md(incidents_table(ordered))
    return metadata


# --------------------------------------------------------------------------- alerts

_ALERTS = """
select a.alert_id, a.incident_id, a.channel, a.kind, a.status, a.attempts, a.sent_at,
       a.next_attempt_at, a.http_status, a.error, a.created_at
from ops.alerts as a
order by a.alert_id desc
limit %s
"""


def deliveries(alerts: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Per channel, what happened to its alerts: `{"log": "2 delivered", "webhook": "1 failed,
    1 queued"}`, channels in name order, statuses in a fixed order."""
    counts: dict[str, Counter[str]] = {}
    for alert in alerts:
        counts.setdefault(str(alert["channel"]), Counter())[str(alert["status"])] += 1
    order = list(DELIVERY_WORDS)
    out = {}
    for channel in sorted(counts):
        by_status = counts[channel]
        out[channel] = ", ".join(
            f"{by_status[s]} {DELIVERY_WORDS.get(s, s)}"
            for s in sorted(by_status, key=lambda s: order.index(s) if s in order else 99)
        )
    return out


def where_alerts_went(alerts: Sequence[Mapping[str, Any]]) -> str:
    """One line: `log: opened delivered; webhook: opened failed (HTTP 500), retry at 10:31
    UTC`; with the console log alone, how to configure a channel."""
    if not alerts:
        return "no alerts yet"
    parts = []
    for a in sorted(alerts, key=lambda a: (str(a["channel"]), a["alert_id"])):
        word = DELIVERY_WORDS.get(str(a["status"]), str(a["status"]))
        text = f"{strip_control(a['channel'])}: {strip_control(a['kind'])} {word}"
        if a["status"] in ("failed", "pending") and (a.get("http_status") or a.get("error")):
            why = f"HTTP {a['http_status']}" if a.get("http_status") else a["error"]
            text += f" ({strip_control(why)[:120]})"
        if a["status"] == "pending" and a.get("next_attempt_at"):
            text += f", retry at {_when(a['next_attempt_at'])}"
        parts.append(text)
    line = "; ".join(parts)
    if {str(a["channel"]) for a in alerts} <= {LOG_CHANNEL}:
        line += f" ({CONFIGURE_HINT})"
    return line


def alerts_table(alerts: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            f"#{a['incident_id']}" if a.get("incident_id") is not None else "pipeline",
            escape_md(a["kind"]),
            escape_md(a["channel"]),
            DELIVERY_WORDS.get(str(a["status"]), escape_md(a["status"])),
            f"{a['sent_at']:%m-%d %H:%M}" if a.get("sent_at") else "",
        ]
        for a in alerts
    ]
    # narrow enough for the UI's metadata column; errors are in `where_alerts_went`
    headers = ["incident", "kind", "channel", "status", "sent (UTC)"]
    return "\n".join(table(headers, rows, align="lllll"))


def alert_metadata(conn: psycopg.Connection) -> dict[str, Any]:
    """Formatted metadata of `ops/alerts`: counts by status, per channel what was delivered,
    failed or queued, where the latest incident's alerts went, and the newest alerts."""
    missing = store.missing_tables(conn, OPS_TABLES)
    if missing:
        return {"where_alerts_went": dg.MetadataValue.text(f"{', '.join(missing)} missing")}
    counts = dict(
        conn.execute("select status, count(*) from ops.alerts group by status").fetchall()
    )
    metadata: dict[str, Any] = {
        f"alerts_{DELIVERY_WORDS[s]}": dg.MetadataValue.int(int(counts.get(s, 0)))
        for s in ("sent", "failed", "pending")
    }
    latest = store.fetch_dicts(
        conn,
        "select incident_id from ops.incidents order by (status = 'open') desc, "
        "opened_at desc, incident_id desc limit 1",
    )
    if latest:
        incident_id = latest[0]["incident_id"]
        own = store.fetch_dicts(
            conn,
            "select alert_id, channel, kind, status, next_attempt_at, http_status, error "
            "from ops.alerts where incident_id = %s order by alert_id",
            (incident_id,),
        )
        metadata["incident"] = dg.MetadataValue.text(f"#{incident_id}")
        metadata["where_alerts_went"] = dg.MetadataValue.text(where_alerts_went(own))
    rows = store.fetch_dicts(conn, _ALERTS, (TABLE_ROWS,))
    all_channels = store.fetch_dicts(conn, "select channel, status from ops.alerts")
    for channel, text in deliveries(all_channels).items():
        metadata[f"channel_{channel}"] = dg.MetadataValue.text(text)
    if rows:
        metadata["alerts"] = dg.MetadataValue.md(alerts_table(rows))
    return metadata


def alert_assets(asset_keys: set[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """`ops/alerts`, when the incident step is an asset of this code location."""
    if INCIDENTS not in asset_keys:
        return []

    @dg.asset(
        key=ALERTS,
        deps=[INCIDENTS],
        group_name=INCIDENTS_GROUP,
        kinds={"python", "postgres"},
        description=(
            "Where each alert went (`ops.alerts`, written by the incident step): per channel "
            "what was delivered, failed (and when it is retried) or queued."
        ),
    )
    def alerts(context: AssetExecutionContext, database: PostgresResource) -> dg.MaterializeResult:
        with connect(database.url) as conn:
            metadata = alert_metadata(conn)
        if "where_alerts_went" in metadata:
            context.log.info(f"alerts: {metadata['where_alerts_went'].value}")
        return dg.MaterializeResult(metadata=metadata)

    return [alerts]


# --------------------------------------------------------------------------- the report


def report_summary_metadata(markdown: str) -> dict[str, Any]:
    """The report's five-line summary as text entries (`incident`, `excess`, `cause`,
    `likely_trigger`, `action`), in the report's own words."""
    lines = summary_from_markdown(markdown)
    return {
        label.lower().replace(" ", "_"): dg.MetadataValue.text(plain(lines[label]))
        for label in SUMMARY_LABELS
        if label in lines
    }

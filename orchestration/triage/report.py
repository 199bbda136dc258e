"""`costwatch triage`: the Cost Spike Runbook worked through for one spike, as Markdown.

The same report is the incident's `report_md` (the incident engine calls `incident_report`) and
the `ops/incident_report` asset's metadata in the Dagster UI (with the chart inlined).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from orchestration.database import DatabaseError, connect, costwatch_home
from orchestration.triage import queries, sections
from orchestration.triage.chart import render_chart
from orchestration.triage.formatting import strip_control


class TriageError(DatabaseError):
    """A triage the user asked for cannot be made (no marts yet, unknown spike): one line."""


NO_MARTS = "no marts yet: run `costwatch run`"


@dataclass
class TriageReport:
    markdown: str
    spike_id: str | None = None
    chart_png: bytes | None = None
    chart_path: Path | None = None

    def with_inline_chart(self) -> str:
        """The Markdown with the chart embedded as a data URI (for the Dagster UI)."""
        if not self.chart_png:
            return self.markdown
        data = base64.b64encode(self.chart_png).decode("ascii")
        image = f"![chart](data:image/png;base64,{data})"
        lines = self.markdown.split("\n")
        # after the header block (title and its bullet list)
        at = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
        return "\n".join([*lines[:at], image, "", *lines[at:]])


def chart_path_for(spike_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", strip_control(spike_id)) or "spike"
    return costwatch_home() / "reports" / f"{safe}.png"


def build_markdown(data: queries.TriageData, chart_path: Path | None = None) -> str:
    """The whole report from what `queries.load` read (no SQL here)."""
    if data.spike is None:
        if data.newest_hour is None:
            return (
                "# No cost spike\n\nThe marts hold no hours yet: load events, then run costwatch.\n"
            )
        return "\n".join(sections.no_spike(data.newest_hour, data.summary_hours)) + "\n"
    spike = data.spike
    causes = {str(d.get("cause")) for d in data.diagnoses}
    parts = [sections.header(spike, data.diagnoses)]
    if chart_path is not None:
        parts.append([f"Chart (cost vs baseline, last 48 hours; excess by cause): `{chart_path}`"])
    parts += [
        sections.step1(spike, data.spike_hours),
        [
            "Steps 2-6 compare the spike's hours with the same hours of day on the previous "
            "days (complete, in no spike): the baseline window, as `marts.spike_diagnosis` does."
        ],
        sections.step2(data.traffic, causes),
        sections.step3(data.recompute, data.triggers, data.traffic, causes),
        sections.step4(data.tokens, causes),
        sections.step5(data.features, data.traffic, causes),
        sections.step6(data.tools, data.traffic, causes),
        sections.changes_section(data.changes),
        sections.causes_section(data.diagnoses, spike.get("excess_cost_usd")),
        sections.step7(data.diagnoses),
        sections.step8(data.diagnoses, data.incident, spike),
    ]
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


def chart_for(data: queries.TriageData) -> bytes | None:
    if data.spike is None or not data.hours:
        return None
    spike = data.spike
    causes = [
        (f"{d['cause']} {sections_subject(d)}".strip(), float(d.get("contribution_usd") or 0))
        for d in data.diagnoses
    ]
    root = sections.evidence(data.diagnoses[0]) if data.diagnoses else {}
    window_excess = (root.get("cost_usd") or {}).get("excess")
    if window_excess is not None:
        rest = float(window_excess) - sum(usd for _, usd in causes)
        if rest > 0.05 * float(window_excess):
            causes.append(("not explained", rest))
    return render_chart(
        data.hours,
        spike_start=spike["spike_start"],
        spike_end=spike["spike_end"],
        causes=causes,
        title=f"cost spike {spike['spike_id']}: hourly cost vs baseline",
    )


def sections_subject(diagnosis: Mapping[str, Any]) -> str:
    for column in ("trigger_type", "tool_name", "feature", "model"):
        if diagnosis.get(column):
            return f"({diagnosis[column]})"
    return ""


def build_report(
    conn: psycopg.Connection,
    spike_id: str | None = None,
    incident: Mapping[str, Any] | None = None,
    write_chart: bool = True,
) -> TriageReport:
    """Read the marts over `conn` and build the report for `spike_id` (default: the latest)."""
    missing = queries.missing_tables(conn, queries.REQUIRED_MARTS)
    if missing:
        detail = missing[0] if len(missing) == 1 else f"{len(missing)} marts, e.g. {missing[0]}"
        raise TriageError(f"{NO_MARTS} ({detail} missing)")
    spike = queries.spike_row(conn, spike_id)
    if spike is None and spike_id is not None:
        raise TriageError(f"no spike {strip_control(spike_id)!r} in marts.cost_spikes")
    data = queries.load(conn, spike)
    if incident is not None and data.spike is not None:
        data.incident = {**(data.incident or {}), **incident}
    png = chart_for(data)
    path = None
    if png is not None and write_chart:
        path = chart_path_for(spike["spike_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    return TriageReport(
        markdown=build_markdown(data, path),
        spike_id=spike["spike_id"] if spike else None,
        chart_png=png,
        chart_path=path,
    )


def triage_markdown(url: str, spike_id: str | None = None) -> str:
    """What `costwatch triage [--spike ID]` prints; writes the chart under $COSTWATCH_HOME."""
    with connect(url) as conn:
        return build_report(conn, spike_id).markdown


def incident_report(
    conn: psycopg.Connection, spike_id: str, incident: Mapping[str, Any]
) -> TriageReport | None:
    """The report for an incident being opened (its step 8 fields from `incident`), on the
    engine's connection inside a savepoint; None when it cannot be built, so opening the
    incident never fails because of the report."""
    try:
        with conn.transaction():
            return build_report(conn, spike_id, incident=incident)
    except Exception:  # noqa: BLE001 - any failure: the engine falls back to its summary
        return None

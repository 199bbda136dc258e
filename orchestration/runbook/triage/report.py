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

from orchestration.core.database import DatabaseError, connect, costwatch_home
from orchestration.core.formatting import money, strip_control
from orchestration.runbook.triage import queries, sections
from orchestration.runbook.triage.chart import render_chart
from orchestration.runbook.triage.summary import summary_lines


class TriageError(DatabaseError):
    """A triage the user asked for cannot be made (no marts yet, unknown spike): one line."""


NO_MARTS = "no marts yet: run `costwatch run`"
CHART_LINE = "Chart (cost vs baseline, last 48 hours; excess by cause): "


@dataclass
class TriageReport:
    markdown: str
    spike_id: str | None = None
    chart_png: bytes | None = None
    chart_path: Path | None = None

    def chart_markdown(self) -> str | None:
        """The chart as Markdown a browser shows (a base64 `data:` PNG), e.g. for an asset's
        metadata in the Dagster UI; None without a chart."""
        return chart_markdown(self.chart_png)

    def with_inline_chart(self) -> str:
        """The Markdown with the chart embedded as a data URI (for the Dagster UI), in place of
        the line naming the chart's file (a path on this machine, no use to a browser)."""
        image = self.chart_markdown()
        if image is None:
            return self.markdown
        lines = [line for line in self.markdown.split("\n") if not line.startswith(CHART_LINE)]
        # after the header block (title and its bullet list)
        at = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
        return "\n".join([*lines[:at], image, "", *lines[at:]])


def chart_markdown(png: bytes | None, alt: str = "chart") -> str | None:
    """`![chart](data:image/png;base64,...)`: a PNG embedded in Markdown; None without one."""
    if not png:
        return None
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def chart_path_for(spike_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", strip_control(spike_id)) or "spike"
    return costwatch_home() / "reports" / f"{safe}.png"


def build_markdown(data: queries.TriageData, chart_path: Path | None = None) -> str:
    """The whole report from what `queries.load` read (no SQL here): the five-line on-call
    summary first, then the runbook worked through step by step."""
    if data.spike is None:
        if data.newest_hour is None:
            return (
                "# No cost spike\n\nThe marts hold no hours yet: load events, then run costwatch.\n"
            )
        return "\n".join(sections.no_spike(data.newest_hour, data.summary_hours)) + "\n"
    spike = data.spike
    found = sections.causes_found(data.causes)
    parts = [
        [*sections.header(spike, data.causes), "", *summary_lines(data.summary, data.incident)]
    ]
    if chart_path is not None:
        parts.append([f"{CHART_LINE}`{chart_path}`"])
    step = {n: sections.Step(data.step(n)) for n in range(2, 7)}
    parts += [
        sections.step1(spike, data.spike_hours),
        [
            "Steps 2-6 compare the spike's hours with the same hours of day on the previous "
            "days (complete, in no spike): the baseline window, as `marts.spike_diagnosis` does "
            "(`marts.spike_runbook_steps`)."
        ],
        sections.step2(step[2], found),
        sections.step3(step[3], found),
        sections.step4(step[4], found),
        sections.step5(step[5], found),
        sections.step6(step[6], found),
        sections.changes_section(data.changes),
        sections.causes_section(data.causes, data.summary),
        sections.step7(data.causes),
        sections.step8(data.causes, data.incident, data.alerts),
    ]
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


def chart_causes(data: queries.TriageData) -> list[tuple[str, float]]:
    """The chart's bars: each cause's part of the excess, then the rest not explained."""
    bars = [
        (f"{c['cause']} ({c['detail']})" if c.get("detail") else str(c["cause"]),
         float(c.get("excess_usd") or 0))
        for c in data.causes
    ]  # fmt: skip
    rest = float((data.summary or {}).get("unexplained_usd") or 0)
    if abs(rest) >= 0.005:
        bars.append(("not explained" if rest > 0 else "offset (other costs fell)", rest))
    return bars


def chart_for(data: queries.TriageData) -> bytes | None:
    if data.spike is None or not data.hours:
        return None
    spike = data.spike
    return render_chart(
        data.hours,
        spike_start=spike["spike_start"],
        spike_end=spike["spike_end"],
        causes=chart_causes(data),
        title=chart_title(spike),
        changes=[c for c in data.changes if c.get("changed_at") is not None],
        trigger_at=(data.summary or {}).get("trigger_changed_at"),
    )


def chart_title(spike: Mapping[str, Any]) -> str:
    state = "ongoing" if spike.get("is_ongoing") else "ended"
    return (
        f"{spike['spike_id']}: excess {money(spike.get('excess_cost_usd'))} "
        f"(+{float(spike.get('pct_above_baseline') or 0) * 100:.0f}%), {state}"
    )


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
        known = queries.known_spike_ids(conn)
        listed = f"; known spikes, newest first: {', '.join(known)}" if known else "; none yet"
        raise TriageError(f"no spike {strip_control(spike_id)!r} in marts.cost_spikes{listed}")
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


def summary_markdown(markdown: str) -> str:
    """The report's title and five-line on-call summary (what ends `make demo`)."""
    head = markdown.split("\n## ", 1)[0]
    return "\n".join(line for line in head.splitlines() if not line.startswith("Chart ")).strip()


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

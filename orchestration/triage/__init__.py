"""The filled-in Cost Spike Runbook (`costwatch triage`), its chart, and Markdown escaping.

Light on import: the report (psycopg, matplotlib) loads on first use, so the incident payloads
can use `escape_slack` without importing the report, and the report can use the payloads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestration.triage.formatting import escape_md, escape_slack

if TYPE_CHECKING:
    from orchestration.triage.report import TriageReport

__all__ = ["escape_md", "escape_slack", "incident_report", "render_chart", "triage_markdown"]


def triage_markdown(url: str, spike_id: str | None = None) -> str:
    """The report for the latest spike (or `spike_id`) at `url`, as Markdown."""
    from orchestration.triage.report import triage_markdown as build

    return build(url, spike_id)


def incident_report(conn: Any, spike_id: str, incident: Any) -> TriageReport | None:
    from orchestration.triage.report import incident_report as build

    return build(conn, spike_id, incident)


def render_chart(*args: Any, **kwargs: Any) -> bytes:
    from orchestration.triage.chart import render_chart as render

    return render(*args, **kwargs)

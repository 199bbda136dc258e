"""The on-call summary and the rendered report on the seeded scenarios test_triage.py does not
seed (traffic_surge, bot_traffic, undo_storm, context_bloat, model_change): one database, the
scenarios a week apart (each incident on a Tuesday), real dbt, one incident tick.

For every spike: five summary lines naming the catalogue's cause (and what it is pinned on),
its action and the `ack` command of the incident opened for it; one excess figure in the
summary, the causes, the chart's title and the incident; the text rendering shows no Markdown
escapes, entities or markup.
"""

from __future__ import annotations

import io
import os
import re
from datetime import timedelta

import pytest
from rich.console import Console
from rich.markdown import Markdown

from orchestration.core.database import connect
from orchestration.core.formatting import escape_md, money
from orchestration.runbook.incidents import engine
from orchestration.runbook.incidents.settings import IncidentSettings
from orchestration.runbook.seed import seed
from orchestration.runbook.triage import catalogue
from orchestration.runbook.triage.report import chart_title, triage_markdown
from tests.conftest import create_database, drop_database, query
from tests.test_detection import EXPECTED
from tests.test_triage import END, EVENTS_PER_HOUR, _dbt_run

SCENARIOS = ("traffic_surge", "bot_traffic", "undo_storm", "context_bloat", "model_change")
DAYS = 7  # a week apart: every incident on the same weekday


@pytest.fixture(scope="module")
def spiky(server_url: str, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("summary")
    name = f"cw_test_summary_{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}_{os.getpid()}"
    url = create_database(server_url, name)
    saved_home = os.environ.get("COSTWATCH_HOME")
    os.environ["COSTWATCH_HOME"] = str(tmp / "home")
    onsets = {}
    try:
        with connect(url) as conn:
            for i, scenario in enumerate(SCENARIOS):
                summary = seed(conn, scenario, days=DAYS, events_per_hour=EVENTS_PER_HOUR,
                               seed=3, end=END + timedelta(days=DAYS * i))  # fmt: skip
                onsets[scenario] = summary.onset
        run = _dbt_run(url, tmp / "target")
        assert run.returncode == 0, run.stdout[-4000:]
        engine.tick(url, settings=IncidentSettings.from_env({}))
        yield url, onsets
    finally:
        if saved_home is None:
            os.environ.pop("COSTWATCH_HOME", None)
        else:
            os.environ["COSTWATCH_HOME"] = saved_home
        if not os.environ.get("COSTWATCH_KEEP_TEST_DB"):
            drop_database(server_url, name)


def _spike(url: str, onset) -> dict:
    rows = query(
        url,
        "select spike_id, spike_start, spike_end, excess_cost_usd, pct_above_baseline, "
        "is_ongoing from marts.cost_spikes where spike_start between %s and %s",
        (onset - timedelta(hours=2), onset + timedelta(hours=6)),
    )
    assert len(rows) == 1, rows
    keys = ("spike_id", "spike_start", "spike_end", "excess_cost_usd", "pct_above_baseline",
            "is_ongoing")  # fmt: skip
    return dict(zip(keys, rows[0], strict=True))


def render_text(markdown: str) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None, highlight=False).print(Markdown(markdown))
    return out.getvalue()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_summary_names_cause_action_ack_with_one_excess(spiky, scenario: str) -> None:
    url, onsets = spiky
    spike = _spike(url, onsets[scenario])
    cause, column, value = EXPECTED[scenario]
    report = triage_markdown(url, spike["spike_id"])
    lines = [line for line in report.split("## Step 1")[0].splitlines() if line.startswith("- **")]
    assert len(lines) == 5, lines
    (incident_id, incident_excess) = query(
        url,
        "select incident_id, excess_cost_usd from ops.incidents where spike_id = %s",
        (spike["spike_id"],),
    )[0]
    root = query(
        url,
        "select cause, detail, action from marts.spike_causes where spike_id = %s and rank = 1",
        (spike["spike_id"],),
    )[0]
    assert root[0] == cause
    title = catalogue.title(cause)
    named = f"- **Cause:** {escape_md(title)}"
    assert lines[2].startswith(named + (f" (**{escape_md(value)}**)" if value else ""))
    assert root[2] in lines[4] and f"`costwatch incidents ack {incident_id}`" in lines[4]
    excess = money(spike["excess_cost_usd"])
    assert f"**{excess}** so far" in lines[1]
    assert f"of the spike's {excess} excess" in report.split("## Causes, ranked")[1]
    assert excess in chart_title(spike) and money(incident_excess) == excess
    assert ("ongoing" in lines[0]) == bool(spike["is_ongoing"])

    text = render_text(report)
    words = " ".join(text.split())  # as read, whatever the terminal's wrapping
    assert title in words and f"costwatch incidents ack {incident_id}" in words
    assert "\\_" not in text and "&gt;" not in text and "&amp;" not in text
    assert "**" not in text and not re.search(r"^#+ ", text, re.M)
    assert "\x1b[" not in text


def test_one_wording_of_the_fix_in_the_mart_the_incident_and_the_catalogue(spiky) -> None:
    url, onsets = spiky
    spike = _spike(url, onsets["undo_storm"])
    (report_md, recommended, fix) = query(
        url,
        "select i.report_md, i.mitigation_recommended, d.recommended_fix from ops.incidents as i "
        "join marts.spike_diagnosis as d on d.spike_id = i.spike_id and d.rank = 1 "
        "where i.spike_id = %s",
        (spike["spike_id"],),
    )[0]
    assert recommended == fix == catalogue.fix("hidden_recompute", "undo")
    summary = [
        line for line in report_md.split("## Step 1")[0].splitlines() if line.startswith("- **")
    ]
    assert len(summary) == 5 and fix in report_md

"""`costwatch triage` on real PostgreSQL, real dbt marts and the real incident engine.

Two databases, built once for the module (dbt runs in parallel):
- `spiky`: three seeded scenarios one after the other (feature_abuse, tool_outage, autosave_loop;
  9 days each, same seed, each incident on a weekday), so one dbt run holds three spikes with
  three different causes; a feature and a tool with Markdown/HTML in their names are injected
  into the last spike; one incident tick then opens the incidents (report_md, chart_png);
- `quiet`: the quiet scenario, no spike.
The report must name each spike's cause and quote numbers equal to the marts', the incident's
`report_md` must be the same report, the chart a valid PNG stored with the incident and on disk.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from orchestration.core.config import Config
from orchestration.core.database import connect, dbt_env
from orchestration.core.formatting import escape_md, money, number, pct
from orchestration.defs.project import partial_parse_for_profile
from orchestration.runbook.incidents import engine
from orchestration.runbook.incidents.settings import IncidentSettings
from orchestration.runbook.seed import seed
from orchestration.runbook.triage.chart import PNG_MAGIC
from orchestration.runbook.triage.report import triage_markdown
from tests.conftest import (
    PROJECT_ROOT,
    costwatch_env,
    create_database,
    drop_database,
    loaded_seeds_excluded,
    query,
    run_costwatch,
)

DBT = str(PROJECT_ROOT / ".venv" / "bin" / "dbt")

END = datetime(2026, 10, 20, 20, tzinfo=UTC)
DAYS = 9
EVENTS_PER_HOUR = 120
# scenario, expected root cause, the column it fills and its value
SCENARIOS = (
    ("feature_abuse", "feature_concentration", "feature", "summarize"),
    ("tool_outage", "tool_retry_storm", "tool_name", "web_search"),
    ("autosave_loop", "hidden_recompute", "trigger_type", "auto_save"),
)
HOSTILE_FEATURE = "*_[]()<>|&# <script>alert('f')</script>"
HOSTILE_TOOL = "tool*_[]()|&#<script>alert('t')</script>"


@dataclass
class Built:
    spiky: str
    quiet: str
    home: Path
    env: dict[str, str]
    quiet_env: dict[str, str]
    onsets: dict[str, datetime]


def _inject_hostile(conn: psycopg.Connection, start: datetime) -> None:
    """A few costly events of a feature, and failing calls of a tool, with hostile names."""
    for h in range(8):
        hour = start + timedelta(hours=h, minutes=5)
        for i in range(3):
            event_id = f"hostile-{h}-{i}"
            conn.execute(
                "insert into raw.inference_events values "
                "(%s, %s, 'u-hostile', 's-hostile', %s, 'user', 'gpt-4o', 900, 300, 0.04, 'x')",
                (event_id, hour + timedelta(minutes=i), HOSTILE_FEATURE),
            )
            conn.execute(
                "insert into raw.tool_calls values (%s, %s, %s, %s, %s, false, 2, 500)",
                (f"hostile-call-{h}-{i}", hour + timedelta(minutes=i), event_id, HOSTILE_FEATURE,
                 HOSTILE_TOOL),
            )  # fmt: skip


def _dbt_run(url: str, target: Path) -> subprocess.CompletedProcess:
    """Every model and seed, own target path (parallel runs and edits never share a manifest)."""
    env = {**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env.update(DBT_TARGET_PATH=str(target), DBT_LOG_PATH=str(target / "logs"))
    partial_parse_for_profile(
        target, Config.load(database_url=url)
    )  # dbt parses only what changed, not the project
    return subprocess.run(
        [
            DBT,
            "build",
            "--exclude-resource-type",
            "test",
            "--exclude-resource-type",
            "unit_test",
            "--project-dir",
            "dbt_project",
            "--profiles-dir",
            "dbt_project",
            *loaded_seeds_excluded(url),
        ],  # fmt: skip
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def built(server_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Seed both databases, build their marts with dbt, then one incident tick on `spiky`
    (which stores the triage report and chart with each incident)."""
    tmp = tmp_path_factory.mktemp("triage")
    tag = f"{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}_{os.getpid()}"
    names = (f"cw_test_triage_{tag}", f"cw_test_triage_quiet_{tag}")
    spiky, quiet = (create_database(server_url, name) for name in names)
    home = tmp / "home"
    saved_home = os.environ.get("COSTWATCH_HOME")
    os.environ["COSTWATCH_HOME"] = str(home)  # where the in-process report writes its chart
    onsets = {}
    try:
        with connect(spiky) as conn:
            for i, (scenario, *_rest) in enumerate(SCENARIOS):
                summary = seed(conn, scenario, days=DAYS, events_per_hour=EVENTS_PER_HOUR,
                               seed=1, end=END + timedelta(days=DAYS * i))  # fmt: skip
                onsets[scenario] = summary.onset
            _inject_hostile(conn, onsets["autosave_loop"])
        with connect(quiet) as conn:
            seed(conn, "quiet", days=5, events_per_hour=EVENTS_PER_HOUR, seed=2, end=END)
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(_dbt_run, (spiky, quiet), (tmp / "t1", tmp / "t2")))
        for run in runs:
            assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        engine.tick(spiky, settings=IncidentSettings.from_env({}))
        yield Built(
            spiky,
            quiet,
            home,
            costwatch_env(spiky, tmp / "a", COSTWATCH_HOME=str(home)),
            costwatch_env(quiet, tmp / "q", COSTWATCH_HOME=str(tmp / "qhome")),
            onsets,
        )
    finally:
        if saved_home is None:
            os.environ.pop("COSTWATCH_HOME", None)
        else:
            os.environ["COSTWATCH_HOME"] = saved_home
        if not os.environ.get("COSTWATCH_KEEP_TEST_DB"):
            for name in names:
                drop_database(server_url, name)


def _spike_for(url: str, onset: datetime) -> dict:
    rows = query(
        url,
        "select spike_id, spike_start, hours, excess_cost_usd, pct_above_baseline "
        "from marts.cost_spikes where spike_start between %s and %s",
        (onset - timedelta(hours=2), onset + timedelta(hours=6)),
    )
    assert len(rows) == 1, rows
    keys = ("spike_id", "spike_start", "hours", "excess_cost_usd", "pct_above_baseline")
    return dict(zip(keys, rows[0], strict=True))


def _triage(built: Built, spike_id: str | None = None) -> str:
    return triage_markdown(built.spiky, spike_id)


def _cli_triage(built: Built, *args: str) -> str:
    result = run_costwatch("triage", *args, env=built.env)
    assert result.returncode == 0, result.stderr
    return result.stdout


SPIKE_HOURS = """
select hour from marts.cost_baseline_hourly
where spike_id = %(spike_id)s and is_complete and has_data
"""


def _window_means(url: str, spike_id: str, mart: str, columns: str) -> tuple:
    """The spike window's per-hour means of `columns` from `mart`: an independent query."""
    return query(
        url,
        f"select {columns} from marts.{mart} where hour in ({SPIKE_HOURS})",  # noqa: S608
        {"spike_id": spike_id},
    )[0]


@pytest.mark.parametrize(("scenario", "cause", "column", "value"), SCENARIOS)
def test_report_names_the_cause_and_quotes_the_marts(
    built: Built, scenario: str, cause: str, column: str, value: str
) -> None:
    url = built.spiky
    spike = _spike_for(url, built.onsets[scenario])
    spike_id = spike["spike_id"]
    report = _triage(built, spike_id)

    # the spike: start, duration, excess, % over baseline, from marts.cost_spikes
    assert report.startswith(f"# Cost spike {escape_md(spike_id)}")
    assert f"{spike['spike_start']:%Y-%m-%d %H:%M} UTC" in report
    assert f"{spike['hours']} hours" in report
    assert f"**{money(spike['excess_cost_usd'])}**" in report
    assert f"**{pct(spike['pct_above_baseline'])} over baseline**" in report

    # the root cause from marts.spike_diagnosis, with its contribution
    rank1 = query(
        url,
        "select d.cause, c.excess_usd, d.trigger_type, d.tool_name, d.feature, "
        "(d.evidence ->> 'share_of_excess')::float8 "
        "from marts.spike_diagnosis as d join marts.spike_causes as c using (spike_id, rank) "
        "where d.spike_id = %s and d.rank = 1",
        (spike_id,),
    )[0]
    assert rank1[0] == cause
    # one excess figure: the cause's part is dbt's share of cost_spikes.excess_cost_usd
    assert float(rank1[1]) == pytest.approx(rank1[5] * float(spike["excess_cost_usd"]))
    causes = report.split("## Causes, ranked")[1].split("## Step 7")[0]
    assert f"| 1 | {escape_md(cause)} |" in causes
    assert f"**{escape_md(value)}**" in causes and money(rank1[1]) in causes
    assert f"of the spike's {money(spike['excess_cost_usd'])} excess" in causes

    # step 2: requests and unique users per hour in the spike window (marts.cost_hourly)
    requests, users = _window_means(
        url, spike_id, "cost_hourly", "avg(requests), avg(unique_users)"
    )
    step2 = report.split("## Step 2")[1].split("## Step 3")[0]
    assert "| requests per hour | " in step2 and f"| {number(requests, 1)} |" in step2
    assert f"| {number(users, 1)} |" in step2

    # step 3: the hidden recompute ratio of the window (marts.recompute_hourly)
    (ratio,) = _window_means(url, spike_id, "recompute_hourly", "sum(hidden)::float8 / sum(total)")
    assert f"spike {pct(ratio, 1)}" in report.split("## Step 3")[1]

    # step 4: request-weighted average input tokens (marts.tokens_hourly x cost_hourly)
    (avg_input,) = query(
        url,
        "select sum(t.avg_input_tokens * c.requests) / sum(c.requests) "
        "from marts.tokens_hourly as t join marts.cost_hourly as c using (hour) "
        f"where hour in ({SPIKE_HOURS})",  # noqa: S608
        {"spike_id": spike_id},
    )[0]
    assert "| avg input tokens | " in report and f"| {number(avg_input)} |" in report

    if scenario == "feature_abuse":
        step5 = report.split("## Step 5")[1].split("## Step 6")[0]
        assert "**Finding:** **summarize** carries" in step5
        rows = [line for line in step5.splitlines() if line.startswith("| summarize |")]
        (cost_after,) = query(
            url,
            "select sum(total_cost_usd) from marts.feature_cost_hourly "
            f"where feature = 'summarize' and hour in ({SPIKE_HOURS})",  # noqa: S608
            {"spike_id": spike_id},
        )[0]
        assert rows and money(cost_after) in rows[0]
    if scenario == "tool_outage":
        step6 = report.split("## Step 6")[1].split("## Changes")[0]
        assert "failing tools: **web\\_search**" in step6
        (rate,) = query(
            url,
            "select sum(failures)::float8 / sum(total_calls) from marts.tool_failures_hourly "
            f"where tool_name = 'web_search' and hour in ({SPIKE_HOURS})",  # noqa: S608
            {"spike_id": spike_id},
        )[0]
        assert f"| {pct(rate, 1)} |" in step6
        assert "MAX_TOOL_RETRIES = 2" in report
    if scenario == "autosave_loop":
        assert "AUTO_SAVE_INTERVAL_MS = 30000" in report
        assert "driven by **auto\\_save**" in report

    # the change events before the start (raw.change_events, 24 h)
    changes = query(
        url,
        "select kind from raw.change_events where changed_at >= %s - interval '24 hours' "
        "and changed_at < %s",
        (spike["spike_start"], spike["spike_start"]),
    )
    section = report.split("## Changes in the 24 hours")[1].split("## Causes")[0]
    assert (len(changes) == 0) == ("None recorded." in section)
    for (kind,) in changes:
        assert escape_md(kind) in section

    # step 8: the incident's fields
    step8 = report.split("## Step 8")[1]
    incident = query(
        url,
        "select root_cause, follow_up_at, alert_created from ops.incidents where spike_id = %s",
        (spike_id,),
    )[0]
    assert f"**Root cause:** {escape_md(incident[0])}" in step8
    assert f"**Follow-up scheduled for:** {incident[1]:%Y-%m-%d %H:%M} UTC" in step8
    assert f"**Alert created:** {'Yes' if incident[2] else 'No'}" in step8


def test_incident_report_is_the_triage_report_with_its_chart(built: Built) -> None:
    spike = _spike_for(built.spiky, built.onsets["feature_abuse"])
    report_md, chart = query(
        built.spiky,
        "select report_md, chart_png from ops.incidents where spike_id = %s",
        (spike["spike_id"],),
    )[0]
    triage = _triage(built, spike["spike_id"])
    # the same report; only the live fields (the incident's number in the summary, alert
    # delivery in step 8) may have moved since it opened
    assert (
        report_md.split("## Step 1")[1].split("## Step 8")[0]
        == (triage.split("## Step 1")[1].split("## Step 8")[0])
    )
    assert "- **Incident:** opened with this report" in report_md.split("## Step 1")[0]
    chart = bytes(chart)
    assert chart.startswith(PNG_MAGIC)
    path = built.home / "reports" / f"{spike['spike_id']}.png"
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert f"`{path}`" in triage
    import matplotlib.image

    assert matplotlib.image.imread(io.BytesIO(chart), format="png").shape[1] > 400


def test_latest_spike_is_the_default(built: Built) -> None:
    latest = _spike_for(built.spiky, built.onsets["autosave_loop"])
    text = _cli_triage(built)
    assert text.startswith(f"# Cost spike {escape_md(latest['spike_id'])}")
    assert f"`{built.home / 'reports' / (latest['spike_id'] + '.png')}`" in text


def test_hostile_names_are_escaped(built: Built) -> None:
    spike = _spike_for(built.spiky, built.onsets["autosave_loop"])
    report = _triage(built, spike["spike_id"])
    assert escape_md(HOSTILE_FEATURE) in report
    assert escape_md(HOSTILE_TOOL) in report
    assert "<script>" not in report and "</script>" not in report
    stored = query(
        built.spiky, "select report_md from ops.incidents where spike_id = %s", (spike["spike_id"],)
    )[0][0]
    assert "<script>" not in stored
    # every table row keeps its column count: no pipe from a name splits a cell
    for block in re.split(r"\n\n", report):
        rows = [line for line in block.splitlines() if line.startswith("| ")]
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in rows}
        assert len(counts) <= 1, block


def test_report_asset_shows_report_and_chart_in_dagster(built: Built) -> None:
    import dagster as dg

    from orchestration.definitions import defs as load_defs
    from orchestration.defs.reports import incident_report_assets
    from orchestration.defs.resources import PostgresResource

    key = dg.AssetKey(["ops", "incident_report"])
    defs = load_defs()
    resolved = defs.resolve_assets_def(key)
    assert dg.AssetKey(["marts", "cost_spikes"]) in resolved.asset_deps[key]
    job = defs.resolve_job_def("costwatch_pass")
    assert key in job.asset_layer.executable_asset_keys  # the pass runs it
    (asset,) = incident_report_assets(set(resolved.asset_deps[key]))
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [asset],
            instance=instance,
            resources={"database": PostgresResource.for_url(built.spiky)},
        )
        assert result.success
        (materialization,) = result.asset_materializations_for_node(asset.node_def.name)
        report = materialization.metadata["report"].value
        assert report.startswith("# Cost spike ")
        assert "![chart](data:image/png;base64,iVBORw0KGgo" in report
        observations = [
            e.event_specific_data.asset_observation
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]
        assert [o.asset_key for o in observations] == [dg.AssetKey(["marts", "cost_spikes"])]
        assert observations[0].metadata["triage_report"].value == report


def test_no_spike_shows_the_last_48_hours(built: Built) -> None:
    result = run_costwatch("triage", env=built.quiet_env)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("# No cost spike")
    (spikes,) = query(built.quiet, "select count(*) from marts.cost_spikes")[0]
    assert spikes == 0
    newest = query(built.quiet, "select max(hour) from marts.cost_baseline_hourly")[0][0]
    rows = query(
        built.quiet,
        "select hour, requests, total_cost_usd from marts.cost_hourly "
        "where hour > %s - interval '48 hours' order by hour",
        (newest,),
    )
    table_rows = [line for line in text.splitlines() if re.match(r"\| \d\d-\d\d \d\d:00 \|", line)]
    assert len(table_rows) == len(rows) == 48
    for line, (hour, requests, cost) in zip(table_rows, rows, strict=True):
        assert line.startswith(f"| {hour:%m-%d %H:%M} | {number(requests)} |")
        assert money(cost) in line


def test_unknown_spike_and_missing_marts_are_one_line(built: Built, db_url: str, tmp_path) -> None:
    result = run_costwatch("triage", "--spike", "spike-1999", env=built.env)
    assert result.returncode == 1
    known = [r[0] for r in query(built.spiky, "select spike_id from marts.cost_spikes")]
    assert result.stderr.startswith(
        "costwatch: error: no spike 'spike-1999' in marts.cost_spikes; known spikes, newest first: "
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(known) >= 3 and all(spike_id in result.stderr for spike_id in known)
    empty = run_costwatch("triage", env=costwatch_env(db_url, tmp_path))
    assert empty.returncode == 1 and "Traceback" not in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1
    assert "no marts yet: run `costwatch run`" in empty.stderr


def test_incident_report_falls_back_without_breaking_the_transaction(db_url: str) -> None:
    """No marts: the engine gets None (and uses its summary); its transaction stays usable."""
    from orchestration.runbook.triage.report import incident_report

    with connect(db_url) as conn, conn.transaction():
        assert incident_report(conn, "spike-x", {"status": "open"}) is None
        assert conn.execute("select 1").fetchone() == (1,)


def test_summary_opens_the_report_with_one_excess_figure(built: Built) -> None:
    """Five lines on top: incident, excess (the one figure), cause with its key number,
    likely trigger, action with the ack command; the same figure in the causes and the chart."""
    for scenario, _cause, _column, value in SCENARIOS:
        spike = _spike_for(built.spiky, built.onsets[scenario])
        report = _triage(built, spike["spike_id"])
        top = report.split("## Step 1")[0]
        lines = [line for line in top.splitlines() if line.startswith("- **")]
        assert [line.split(":**")[0] for line in lines] == [
            "- **Incident", "- **Excess", "- **Cause", "- **Likely trigger", "- **Action",
        ]  # fmt: skip
        (incident_id, title, action) = query(
            built.spiky,
            "select i.incident_id, c.title, c.action from ops.incidents as i "
            "join marts.spike_causes as c on c.spike_id = i.spike_id and c.rank = 1 "
            "where i.spike_id = %s",
            (spike["spike_id"],),
        )[0]
        assert lines[0].startswith(f"- **Incident:** #{incident_id} (")
        assert f"**{money(spike['excess_cost_usd'])}** so far" in lines[1]
        assert lines[2].startswith(f"- **Cause:** {escape_md(title)} (**{escape_md(value)}**)")
        assert action in lines[4] and f"`costwatch incidents ack {incident_id}`" in lines[4]
        # one excess figure: the summary's, the causes section's and the chart's title
        excess = money(spike["excess_cost_usd"])
        assert f"of the spike's {excess} excess" in report.split("## Causes, ranked")[1]
        from orchestration.runbook.triage.report import chart_title

        assert excess in chart_title(spike)
        (stored,) = query(
            built.spiky,
            "select excess_cost_usd from ops.incidents where spike_id = %s",
            (spike["spike_id"],),
        )[0]
        assert money(stored) == excess
    autosave = _triage(built, _spike_for(built.spiky, built.onsets["autosave_loop"])["spike_id"])
    assert "- **Likely trigger:** ux change" in autosave


def test_a_diagnosis_var_override_changes_the_reports_verdict(
    built: Built, server_url: str, tmp_path: Path
) -> None:
    """The report reads dbt's verdicts: a COSTWATCH_VAR_ threshold changes what it says."""
    from orchestration.core.database import url_for_database
    from orchestration.core.settings import dbt_vars

    spike_id = _spike_for(built.spiky, built.onsets["autosave_loop"])["spike_id"]
    default = _triage(built, spike_id).split("## Step 3")[1].split("## Step 4")[0]
    assert "hidden recompute rose" in default
    name = f"cw_test_triage_vars_{os.getpid()}"
    source = built.spiky.rsplit("/", 1)[1].split("?")[0]
    with connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}" template "{source}"')
    url = url_for_database(server_url, name)
    try:
        overrides = dbt_vars({"COSTWATCH_VAR_DIAGNOSIS_HIDDEN_RATIO_RISE": "0.9"})
        env = {**os.environ, **dbt_env(url), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        env.update(DBT_TARGET_PATH=str(tmp_path / "t"), DBT_LOG_PATH=str(tmp_path / "logs"))
        import json

        run = subprocess.run(
            [DBT, "run", "--project-dir", "dbt_project", "--profiles-dir", "dbt_project",
             "--select", "int_diagnosis_windows+", "--vars", json.dumps(overrides)],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:]
        changed = triage_markdown(url, spike_id).split("## Step 3")[1].split("## Step 4")[0]
        assert "hidden recompute ratio steady" in changed
        (signal,) = query(
            url,
            "select is_signal from marts.spike_runbook_steps "
            "where spike_id = %s and step = 3 and metric = 'hidden_ratio'",
            (spike_id,),
        )[0]
        assert signal is False
    finally:
        drop_database(server_url, name)

"""The Dagster UI tells the same story as the CLI (issue 16 item 4), read through Dagster's own
GraphQL API (the queries the web UI makes), after one real `costwatch run` on seeded data.

One pass on an auto-save loop, with the generic webhook answering HTTP 500: the report asset,
built after the incident step, names the incident and the one excess figure; `ops/incidents`
and `ops/alerts` say, formatted, what is open and where each alert went (the log delivered, the
webhook queued for a retry); the chart is embedded as a data: PNG in Markdown (a browser shows
it; a file path it cannot open); the `cost_spikes` check's numbers are formatted; the asset
groups are the runbook's concerns, set from dbt's metadata.
"""

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from orchestration.core.formatting import money
from orchestration.defs import ops_views
from tests.conftest import PROJECT_ROOT, costwatch_env, query, run_costwatch
from tests.support.incidents import HOOK_PATH, hook_server

pytestmark = pytest.mark.slow

# A Wednesday: 9 days give the baseline 3+ earlier days of the onset's day type.
END = "2026-11-18T20:00:00Z"
SEED = ("--days", "9", "--events-per-hour", "120", "--seed", "1")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_PNG = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")

METADATA = """
label
__typename
... on TextMetadataEntry { text }
... on MarkdownMetadataEntry { mdStr }
... on IntMetadataEntry { intValue }
... on PathMetadataEntry { path }
"""
LATEST = f"""
query Latest($key: AssetKeyInput!) {{
  assetOrError(assetKey: $key) {{
    __typename
    ... on Asset {{
      assetMaterializations(limit: 1) {{ runId timestamp metadataEntries {{ {METADATA} }} }}
    }}
  }}
}}
"""
NODES = """
query Nodes { assetNodes { assetKey { path } groupName } }
"""
CHECK = f"""
query Check($key: AssetKeyInput!, $name: String!) {{
  assetCheckExecutions(assetKey: $key, checkName: $name, limit: 1) {{
    runId
    evaluation {{ success severity metadataEntries {{ {METADATA} }} }}
  }}
}}
"""


@dataclass
class Pass:
    url: str
    stdout: str
    run_id: str
    context: Any  # a WorkspaceRequestContext over the run's Dagster instance

    def gql(self, text: str, **variables: Any) -> dict[str, Any]:
        from dagster_graphql.test.utils import execute_dagster_graphql

        result = execute_dagster_graphql(self.context, text, variables=variables)
        assert not result.errors, result.errors
        return result.data

    def latest(self, *path: str) -> tuple[str, dict[str, Any]]:
        """The run id and metadata (label -> value) of the asset's latest materialization."""
        data = self.gql(LATEST, key={"path": list(path)})["assetOrError"]
        assert data["__typename"] == "Asset", data
        (materialization,) = data["assetMaterializations"]
        return materialization["runId"], entries(materialization["metadataEntries"])


def entries(items: list[dict[str, Any]]) -> dict[str, Any]:
    value_of = {
        "TextMetadataEntry": "text",
        "MarkdownMetadataEntry": "mdStr",
        "IntMetadataEntry": "intValue",
        "PathMetadataEntry": "path",
    }
    return {e["label"]: e.get(value_of.get(e["__typename"], ""), e["__typename"]) for e in items}


@pytest.fixture(scope="module")
def one_pass(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pass]:
    import dagster as dg
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    tmp = tmp_path_factory.mktemp("ui")
    with hook_server() as server:
        server.default = 500  # the generic webhook is down: its alert waits for a retry
        env = costwatch_env(
            module_db_url,
            tmp,
            COSTWATCH_ALERT_WEBHOOK_URL=server.base + HOOK_PATH,
            COSTWATCH_ALERT_TIMEOUT_SECONDS="0.5",
        )
        run_costwatch(
            "seed", "--scenario", "autosave_loop", *SEED, "--end", END, env=env, check=True
        )
        result = run_costwatch("run", env=env, check=True)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("COSTWATCH_DATABASE_URL", "COSTWATCH_HOME", "DAGSTER_HOME"):
            patch.setenv(name, env[name])
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            (run,) = instance.get_run_records(limit=1)
            origin = LoadableTargetOrigin(
                module_name="orchestration.definitions", working_directory=str(PROJECT_ROOT)
            )
            with in_process_test_workspace(instance, origin) as context:
                yield Pass(module_db_url, result.stdout, run.dagster_run.run_id, context)


def test_the_report_is_built_after_the_incident_step_and_names_it(one_pass: Pass) -> None:
    ((incident_id, excess, spike_id),) = query(
        one_pass.url, "select incident_id, excess_cost_usd, spike_id from ops.incidents"
    )
    ((spike_excess,),) = query(
        one_pass.url,
        "select excess_cost_usd from marts.cost_spikes where spike_id = %s",
        (spike_id,),
    )
    assert f"incidents: 1 opened ({spike_id}" in one_pass.stdout
    run_id, meta = one_pass.latest("ops", "incident_report")
    assert run_id == one_pass.run_id
    # the five-line summary, as text entries: the incident the CLI opened, the one excess figure
    assert meta["incident"].startswith(f"#{incident_id} (open, severity ")
    assert "ongoing since 2026-11-18" in meta["incident"]
    assert money(excess) == money(spike_excess)
    assert meta["excess"].startswith(f"{money(excess)} so far")
    assert "hidden recompute (auto_save)" in meta["cause"]
    assert "ux change" in meta["likely_trigger"]
    assert meta["action"].endswith(f"Acknowledge: costwatch incidents ack {incident_id}")
    for value in (meta["incident"], meta["excess"], meta["cause"], meta["action"]):
        assert "**" not in value and "\\" not in value and "`" not in value
    # the report itself: step 8 names the incident and where its alerts went, never "no
    # incident yet"; every dollar figure of the excess is the one figure
    report = meta["report"]
    assert report.startswith(f"# Cost spike {spike_id}")
    step8 = report.split("## Step 8")[1]
    assert f"- **Incident:** #{incident_id} (open, severity" in step8
    # no external channel delivered yet (the webhook answered 500): not "created", and why
    assert "- **Alert created:** No; log: opened sent; webhook: opened pending" in step8
    assert "no incident yet" not in report
    head = report.split("## Step 1")[0]
    assert f"**{money(excess)}** so far" in head


def test_the_chart_is_embedded_not_a_path(one_pass: Pass) -> None:
    _, meta = one_pass.latest("ops", "incident_report")
    assert "chart_path" not in meta
    assert not any(isinstance(v, str) and v.endswith(".png") for v in meta.values())
    for key in ("chart", "report"):
        (encoded,) = DATA_PNG.findall(meta[key])
        png = base64.b64decode(encoded)
        assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    # in the report, in place of the line naming the file: after the summary, before step 1
    report = meta["report"]
    assert "Chart (cost vs baseline" not in report
    assert report.index("](data:image/png") < report.index("## Step 1")
    assert report.index("- **Action:**") < report.index("](data:image/png")


def test_incidents_asset_shows_open_incidents_formatted(one_pass: Pass) -> None:
    ((incident_id, severity, excess, pct),) = query(
        one_pass.url, "select incident_id, severity, excess_cost_usd, pct_above_baseline "
        "from ops.incidents"
    )  # fmt: skip
    run_id, meta = one_pass.latest("ops", "incidents")
    assert run_id == one_pass.run_id
    assert meta["open_incidents"] == 1
    assert meta["severity"] == severity
    assert meta["excess"] == money(excess) and re.fullmatch(r"\$\d+\.\d\d", meta["excess"])
    assert meta["over_baseline"] == f"+{float(pct) * 100:.0f}%"
    assert meta["latest_incident"] == (
        f"#{incident_id} open (severity {severity}): hidden_recompute, {money(excess)} excess "
        f"(+{float(pct) * 100:.0f}% over baseline) since 2026-11-18 "
        + meta["latest_incident"].split("since 2026-11-18 ")[1]
    )
    assert meta["ack"] == f"costwatch incidents ack {incident_id}"
    assert meta["root_cause"] == "hidden_recompute (trigger_type=auto_save)"
    table = meta["incidents"].splitlines()
    assert table[0] == "| incident | status | severity | excess | since (UTC) |"
    assert table[2].startswith(f"| #{incident_id} | open | {severity} | {money(excess)} | 11-18 ")
    # the engine's counters are still there, beside the formatted view
    assert meta["incidents_opened"] == 1 and meta["alerts_failed"] == 1


def test_alerts_asset_says_where_each_alert_went(one_pass: Pass) -> None:
    ((incident_id,),) = query(one_pass.url, "select incident_id from ops.incidents")
    statuses = dict(query(one_pass.url, "select channel, status from ops.alerts"))
    assert statuses == {"log": "sent", "webhook": "pending"}
    run_id, meta = one_pass.latest("ops", "alerts")
    assert run_id == one_pass.run_id
    assert meta["incident"] == f"#{incident_id}"
    went = meta["where_alerts_went"]
    assert went.startswith("log: opened delivered; webhook: opened queued (HTTP 500), retry at ")
    assert "COSTWATCH_SLACK_WEBHOOK_URL" not in went  # an external channel is configured
    assert meta["channel_log"] == "1 delivered" and meta["channel_webhook"] == "1 queued"
    assert (meta["alerts_delivered"], meta["alerts_failed"], meta["alerts_queued"]) == (1, 0, 1)
    rows = meta["alerts"].splitlines()[2:]
    assert len(rows) == 2
    assert any(f"| #{incident_id} | opened | webhook | queued |  |" in r for r in rows)
    log_row = rf"\| #{incident_id} \| opened \| log \| delivered \| \d\d-\d\d \d\d:\d\d \|"
    assert any(re.fullmatch(log_row, r) for r in rows), rows


def test_spike_check_metadata_is_formatted(one_pass: Pass) -> None:
    ((excess, pct),) = query(
        one_pass.url, "select excess_cost_usd, pct_above_baseline from ops.incidents"
    )
    (execution,) = one_pass.gql(
        CHECK, key={"path": ["marts", "cost_spikes"]}, name="no_sustained_spike_open"
    )["assetCheckExecutions"]
    evaluation = execution["evaluation"]
    assert execution["runId"] == one_pass.run_id
    assert not evaluation["success"] and evaluation["severity"] == "WARN"
    meta = entries(evaluation["metadataEntries"])
    assert meta["excess_cost_usd"] == money(excess)
    assert meta["pct_above_baseline"] == f"+{float(pct) * 100:.0f}%"
    ((spike_id, incident_id),) = query(
        one_pass.url, "select spike_id, incident_id from ops.incidents"
    )
    assert meta["spike_id"] == spike_id and meta["root_cause"] == "hidden_recompute"
    # checked after the incident step: it names the incident this very pass opened
    assert meta["incident"] == f"#{incident_id} (open)"


def test_assets_are_grouped_by_runbook_concern(one_pass: Pass) -> None:
    groups: dict[str, set[str]] = {}
    for node in one_pass.gql(NODES)["assetNodes"]:
        groups.setdefault(node["groupName"], set()).add("/".join(node["assetKey"]["path"]))
    assert set(groups) == {
        "ingestion", "staging", "detection", "traffic", "recompute", "tokens", "features",
        "tools", "diagnosis", "incidents",
    }  # fmt: skip
    expected = {
        "ingestion": "raw/inference_events",
        "staging": "staging/stg_raw__inference_events",
        "detection": "marts/cost_spikes",
        "traffic": "marts/cost_hourly",
        "recompute": "marts/recompute_hourly",
        "tokens": "marts/tokens_hourly",
        "features": "marts/feature_cost_hourly",
        "tools": "marts/tool_failures_hourly",
        "diagnosis": "marts/spike_diagnosis",
    }
    for group, key in expected.items():
        assert key in groups[group], (group, sorted(groups[group]))
    assert groups["incidents"] == {"ops/incidents", "ops/alerts", "ops/incident_report"}


def test_retries_and_escalations_refresh_what_the_ui_shows() -> None:
    """The incident job (launched by the due sensor) also rebuilds the alerts and the report,
    so a retried alert's delivery shows in both."""
    import dagster as dg

    from orchestration.definitions import defs

    job = defs().resolve_job_def("costwatch_incidents")
    assert job.asset_layer.executable_asset_keys == {
        dg.AssetKey(["ops", "incidents"]),
        ops_views.ALERTS,
        ops_views.REPORT,
    }


def test_ops_views_without_ops_tables_say_so(db_url: str) -> None:
    from orchestration.core.database import connect

    with connect(db_url) as conn:
        conn.execute("drop schema ops cascade")
        incidents = ops_views.incident_metadata(conn)
        alerts = ops_views.alert_metadata(conn)
    assert incidents["latest_incident"].value == "ops.incidents, ops.alerts missing"
    assert alerts["where_alerts_went"].value == "ops.incidents, ops.alerts missing"


def test_every_dbt_node_gets_its_group_from_dbt_metadata() -> None:
    """No folder fallback: a new model must be given its runbook concern in dbt_project.yml."""
    from orchestration.defs.dbt import dbt_group

    manifest = json.loads((PROJECT_ROOT / "dbt_project/target/manifest.json").read_text())
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed")]
    assert len(nodes) > 40
    missing = [n["name"] for n in nodes if not dbt_group(n)]
    assert missing == []


# --------------------------------------------------------------------------- pure, no database


def test_where_alerts_went_names_each_channel_and_how_to_configure_one() -> None:
    only_log = [{"alert_id": 1, "channel": "log", "kind": "opened", "status": "sent"}]
    assert ops_views.where_alerts_went(only_log) == (
        f"log: opened delivered ({ops_views.CONFIGURE_HINT})"
    )
    mixed = [
        {"alert_id": 3, "channel": "slack", "kind": "opened", "status": "failed",
         "http_status": None, "error": "connection refused\nsecond line"},
        {"alert_id": 1, "channel": "log", "kind": "opened", "status": "sent"},
    ]  # fmt: skip
    assert ops_views.where_alerts_went(mixed) == (
        "log: opened delivered; slack: opened failed (connection refused second line)"
    )
    assert ops_views.where_alerts_went([]) == "no alerts yet"
    assert ops_views.deliveries(
        [
            {"channel": "webhook", "status": "pending"},
            {"channel": "webhook", "status": "sent"},
            {"channel": "log", "status": "sent"},
        ]
    ) == {"log": "1 delivered", "webhook": "1 delivered, 1 queued"}


def test_plain_text_of_a_summary_line() -> None:
    line = "**$47.86** so far; hidden recompute (**auto\\_save**): `30s -&gt; 5s`"
    assert ops_views.plain(line) == "$47.86 so far; hidden recompute (auto_save): 30s -> 5s"


def test_money_and_percentages_in_the_incident_line() -> None:
    from datetime import UTC, datetime

    line = ops_views.incident_line(
        {
            "incident_id": 7, "status": "open", "severity": "high", "root_cause": "context_bloat",
            "excess_cost_usd": 47.85826515, "pct_above_baseline": 0.968,
            "spike_start": datetime(2026, 11, 18, 10, tzinfo=UTC), "acknowledged_at": None,
            "escalated_at": datetime(2026, 11, 18, 12, tzinfo=UTC),
        }
    )  # fmt: skip
    assert line == (
        "#7 open, escalated (severity high): context_bloat, $47.86 excess (+97% over baseline) "
        "since 2026-11-18 10:00 UTC"
    )

"""Hostile input and secrets: names from the data are stored and aggregated exactly, shown
escaped (report, Slack, webhook); passwords, webhook URLs and routing keys reach no log, no
`ops` row and no error line.

One pass runs on a spike of a feature whose name, tool and user agents carry quotes, SQL,
Markdown, HTML, emoji and a 100 KB string (other features and agents too), with every alert
channel on (a real HTTP server on 127.0.0.1) and a database URL with a password; everything the
pass wrote is then searched for the secrets.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from orchestration.core.formatting import code_safe, escape_md
from orchestration.runbook.incidents import engine, findings, payloads
from orchestration.runbook.incidents.settings import IncidentSettings
from orchestration.runbook.seed import seed
from tests.conftest import PROJECT_ROOT, costwatch_env, query, run_costwatch
from tests.test_faults_support import files_text, ops_text, runbook_mismatches, secrets_in
from tests.test_incidents_support import (
    HOOK_PATH,
    ROUTING_KEY,
    SLACK_PATH,
    Marts,
    channel_env,
    hook_server,
)

# A Wednesday: 9 days give the baseline 3+ earlier days of the onset's day type (a Saturday
# would have 2 weekend days of history: still learning, no spike).
END = datetime(2026, 11, 18, 20, tzinfo=UTC)
SQL = "'; drop table raw.inference_events; --"
HOSTILE = (
    SQL,
    '"quoted"',
    "**bold** _x_ [link](http://evil) | pipe",
    "<script>alert(1)</script>",
    "💸🔥",
)
BIG = "<b>big</b>" + "x" * 100_000
# The feature and the tool of the spike carry all of them at once.
FEATURE = '<script>alert(1)</script> **b** _x_ [l](http://evil) | "q" \'; drop table x; -- 💸🔥'
TOOL = "tool " + FEATURE
SECRET_TOKENS = ("generic-secret-abc123", "slacksecrettoken", ROUTING_KEY)

_RENAMES = (
    "update raw.inference_events set feature = %(big)s where feature = 'translate'",
    "update raw.tool_calls set feature = %(big)s where feature = 'translate'",
    "update raw.inference_events set user_agent = %(big)s where abs(hashtext(event_id)) %% 50 = 7",
)


def _inject_spike(conn: psycopg.Connection) -> None:
    """Eight costly hours of the hostile feature (its usual tokens, ten times the price: the
    feature carries the excess), whose hostile tool keeps failing."""
    for h in range(1, 9):
        hour = END - timedelta(hours=h)
        for i in range(60):
            at = hour + timedelta(seconds=50 * i + 7)
            event_id = f"hostile-{h}-{i}"
            agent = BIG if i % 7 == 0 else HOSTILE[i % len(HOSTILE)]
            conn.execute(
                "insert into raw.inference_events values"
                " (%s, %s, %s, %s, %s, 'user', 'gpt-4o-mini', 800, 250, 0.05, %s)",
                (event_id, at, f"u-hostile-{i % 9}", f"s-hostile-{h}", FEATURE, agent),
            )
            conn.execute(
                "insert into raw.tool_calls values (%s, %s, %s, %s, %s, false, 3, 900)",
                (f"hostile-call-{h}-{i}", at, event_id, FEATURE, TOOL),
            )


@pytest.fixture(scope="module")
def hostile_pass(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Quiet history, then a spike of a hostile feature and tool; hostile user agents and
    features throughout; one `costwatch run`, the triage report; what they wrote."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    with psycopg.connect(module_db_url) as conn:
        seed(conn, "quiet", days=9, events_per_hour=120, seed=3, end=END)
        for statement in _RENAMES:
            conn.execute(statement, {"big": BIG})
        for index, name in enumerate(HOSTILE):
            conn.execute(
                "update raw.inference_events set feature = %s, user_agent = %s"
                " where feature = 'chat' and abs(hashtext(event_id)) %% 40 = %s",
                (name, name, index),
            )
        _inject_spike(conn)
    counts = query(
        module_db_url,
        "select (select count(*) from raw.inference_events), (select count(*) from raw.tool_calls)",
    )
    with hook_server() as server:
        env = costwatch_env(module_db_url, tmp_path, **channel_env(server))
        started = time.time()
        result = run_costwatch("run", env=env)
        report = run_costwatch("triage", env=env)
        requests = list(server.requests)
    return {
        "url": module_db_url,
        "env": env,
        "counts": counts,
        "result": result,
        "report": report,
        "requests": requests,
        "started": started,
        "dagster_home": Path(env["DAGSTER_HOME"]),
    }


def test_hostile_names_are_stored_and_aggregated_exactly(hostile_pass: dict) -> None:
    url = hostile_pass["url"]
    assert hostile_pass["result"].returncode == 0, hostile_pass["result"].stdout[-3000:]
    assert (
        query(
            url,
            "select (select count(*) from raw.inference_events),"
            " (select count(*) from raw.tool_calls)",
        )
        == hostile_pass["counts"]
    )  # nothing dropped, the table "dropped" by the SQL is there
    features = {
        row[0] for row in query(url, "select distinct feature from marts.feature_cost_daily")
    }
    assert {*HOSTILE, BIG} <= features
    tools = {
        row[0] for row in query(url, "select distinct tool_name from marts.tool_failures_daily")
    }
    assert TOOL in tools
    assert query(
        url, "select sum(clean_rows), sum(rejected_rows) from marts.data_quality_daily"
    ) == [(hostile_pass["counts"][0][0] + hostile_pass["counts"][0][1], 0)]
    assert runbook_mismatches(url) == {}
    # The spike is found and diagnosed (which cause ranks first is the detection tests' matter).
    assert query(url, "select count(*) from marts.spike_diagnosis where rank = 1") == [(1,)]
    assert query(url, "select count(*) from ops.incidents") == [(1,)]


def test_the_report_shows_hostile_names_escaped_and_big_ones_shortened(hostile_pass: dict) -> None:
    report = hostile_pass["report"]
    assert report.returncode == 0, report.stderr
    text = report.stdout
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "<b>" not in text
    assert "**b**" not in text and r"\*\*b\*\*" in text
    assert "[l](http://evil)" not in text
    assert "💸🔥" in text
    assert "x" * 1000 not in text and len(text) < 50_000
    (stored,) = query(hostile_pass["url"], "select report_md from ops.incidents")
    # The incident keeps the same report (written when it opened), escaped and shortened alike.
    assert stored[0] is not None
    assert "<script>" not in stored[0] and "&lt;script&gt;" in stored[0]
    assert "x" * 1000 not in stored[0]


def test_slack_and_webhook_payloads_are_json_with_names_escaped(hostile_pass: dict) -> None:
    bodies = {r["path"]: r["body"] for r in hostile_pass["requests"]}
    webhook, slack = bodies[HOOK_PATH], bodies[SLACK_PATH]
    assert webhook["event"] == "incident.opened" and webhook["root_cause_detail"]
    assert "<script>" not in slack["text"]
    for block in slack["blocks"]:
        texts = [block.get("text", {}).get("text", "")]
        texts += [e.get("text", "") for e in block.get("elements", [])]
        for text in texts:
            assert "<script>" not in text and len(text) <= 3000  # Slack's limit per block
    pager = bodies["/v2/enqueue"]
    assert len(pager["payload"]["summary"]) <= 1024


def test_no_secret_reaches_a_log_a_row_or_a_file(hostile_pass: dict) -> None:
    password = urlsplit(hostile_pass["url"]).password
    assert password
    secrets = (password, *SECRET_TOKENS)
    result = hostile_pass["result"]
    places = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "triage": hostile_pass["report"].stdout + hostile_pass["report"].stderr,
        "ops tables": ops_text(hostile_pass["url"]),
        "dagster home": files_text(hostile_pass["dagster_home"]),
        "dbt target and logs": files_text(
            PROJECT_ROOT / "dbt_project" / "target", hostile_pass["started"]
        )
        + files_text(PROJECT_ROOT / "dbt_project" / "logs", hostile_pass["started"]),
    }
    found = {where: secrets_in(text, secrets) for where, text in places.items()}
    assert {where: hits for where, hits in found.items() if hits} == {}


def test_error_lines_hold_no_secret(db_url: str, tmp_path: Path) -> None:
    """A wrong password, a malformed URL, and channels that cannot be reached."""
    password = "s3cret-Pa55word"
    host = urlsplit(db_url).netloc.split("@", 1)[1]
    for url in (
        f"postgresql://postgres:{password}@{host}/nowhere",
        f"postgresql://postgres:{password}@127.0.0.1:99999/x",
    ):
        result = run_costwatch("run", env=costwatch_env(url, tmp_path))
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert password not in result.stdout + result.stderr

    marts = Marts(db_url).append(10, 10, 10, 30, 30, 30)
    assert marts.costs
    closed = "http://127.0.0.1:9"  # nothing listens on the discard port
    settings = IncidentSettings(
        webhook_url=closed + HOOK_PATH,
        slack_webhook_url=closed + SLACK_PATH,
        pagerduty_routing_key=ROUTING_KEY,
        pagerduty_url=closed + "/v2/enqueue",
        alert_timeout_seconds=0.5,
    )
    lines: list[str] = []

    class Log:
        def __getattr__(self, _name: str):
            return lambda message, *args, **kwargs: lines.append(str(message))

    report = engine.tick(db_url, settings=settings, log=Log())
    assert report.opened
    errors = query(db_url, "select error from ops.alerts where status = 'pending' and attempts > 0")
    assert len(errors) == 3 and all(e[0] for e in errors)
    found = secrets_in("\n".join([ops_text(db_url), report.summary(), *lines]), SECRET_TOKENS)
    assert found == []


def test_a_100kb_name_keeps_every_alert_within_its_channels_limits() -> None:
    detail = findings.root_cause_detail(
        {"cause": "tool_retry_storm", "tool_name": BIG, "contribution_usd": 5}, 10
    )
    assert len(detail) < 400 and detail.startswith("tool_retry_storm (tool_name=<b>big</b>xx")
    incident = {
        "incident_id": 1, "spike_id": "spike-2026-11-21T10", "severity": "high",
        "root_cause": "tool_retry_storm", "root_cause_detail": detail,
        "mitigation_recommended": "Circuit breaker", "excess_cost_usd": 10,
        "pct_above_baseline": 0.5, "spike_start": None,
    }  # fmt: skip
    slack = payloads.slack_payload(incident, "opened")
    texts = [b["text"]["text"] for b in slack["blocks"] if "text" in b]
    assert all(len(text) <= 3000 for text in texts) and len(slack["text"]) <= 3000
    assert "<b>" not in slack["text"] and "&lt;b&gt;" in slack["text"]
    assert json.loads(json.dumps(payloads.webhook_payload(incident, "opened")))["root_cause"]


def test_a_100kb_name_is_shortened_in_the_report() -> None:
    for shown in (escape_md(BIG), code_safe(BIG), escape_md(FEATURE * 10)):
        assert len(shown) < 400 and shown.endswith("…")
    assert escape_md(FEATURE) == escape_md(FEATURE[:200])  # short names are whole


def test_hostile_names_reach_slack_escaped_and_the_webhook_whole(db_url: str) -> None:
    """The alert channels for a cause naming the hostile feature (real HTTP, real tick)."""
    marts = Marts(db_url)
    marts.causes = [
        {"cause": "feature_concentration", "feature": FEATURE, "evidence": {}},
        {"cause": "tool_retry_storm", "tool_name": BIG, "evidence": {}},
    ]
    marts.append(10, 10, 10, 30, 30, 30)
    with hook_server() as server:
        settings = IncidentSettings.from_env(channel_env(server))
        report = engine.tick(db_url, settings=settings)
        bodies = {r["path"]: r["body"] for r in server.requests}
    assert report.opened and report.sent == 4, report.summary()  # the log and three channels
    assert FEATURE in bodies[HOOK_PATH]["root_cause_detail"]  # JSON carries the name whole
    slack = bodies[SLACK_PATH]
    assert "<script>" not in json.dumps(slack) and "&lt;script&gt;" in slack["text"]
    assert all(len(b["text"]["text"]) <= 3000 for b in slack["blocks"] if "text" in b)
    assert len(bodies["/v2/enqueue"]["payload"]["summary"]) <= 1024
    (detail,) = query(db_url, "select root_cause_detail from ops.incidents")[0]
    assert FEATURE in detail and "x" * 200 not in detail

"""`costwatch ingest otlp FILE...` (the Collector's file exporter: OTLP/JSON, one export request
per line) and `costwatch ingest langfuse DIR` (a Langfuse observations_v2 export, JSONL and
Parquet, built from its documented columns), run as the real command: idempotent, one line per
rejected file; then the pipeline's marts equal the runbook's queries on the ingested rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from orchestration.runbook.ingest.langfuse import map_observations
from orchestration.runbook.ingest.otlp_json import parse_request, to_json
from orchestration.runbook.ingest.sender import SpanFactory
from tests.conftest import costwatch_env, query, run_costwatch
from tests.support.marts import assert_close_rows, fetch, run_dbt
from tests.support.runbook import STEP_2, STEP_5, as_day, runbook, without_window

T0 = datetime(2026, 2, 10, 8, 0, tzinfo=UTC)


def collector_file(path: Path, hours: int = 3) -> int:
    """A file as the Collector's file exporter writes it: one OTLP/JSON request per line."""
    factory = SpanFactory(service="support-bot")
    lines = []
    count = 0
    for hour in range(hours):
        for i in range(30):
            start = T0 + timedelta(hours=hour, minutes=2 * i)
            span = factory.inference(
                start,
                model="gpt-4o-mini",
                input_tokens=300 + 10 * i,
                output_tokens=40 + i,
                trigger_type="auto_save" if i % 6 == 0 else "user",
                user_id=f"u{i % 5}",
                cost_usd=0.0002 * (1 + i % 4),
                provider="openai",
            )
            count += 1
            if i % 5 == 0:
                factory.tool(
                    span, start + timedelta(seconds=1), tool_name="kb", success=i % 10 != 0
                )
        lines.append(to_json(encode_spans(factory.take())))
    path.write_text("\n".join(lines) + "\n")
    return count


def test_otlp_json_keeps_hex_ids_round_trip() -> None:
    factory = SpanFactory()
    factory.inference(T0, model="m", input_tokens=1, output_tokens=1)
    request = encode_spans(factory.take())
    text = to_json(request)
    span_id = request.resource_spans[0].scope_spans[0].spans[0].span_id.hex()
    assert f'"spanId":"{span_id}"' in text
    assert parse_request(text) == request


def test_ingest_otlp_files_is_idempotent_and_rejects_bad_files(
    db_url: str, cli_env: dict, tmp_path: Path
) -> None:
    good = tmp_path / "traces.json"
    events = collector_file(good)
    bad = tmp_path / "broken.json"
    bad.write_text('{"resourceSpans": []}\nthis is not json\n')
    result = run_costwatch("ingest", "otlp", str(good), str(bad), env=cli_env, check=True)
    assert f"rejected {bad}: line 2 is not an OTLP JSON export request" in result.stdout
    assert f"{events:,} inference events, 18 tool calls" in result.stdout
    again = run_costwatch("ingest", "otlp", str(good), env=cli_env, check=True)
    assert "0 inference events, 0 tool calls (108 already ingested, skipped)" in again.stdout
    assert query(db_url, "select count(*) from raw.inference_events") == [(events,)]
    assert query(db_url, "select count(distinct event_id), min(feature) from raw.tool_calls") == [
        (18, "support-bot")
    ]
    missing = run_costwatch("ingest", "otlp", str(tmp_path / "nope.json"), env=cli_env)
    assert missing.returncode == 1 and "rejected" in missing.stdout
    assert "Traceback" not in missing.stderr


# --------------------------------------------------------------------------- Langfuse


def langfuse_rows(hours: int = 3) -> list[dict]:
    """observations_v2 rows with the documented columns (timestamps as the export writes them)."""
    rows = []
    for hour in range(hours):
        for i in range(20):
            start = T0 + timedelta(hours=hour, minutes=3 * i)
            stamp = start.strftime("%Y-%m-%d %H:%M:%S.%f")
            obs = f"gen-{hour}-{i}"
            tags = ["feature:writer"] if i % 4 == 0 else ["prod"]
            if i % 7 == 0:
                tags.append("trigger:undo")
            rows.append(
                {
                    "id": obs,
                    "trace_id": f"trace-{hour}-{i}",
                    "project_id": "p1",
                    "type": "GENERATION",
                    "name": "llm-call",
                    "start_time": stamp,
                    "end_time": (start + timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                    "level": "DEFAULT",
                    "parent_observation_id": None,
                    "provided_model_name": "claude-sonnet-4",
                    "usage_details": {
                        "input": 500 + i,
                        "cache_read_input_tokens": 100,
                        "output": 80,
                        "total": 680 + i,
                    },
                    "cost_details": {"total": 0.001 * (1 + i % 3)},
                    "total_cost": 0.001 * (1 + i % 3),
                    "user_id": f"lf-user-{i % 6}",
                    "session_id": f"lf-session-{i % 4}",
                    "trace_name": "chat-app",
                    "tags": tags,
                    "metadata": {},
                }
            )
            if i % 5 == 0:
                rows.append(
                    {
                        "id": f"tool-{hour}-{i}",
                        "trace_id": f"trace-{hour}-{i}",
                        "type": "TOOL",
                        "name": "web_search",
                        "start_time": stamp,
                        "end_time": (start + timedelta(milliseconds=250)).strftime(
                            "%Y-%m-%d %H:%M:%S.%f"
                        ),
                        "level": "ERROR" if i % 10 == 0 else "DEFAULT",
                        "parent_observation_id": obs,
                        "trace_name": "chat-app",
                        "tags": ["prod"],
                    }
                )
            rows.append({"id": f"span-{hour}-{i}", "type": "SPAN", "name": "retrieval"})
    return rows


def test_langfuse_mapping_of_documented_columns() -> None:
    mapped = map_observations(langfuse_rows(hours=1))
    assert len(mapped.inference) == 20 and len(mapped.tools) == 4
    first = mapped.inference[0]
    assert first[:9] == (
        "gen-0-0",
        T0,
        "lf-user-0",
        "lf-session-0",
        "writer",
        "undo",
        "claude-sonnet-4",
        600,
        80,
    )
    assert first[9] == Decimal("0.001") and first[11] == 100 and first[15] == "provider"
    assert mapped.inference[1][4] == "chat-app"  # no feature tag: the trace name
    assert mapped.tools[0] == ("tool-0-0", T0, "gen-0-0", "chat-app", "web_search", False, 0, 250)


@pytest.fixture(scope="module")
def langfuse_export(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("langfuse") / "observations_v2"
    folder.mkdir()
    rows = langfuse_rows()
    half = len(rows) // 2
    (folder / "2026-02-10-part1.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:half]))
    as_text = ("usage_details", "cost_details", "metadata")  # JSON columns, as text
    table = pa.Table.from_pylist(
        [{**r, **{k: json.dumps(r.get(k)) for k in as_text}} for r in rows[half:]]
    )
    pq.write_table(table, folder / "2026-02-10-part2.parquet")
    (folder / "garbage.jsonl").write_text("{not json")
    env = costwatch_env(module_db_url, tmp_path_factory.mktemp("home"))
    first = run_costwatch("ingest", "langfuse", str(folder.parent), env=env, check=True)
    assert "rejected" in first.stdout and "garbage.jsonl" in first.stdout
    assert "60 inference events, 12 tool calls" in first.stdout
    second = run_costwatch("ingest", "langfuse", str(folder.parent), env=env, check=True)
    assert "0 inference events, 0 tool calls (72 already ingested, skipped)" in second.stdout
    run_dbt(module_db_url, "build", select="+marts.runbook +marts.providers")
    return module_db_url


def test_langfuse_export_marts_equal_the_runbook(langfuse_export: str) -> None:
    url = langfuse_export
    assert fetch(url, "select count(*), count(distinct feature) from raw.inference_events") == [
        (60, 2)
    ]
    expected = runbook(url, without_window(STEP_2))
    actual = fetch(
        url,
        "select hour, requests, unique_users, total_cost_usd, avg_cost_per_request_usd"
        " from marts.cost_hourly order by 1",
    )
    assert len(actual) == 3
    assert_close_rows(actual, expected, "cost_hourly")
    expected = sorted((as_day(d), *rest) for d, *rest in runbook(url, without_window(STEP_5)))
    actual = fetch(
        url,
        "select day, feature, requests, total_cost_usd, cost_per_request_usd"
        " from marts.feature_cost_daily order by 1, 2",
    )
    assert_close_rows(actual, expected, "feature_cost_daily")
    tools = fetch(url, "select sum(total_calls), sum(failures) from marts.tool_failures_daily")
    assert tools == [(12, 6)]
    cached = fetch(url, "select sum(sum_cached_input_tokens) from marts.tokens_daily")
    assert cached == [(6000,)]

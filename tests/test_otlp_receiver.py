"""`costwatch otlp serve` against the real OpenTelemetry SDK and its OTLP/HTTP exporter, on
127.0.0.1 and a real PostgreSQL (CONTRACT section 9): the mapping, re-sent batches, the size
cap, the database going away mid-stream, the bearer token, JSON and partial success; then the
pipeline on the ingested rows equals the runbook's queries."""

from __future__ import annotations

import gzip
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from orchestration.runbook.ingest.otlp_json import to_json
from orchestration.runbook.ingest.receiver import Receiver, ReceiverError
from orchestration.runbook.ingest.sender import SpanFactory
from tests.conftest import query
from tests.support.marts import assert_close_rows, fetch, run_dbt
from tests.support.runbook import STEP_2, STEP_4, STEP_5, as_day, runbook, without_window

T0 = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def receiver(db_url: str) -> Iterator[Receiver]:
    yield from _serve(db_url)


def _serve(url: str, **kwargs) -> Iterator[Receiver]:
    server = Receiver(url, port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.close()


def endpoint(server: Receiver) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1/traces"


def exporter(server: Receiver, **kwargs) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=endpoint(server), timeout=10, **kwargs)


def some_spans(factory: SpanFactory, start: datetime = T0) -> list:
    """Inference spans with and without a provider cost, tool spans failing and not."""
    first = factory.inference(
        start,
        model="gpt-4o",
        input_tokens=1200,
        output_tokens=300,
        feature="chat",
        trigger_type="retry",
        user_id="u1",
        session_id="s1",
        user_agent="Mozilla/5.0",
        cost_usd=0.006,
        provider="openai",
    )
    factory.tool(first, start + timedelta(seconds=1), tool_name="search", success=False, retries=2)
    factory.tool(first, start + timedelta(seconds=2), tool_name="search", success=True)
    factory.inference(
        start + timedelta(minutes=5),
        model="gpt-4o-mini",
        input_tokens=1000,
        output_tokens=100,
        cached_input_tokens=400,
        feature="search",
        user_id="u2",
        provider="openai",
    )
    return factory.take()


def post(server: Receiver, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(endpoint(server), data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_genai_spans_become_raw_rows(receiver: Receiver, db_url: str) -> None:
    spans = some_spans(SpanFactory(service="shop"))
    assert (
        exporter(receiver, compression=Compression.Gzip).export(spans) == SpanExportResult.SUCCESS
    )
    events = query(
        db_url,
        "select created_at, user_id, session_id, feature, trigger_type, model, input_tokens,"
        " output_tokens, cost_usd, user_agent, cached_input_tokens, provider, cost_source"
        " from raw.inference_events order by created_at",
    )
    assert events == [
        (T0, "u1", "s1", "chat", "retry", "gpt-4o", 1200, 300, Decimal("0.006"), "Mozilla/5.0",
         None, "openai", "provider"),
        (T0 + timedelta(minutes=5), "u2", None, "search", "user", "gpt-4o-mini", 1000, 100, None,
         None, 400, "openai", "unknown"),
    ]  # fmt: skip
    first_span = spans[0]
    event_id = f"{first_span.context.trace_id:032x}-{first_span.context.span_id:016x}"
    assert query(db_url, "select event_id from raw.inference_events order by created_at")[0] == (
        event_id,
    )
    calls = query(
        db_url,
        "select event_id, feature, tool_name, success, retries, latency_ms from raw.tool_calls"
        " order by created_at",
    )
    assert calls == [
        (event_id, "chat", "search", False, 2, 120),
        (event_id, "chat", "search", True, 0, 120),
    ]


def test_the_same_batch_sent_twice_is_stored_once(receiver: Receiver, db_url: str) -> None:
    spans = some_spans(SpanFactory())
    sender = exporter(receiver)
    assert sender.export(spans) == SpanExportResult.SUCCESS
    assert sender.export(spans) == SpanExportResult.SUCCESS
    assert sender.export(spans[:2]) == SpanExportResult.SUCCESS
    assert query(db_url, "select count(*) from raw.inference_events") == [(2,)]
    assert query(db_url, "select count(*) from raw.tool_calls") == [(2,)]


def test_a_body_over_the_limit_is_refused_with_413(db_url: str) -> None:
    for server in _serve(db_url, max_body_bytes=2_000):
        factory = SpanFactory()
        for minute in range(40):
            factory.inference(
                T0 + timedelta(minutes=minute), model="m", input_tokens=1, output_tokens=1
            )
        spans = factory.take()
        assert exporter(server).export(spans) == SpanExportResult.FAILURE
        status, _, _ = post(server, b"x" * 5_000, {"Content-Type": "application/x-protobuf"})
        assert status == 413
        # a small batch still goes through
        assert exporter(server).export(spans[:2]) == SpanExportResult.SUCCESS
    assert query(db_url, "select count(*) from raw.inference_events") == [(2,)]


def test_database_down_mid_stream_answers_503_then_recovers(
    receiver: Receiver, db_url: str
) -> None:
    factory = SpanFactory()
    sender = exporter(receiver)
    assert sender.export(some_spans(factory)) == SpanExportResult.SUCCESS
    name = db_url.rsplit("/", 1)[1].split("?")[0]
    admin = db_url.rsplit("/", 1)[0] + "/postgres"
    later = some_spans(factory, T0 + timedelta(hours=1))
    body = _request_body(later)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'alter database "{name}" with allow_connections false')
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,)
        )
        try:
            status, headers, _ = post(receiver, body, {"Content-Type": "application/x-protobuf"})
            assert status == 503
            assert headers.get("Retry-After") == "2"
        finally:
            conn.execute(f'alter database "{name}" with allow_connections true')
    # The exporter retries (503 is retryable) and the receiver reconnects: stored once.
    assert sender.export(later) == SpanExportResult.SUCCESS
    assert query(db_url, "select count(*) from raw.inference_events") == [(4,)]


def _request_body(spans: list) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return encode_spans(spans).SerializeToString()


def test_json_gzip_and_partial_success(receiver: Receiver, db_url: str) -> None:
    request = ExportTraceServiceRequest.FromString(_request_body(some_spans(SpanFactory())))
    broken = request.resource_spans[0].scope_spans[0].spans.add()
    broken.CopyFrom(request.resource_spans[0].scope_spans[0].spans[0])
    broken.span_id = b""  # cannot be deduplicated: rejected, counted
    body = gzip.compress(to_json(request).encode())  # OTLP/JSON: hex ids
    status, headers, payload = post(
        receiver, body, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    response = json_format.Parse(payload, ExportTraceServiceResponse())
    assert response.partial_success.rejected_spans == 1
    assert "trace_id and span_id" in response.partial_success.error_message
    assert query(db_url, "select count(*) from raw.inference_events") == [(2,)]
    status, _, _ = post(receiver, b"\x00not protobuf", {"Content-Type": "application/x-protobuf"})
    assert status == 400
    status, _, _ = post(receiver, b"{not json", {"Content-Type": "application/json"})
    assert status == 400


def test_other_addresses_need_a_token_and_requests_must_carry_it(db_url: str) -> None:
    with pytest.raises(ReceiverError, match="COSTWATCH_OTLP_TOKEN"):
        Receiver(db_url, host="0.0.0.0", port=0)
    for server in _serve(db_url, token="s3cret"):
        spans = some_spans(SpanFactory())
        status, headers, _ = post(
            server, _request_body(spans), {"Content-Type": "application/x-protobuf"}
        )
        assert status == 401 and headers.get("Connection") == "close"
        assert exporter(server).export(spans) == SpanExportResult.FAILURE
        authorized = exporter(server, headers={"Authorization": "Bearer s3cret"})
        assert authorized.export(spans) == SpanExportResult.SUCCESS
    assert query(db_url, "select count(*) from raw.inference_events") == [(2,)]


# --------------------------------------------------------------------------- the pipeline


@pytest.fixture(scope="module")
def ingested(module_db_url: str) -> str:
    """Six hours of spans (every one with its provider cost) through the receiver; marts built."""
    factory = SpanFactory(service="shop")
    features = ("chat", "search", "summarize")
    triggers = ("user", "user", "retry", "undo", "auto_save")
    for i in range(360):
        start = T0 + timedelta(minutes=i, seconds=i % 7)
        span = factory.inference(
            start,
            model=("gpt-4o", "gpt-4o-mini", "claude-sonnet-4")[i % 3],
            input_tokens=200 + (i * 37) % 900,
            output_tokens=20 + (i * 11) % 300,
            feature=features[i % 3],
            trigger_type=triggers[i % 5],
            user_id=f"u{i % 17}",
            session_id=f"s{i % 23}",
            cost_usd=round(0.0001 * (1 + (i * 13) % 50), 6),
            provider=("openai", "openai", "anthropic")[i % 3],
        )
        if i % 4 == 0:
            factory.tool(span, start + timedelta(seconds=1), tool_name="search", success=i % 8 != 0)
    for server in _serve(module_db_url):
        sender = exporter(server)
        spans = factory.take()
        for start in range(0, len(spans), 100):
            assert sender.export(spans[start : start + 100]) == SpanExportResult.SUCCESS
        assert sender.export(spans[:100]) == SpanExportResult.SUCCESS  # a re-send
    run_dbt(module_db_url, "build", select="+marts.runbook +marts.providers")
    return module_db_url


def test_marts_equal_the_runbook_on_ingested_spans(ingested: str) -> None:
    assert fetch(ingested, "select count(*) from raw.inference_events") == [(360,)]
    expected = runbook(ingested, without_window(STEP_2))
    actual = fetch(
        ingested,
        "select hour, requests, unique_users, total_cost_usd, avg_cost_per_request_usd"
        " from marts.cost_hourly order by 1",
    )
    assert len(actual) == 6
    assert_close_rows(actual, expected, "cost_hourly")
    expected = runbook(ingested, without_window(STEP_4))
    actual = fetch(
        ingested,
        "select hour, avg_input_tokens, avg_output_tokens, p95_input_tokens, p95_output_tokens"
        " from marts.tokens_hourly order by 1",
    )
    assert_close_rows(actual, expected, "tokens_hourly")
    expected = sorted((as_day(d), *rest) for d, *rest in runbook(ingested, without_window(STEP_5)))
    actual = fetch(
        ingested,
        "select day, feature, requests, total_cost_usd, cost_per_request_usd"
        " from marts.feature_cost_daily order by 1, 2",
    )
    assert_close_rows(actual, expected, "feature_cost_daily")
    failures = fetch(
        ingested, "select sum(total_calls), sum(failures) from marts.tool_failures_hourly"
    )
    assert failures == [(90, 45)]
    providers = fetch(
        ingested,
        "select provider, sum(requests) from marts.provider_cost_daily group by 1 order by 1",
    )
    assert providers == [("anthropic", 120), ("openai", 240)]


def test_the_command_serves_and_stops_cleanly_on_sigterm(db_url: str, cli_env: dict) -> None:
    """`costwatch otlp serve` as a process: refuses a public address without a token (one
    line), serves, and on SIGTERM flushes what it took and exits 0."""
    import signal
    import subprocess

    from orchestration.runbook.ingest.demo import _free_port, _wait_listening
    from tests.conftest import COSTWATCH, run_costwatch

    refused = run_costwatch("otlp", "serve", "--host", "0.0.0.0", env=cli_env)
    assert refused.returncode == 1 and "COSTWATCH_OTLP_TOKEN" in refused.stderr
    assert "Traceback" not in refused.stderr
    port = _free_port()
    process = subprocess.Popen(
        [COSTWATCH, "otlp", "serve", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_listening(port, process)
        sender = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=10)
        assert sender.export(some_spans(SpanFactory())) == SpanExportResult.SUCCESS
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped: 4 spans stored" in out
    assert query(db_url, "select count(*) from raw.inference_events") == [(2,)]

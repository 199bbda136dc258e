"""The span-to-row mapping of CONTRACT section 9, pure (no database, no HTTP)."""

from __future__ import annotations

from decimal import Decimal

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from orchestration.runbook.ingest.mapping import map_request

TRACE = bytes(range(1, 17))


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def request(
    *spans: tuple[int, dict, dict], resource: dict | None = None
) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    rs = out.resource_spans.add()
    rs.resource.attributes.extend(
        _kv(k, v) for k, v in (resource or {"service.name": "svc"}).items()
    )
    scope = rs.scope_spans.add()
    for number, attributes, extra in spans:
        span = scope.spans.add(
            trace_id=TRACE,
            span_id=number.to_bytes(8, "big"),
            start_time_unix_nano=1_767_261_600_000_000_000 + number,
            end_time_unix_nano=1_767_261_600_250_000_000 + number,
            **extra,
        )
        span.attributes.extend(_kv(k, v) for k, v in attributes.items())
    return out


def test_fallbacks_of_each_field() -> None:
    mapped = map_request(
        request(
            (1, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-req",
                 "gen_ai.system": "anthropic", "gen_ai.usage.prompt_tokens": "12",
                 "gen_ai.usage.completion_tokens": 3, "enduser.id": "e1", "session.id": "s9",
                 "gen_ai.usage.cost": 0.25, "gen_ai.usage.cache_read_input_tokens": 4,
                 "gen_ai.usage.cache_creation.input_tokens": 2,
                 "gen_ai.usage.reasoning.output_tokens": 1}, {}),
            (2, {"gen_ai.operation.name": "chat", "gen_ai.response.model": "m-resp",
                 "gen_ai.request.model": "m-req", "gen_ai.usage.input_tokens": 1,
                 "gen_ai.usage.output_tokens": 1, "gen_ai.usage.cost.amount": 1.5,
                 "gen_ai.usage.cost.currency": "EUR", "app.feature": "billing"}, {}),
            (3, {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 99}, {}),
            (4, {"http.method": "GET"}, {}),
            (5, {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "emb",
                 "gen_ai.usage.input_tokens": 30}, {}),
        ),
        feature_key="app.feature",
    )  # fmt: skip
    first, second, embedding = mapped.inference
    assert first[2:11] == ("e1", "s9", "svc", "user", "m-req", 12, 3, Decimal("0.25"), None)
    assert first[11:] == (4, 2, 1, "anthropic", "provider")
    # response model first; a cost not in dollars is priced instead; feature from the attribute
    assert (second[4], second[6], second[9], second[15]) == ("billing", "m-resp", None, "unknown")
    assert embedding[6:9] == ("emb", 30, 0)
    assert len(mapped.inference) == 3 and mapped.rejected == 0  # agent and HTTP spans skipped


def test_tool_spans_and_their_status() -> None:
    error = {"status": Status(code=Status.STATUS_CODE_ERROR)}
    mapped = map_request(
        request(
            (1, {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1,
                 "gen_ai.usage.output_tokens": 1, "costwatch.feature": "chat"}, {}),
            (2, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "db"},
             {"parent_span_id": (1).to_bytes(8, "big"), **error}),
            (3, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "db",
                 "error.type": "timeout", "costwatch.retries": 3}, {}),
            (4, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "db"}, {}),
        )
    )  # fmt: skip
    parent = f"{TRACE.hex()}-{(1).to_bytes(8, 'big').hex()}"
    assert [row[2:] for row in mapped.tools] == [
        (parent, "chat", "db", False, 0, 250),  # the parent's feature
        (None, "svc", "db", False, 3, 250),
        (None, "svc", "db", True, 0, 250),
    ]


def test_a_span_without_ids_is_rejected_in_partial_success() -> None:
    bad = request((1, {"gen_ai.operation.name": "chat"}, {}))
    bad.resource_spans[0].scope_spans[0].spans[0].span_id = b""
    mapped = map_request(bad)
    assert mapped.rejected == 1 and not mapped.inference
    assert mapped.error_message() == "1 span without a valid trace_id and span_id"

"""OpenTelemetry GenAI spans to costwatch's raw rows (CONTRACT section 9). Pure: no database.

Works on the `opentelemetry-proto` generated classes (an `ExportTraceServiceRequest`, decoded
from protobuf or from OTLP JSON by protobuf's json_format), never on hand-parsed bodies.
An inference span becomes a `raw.inference_events` row, an `execute_tool` span a
`raw.tool_calls` row; other spans (HTTP, database, agent spans) are not GenAI calls and are
skipped. A GenAI span without a valid trace and span id cannot be deduplicated: it is rejected
and counted in `partial_success`. Everything else is written as it came; staging judges it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

FEATURE_ATTRIBUTE = "costwatch.feature"
INFERENCE_OPERATIONS = frozenset(
    {"chat", "text_completion", "generate_content", "completion", "responses", "embeddings"}
)

TOOL_OPERATION = "execute_tool"
# First attribute present wins (the current convention first, then older or vendor names).
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHED_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens.cached",
)
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.input_tokens.cache_write",
)
REASONING_TOKENS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.output_tokens.reasoning",
    "gen_ai.usage.reasoning_tokens",
)
INT32_MAX = 2**31 - 1

INFERENCE_COLUMNS = (
    "event_id",
    "created_at",
    "user_id",
    "session_id",
    "feature",
    "trigger_type",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "user_agent",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "provider",
    "cost_source",
)
TOOL_COLUMNS = (
    "call_id",
    "created_at",
    "event_id",
    "feature",
    "tool_name",
    "success",
    "retries",
    "latency_ms",
)


@dataclass
class Mapped:
    """Rows from one export request, and the spans it could not take (with why)."""

    inference: list[tuple] = field(default_factory=list)
    tools: list[tuple] = field(default_factory=list)
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def error_message(self) -> str:
        return "; ".join(f"{n} {reason}" for reason, n in sorted(self.reasons.items()))

    def extend(self, other: Mapped) -> None:
        self.inference += other.inference
        self.tools += other.tools
        self.rejected += other.rejected
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n


def _value(any_value: object) -> object:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def attributes(key_values: object) -> dict[str, object]:
    out = {}
    for kv in key_values:  # the receiver's inner loop: scalars inline
        value = kv.value
        kind = value.WhichOneof("value")
        if kind is None:
            continue
        if kind in _SCALARS:
            out[kv.key] = getattr(value, kind)
        else:
            out[kv.key] = _value(value)
    return out


_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def _first(attrs: dict[str, object], names: tuple[str, ...]) -> object:
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


def _text(value: object) -> str | None:
    if value is None or value.__class__ is str:
        return value
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    return str(value)


def _integer(value: object) -> int | None:
    """A token count: ints, integral floats and numeric strings; anything else is null (and the
    row is then rejected by staging for missing tokens, never guessed)."""
    if value.__class__ is int:  # the usual case, first
        return value if -INT32_MAX <= value <= INT32_MAX else None
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value) if not isinstance(value, float) else value
        if isinstance(number, float):
            if not number.is_integer():
                return None
            number = int(number)
    except (TypeError, ValueError):
        try:
            number = int(Decimal(str(value)))
        except (InvalidOperation, ValueError):
            return None
    return number if -INT32_MAX <= number <= INT32_MAX else None


def _cost(attrs: dict[str, object]) -> Decimal | None:
    currency = attrs.get("gen_ai.usage.cost.currency")
    if currency not in (None, "", "USD", "usd"):
        return None  # not dollars: price it instead
    # gen_ai.usage.cost(.amount): OpenTelemetry-style; operation.cost: Logfire's (USD)
    value = _first(attrs, ("gen_ai.usage.cost.amount", "gen_ai.usage.cost", "operation.cost"))
    if value is None or isinstance(value, bool | list | dict):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() else None


def _timestamp(unix_nano: int) -> datetime | None:
    if not unix_nano:
        return None
    return datetime.fromtimestamp(unix_nano / 1e9, tz=UTC)


def span_kind(attrs: dict[str, object]) -> str | None:
    """'inference', 'tool' or None (not a GenAI call)."""
    operation = attrs.get("gen_ai.operation.name")
    if operation == TOOL_OPERATION:
        return "tool"
    if operation in INFERENCE_OPERATIONS:
        return "inference"
    # Any other operation (invoke_agent, create_agent, ...) is not counted, even with usage
    # counts: an agent span repeats its children's usage, and its chat spans are counted.
    if operation is None and any(name in attrs for name in INPUT_TOKENS + OUTPUT_TOKENS):
        return "inference"  # older instrumentations: no operation name, usage counts
    return None


def map_request(request: ExportTraceServiceRequest, feature_key: str | None = None) -> Mapped:
    """Every GenAI span of an export request as raw rows."""
    feature_key = feature_key or FEATURE_ATTRIBUTE
    out = Mapped()
    # A tool span without a feature of its own takes its parent inference span's (same request).
    inference_features: dict[str, str | None] = {}
    orphan_tools: list[tuple[int, str]] = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        service = _text(resource.get("service.name"))
        resource_feature = _text(resource.get(feature_key))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attrs = attributes(span.attributes)
                kind = span_kind(attrs)
                if kind is None:
                    continue
                if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.span_id):
                    out.reject("span without a valid trace_id and span_id")
                    continue
                trace = span.trace_id.hex()
                span_id = f"{trace}-{span.span_id.hex()}"
                own_feature = _text(attrs.get(feature_key))
                feature = own_feature or resource_feature or service
                created_at = _timestamp(span.start_time_unix_nano)
                if kind == "inference":
                    out.inference.append(_inference_row(span_id, created_at, feature, attrs))
                    inference_features[span_id] = feature
                else:
                    row = _tool_row(span, span_id, trace, created_at, feature, attrs)
                    if own_feature is None and row[2] is not None:
                        orphan_tools.append((len(out.tools), row[2]))
                    out.tools.append(row)
    for index, parent in orphan_tools:
        if parent in inference_features:
            row = out.tools[index]
            out.tools[index] = row[:3] + (inference_features[parent],) + row[4:]
    return out


def _inference_row(
    event_id: str, created_at: datetime | None, feature: str | None, attrs: dict[str, object]
) -> tuple:
    cost = _cost(attrs)
    return (
        event_id,
        created_at,
        _text(_first(attrs, ("user.id", "enduser.id"))),
        _text(_first(attrs, ("gen_ai.conversation.id", "session.id"))),
        feature,
        _text(attrs.get("costwatch.trigger_type")) or "user",
        _text(_first(attrs, ("gen_ai.response.model", "gen_ai.request.model"))),
        _integer(_first(attrs, INPUT_TOKENS)),
        _output_tokens(attrs),
        cost,
        _text(attrs.get("user_agent.original")),
        _integer(_first(attrs, CACHED_TOKENS)),
        _integer(_first(attrs, CACHE_WRITE_TOKENS)),
        _integer(_first(attrs, REASONING_TOKENS)),
        _text(_first(attrs, ("gen_ai.provider.name", "gen_ai.system"))),
        "provider" if cost is not None else "unknown",
    )


def _output_tokens(attrs: dict[str, object]) -> int | None:
    tokens = _integer(_first(attrs, OUTPUT_TOKENS))
    if tokens is None and attrs.get("gen_ai.operation.name") == "embeddings":
        return 0  # an embedding has no output
    return tokens


def _tool_row(
    span: object,
    call_id: str,
    trace: str,
    created_at: datetime | None,
    feature: str | None,
    attrs: dict[str, object],
) -> tuple:
    parent = span.parent_span_id.hex() if any(span.parent_span_id) else None
    failed = span.status.code == Status.STATUS_CODE_ERROR or bool(attrs.get("error.type"))
    latency = None
    if span.end_time_unix_nano and span.start_time_unix_nano:
        latency = _integer(round((span.end_time_unix_nano - span.start_time_unix_nano) / 1e6))
    retries = _integer(attrs.get("costwatch.retries"))
    return (
        call_id,
        created_at,
        f"{trace}-{parent}" if parent else None,
        feature,
        _text(attrs.get("gen_ai.tool.name")),
        not failed,
        retries if retries is not None else 0,
        latency,
    )

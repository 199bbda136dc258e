"""Raw-table rows as real OpenTelemetry GenAI spans, sent by the OpenTelemetry SDK's OTLP/HTTP
exporter: `make demo SOURCE=otlp` sends the seeded scenario through the receiver this way, and
`make bench` measures the receiver with it. Spans carry explicit start and end times (the
events' own), so the receiver's rows equal the scenario's."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


def _ns(stamp: datetime) -> int:
    return int(stamp.timestamp() * 1_000_000_000)


class SpanFactory:
    """Makes finished SDK spans (in memory) to hand to an exporter in batches."""

    def __init__(self, service: str = "costwatch-demo") -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer("costwatch.ingest.sender")

    def inference(
        self,
        start: datetime,
        *,
        model: str,
        input_tokens: int,
        output_tokens: int,
        feature: str | None = None,
        trigger_type: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        user_agent: str | None = None,
        cost_usd: float | None = None,
        provider: str | None = None,
        cached_input_tokens: int | None = None,
        duration: timedelta = timedelta(milliseconds=800),
        extra: dict | None = None,
    ) -> trace.Span:
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
        }
        optional = {
            "costwatch.feature": feature,
            "costwatch.trigger_type": trigger_type,
            "user.id": user_id,
            "gen_ai.conversation.id": session_id,
            "user_agent.original": user_agent,
            "gen_ai.usage.cost.amount": cost_usd,
            "gen_ai.provider.name": provider,
            "gen_ai.usage.cache_read.input_tokens": cached_input_tokens,
        }
        attributes.update({k: v for k, v in optional.items() if v is not None})
        attributes.update(extra or {})
        span = self.tracer.start_span(
            f"chat {model}", kind=SpanKind.CLIENT, start_time=_ns(start), attributes=attributes
        )
        span.end(end_time=_ns(start + duration))
        return span

    def tool(
        self,
        parent: trace.Span,
        start: datetime,
        *,
        tool_name: str,
        success: bool,
        retries: int = 0,
        latency_ms: int = 120,
        feature: str | None = None,
    ) -> trace.Span:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool_name,
            "costwatch.retries": retries,
        }
        if feature is not None:
            attributes["costwatch.feature"] = feature
        if not success:
            attributes["error.type"] = "tool_error"
        span = self.tracer.start_span(
            f"execute_tool {tool_name}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.INTERNAL,
            start_time=_ns(start),
            attributes=attributes,
        )
        if not success:
            span.set_status(Status(StatusCode.ERROR, "tool failed"))
        span.end(end_time=_ns(start + timedelta(milliseconds=latency_ms)))
        return span

    def take(self) -> list[ReadableSpan]:
        """The spans finished since the last call."""
        spans = list(self.memory.get_finished_spans())
        self.memory.clear()
        return spans


def batches(spans: Sequence[ReadableSpan], size: int = 512) -> Iterator[Sequence[ReadableSpan]]:
    for start in range(0, len(spans), size):
        yield spans[start : start + size]


def export_all(
    exporter: OTLPSpanExporter, spans: Iterable[Sequence[ReadableSpan]]
) -> tuple[int, int]:
    """(spans exported, spans failed), batch by batch, as a BatchSpanProcessor would."""
    sent = failed = 0
    for batch in spans:
        if exporter.export(batch) == SpanExportResult.SUCCESS:
            sent += len(batch)
        else:
            failed += len(batch)
    return sent, failed

"""OTLP/JSON (the OTLP/HTTP JSON encoding and the Collector's file exporter) to and from the
opentelemetry-proto classes, through protobuf's json_format. OTLP/JSON differs from protobuf's
canonical JSON in one way json_format cannot know: trace and span ids are hex strings, not
base64 (the OTLP specification); they are converted here, before and after json_format."""

from __future__ import annotations

import base64
import binascii
import json

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_ID_LENGTHS = {16, 32}


def _hex_to_base64(value: object) -> object:
    if isinstance(value, str) and len(value) in _ID_LENGTHS:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            return value  # not hex: base64 already (protobuf's canonical JSON)
    return value


def _convert_ids(node: object, convert) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS:
                node[key] = convert(value)
            else:
                _convert_ids(value, convert)
    elif isinstance(node, list):
        for item in node:
            _convert_ids(item, convert)


def parse_request(text: str | bytes) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest from OTLP/JSON (raises ValueError when it is not one)."""
    try:
        document = json.loads(text)
    except ValueError as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    _convert_ids(document, _hex_to_base64)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as err:
        raise ValueError(str(err)) from None
    return request


def _base64_to_hex(value: object) -> object:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True).hex()
        except (binascii.Error, ValueError):
            return value
    return value


def to_json(request: ExportTraceServiceRequest) -> str:
    """OTLP/JSON of a request (hex ids), one line: what the Collector's file exporter writes."""
    document = json_format.MessageToDict(request)
    _convert_ids(document, _base64_to_hex)
    return json.dumps(document, separators=(",", ":"))

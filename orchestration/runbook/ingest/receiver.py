"""`costwatch otlp serve`: an OTLP/HTTP trace receiver writing GenAI spans to the raw tables.

Requests are decoded with the opentelemetry-proto classes (protobuf, or OTLP JSON through
protobuf's json_format), mapped (mapping.py) and handed to one writer thread, which stores the
rows of every waiting request in one transaction (COPY, store.py) and only then lets each
request answer 200: an answered span is stored. When the database cannot take them the
requests answer 503 with Retry-After (429 when the writer is too far behind), so exporters keep
the spans and send them again; a re-sent span is skipped by id. SIGTERM stops accepting, lets
the requests in flight finish, and flushes the writer.
"""

from __future__ import annotations

import gzip
import hmac
import ipaddress
import queue
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from orchestration.runbook.ingest.mapping import Mapped, map_request
from orchestration.runbook.ingest.otlp_json import parse_request
from orchestration.runbook.ingest.store import Store

DEFAULT_PORT = 4318
MAX_BODY_BYTES = 16 * 1024 * 1024  # compressed and decompressed
RETRY_AFTER_SECONDS = 2
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class ReceiverError(RuntimeError):
    """The receiver cannot start as configured (one line for the CLI)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Pending:
    mapped: Mapped
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


class Writer(threading.Thread):
    """The one thread that writes: group commit of every request waiting, up to `max_rows`."""

    def __init__(self, store: Store, max_queue: int = 64, max_rows: int = 50_000) -> None:
        super().__init__(name="otlp-writer", daemon=True)
        self.store = store
        self.queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_queue)
        self.max_rows = max_rows
        self.failed_until = 0.0
        self.stored_spans = 0

    def submit(self, mapped: Mapped, timeout: float = 60.0) -> str | None:
        """Store the rows; None when stored, else 'busy' or 'unavailable: ...'."""
        if time.monotonic() < self.failed_until:
            return "unavailable: the database did not answer a moment ago"
        pending = _Pending(mapped)
        try:
            self.queue.put_nowait(pending)
        except queue.Full:
            return "busy"
        if not pending.done.wait(timeout):
            return "unavailable: the database is too slow"
        return pending.error

    def stop(self) -> None:
        self.queue.put(None)
        self.join()

    def run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                break
            batch = [first]
            rows = len(first.mapped.inference) + len(first.mapped.tools)
            stop = False
            while rows < self.max_rows:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                rows += len(item.mapped.inference) + len(item.mapped.tools)
            self._write(batch)
            if stop:
                break
        self.store.close()

    def _write(self, batch: list[_Pending]) -> None:
        inference = [row for item in batch for row in item.mapped.inference]
        tools = [row for item in batch for row in item.mapped.tools]
        error = None
        try:
            self.store.write(inference, tools)
            self.stored_spans += len(inference) + len(tools)
        except psycopg.Error as err:
            error = f"unavailable: {str(err).strip().splitlines()[0] if str(err) else err}"
            self.failed_until = time.monotonic() + 1.0
        for item in batch:
            item.error = error
            item.done.set()


def decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    if content_type == JSON:
        return parse_request(body)
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise OverflowError("decompressed body over the size limit")
    if not inflater.eof:
        raise gzip.BadGzipFile("truncated gzip body")
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection is closed after this many seconds
    server: Receiver

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _reply(
        self,
        code: int,
        message: object | None,
        content_type: str,
        headers: dict | None = None,
        close: bool = False,
    ) -> None:
        if message is None:
            body = b""
        elif content_type == JSON:
            body = json_format.MessageToJson(message, indent=None).encode()
        else:
            body = message.SerializeToString()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, text: str, content_type: str, **kw: object) -> None:
        self._reply(code, status_pb2.Status(code=code, message=text), content_type, **kw)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        with self.server.in_flight:
            self._post()

    def _post(self) -> None:
        content_type = (self.headers.get("Content-Type") or PROTOBUF).split(";")[0].strip()
        reply_type = JSON if content_type == JSON else PROTOBUF
        if self.path.split("?")[0] != "/v1/traces":
            self._error(404, "only /v1/traces is served", reply_type, close=True)
            return
        token = self.server.token
        if token is not None:
            given = self.headers.get("Authorization") or ""
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                # The body is not read: the connection is closed instead.
                self._error(401, "missing or wrong bearer token", reply_type, close=True)
                return
        if content_type not in (PROTOBUF, JSON):
            self._error(415, f"unsupported content type {content_type}", reply_type, close=True)
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._error(411, "a Content-Length is required", reply_type, close=True)
            return
        if length > self.server.max_body_bytes:
            self._error(413, "request body over the size limit", reply_type, close=True)
            return
        body = self.rfile.read(length)
        try:
            encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
            if encoding == "gzip":
                body = _gunzip(body, self.server.max_body_bytes)
            elif encoding not in ("", "identity"):
                self._error(415, f"unsupported content encoding {encoding}", reply_type)
                return
            request = decode(body, content_type)
        except OverflowError as err:
            self._error(413, str(err), reply_type)
            return
        except (DecodeError, ValueError, OSError, EOFError) as e:
            self._error(400, f"undecodable body: {str(e)[:200]}", reply_type)
            return
        mapped = map_request(request, self.server.feature_key)
        error = None
        if mapped.inference or mapped.tools:
            error = self.server.writer.submit(mapped)
        if error == "busy":
            self._error(429, "the writer is behind; retry", reply_type, headers=self._retry())
            return
        if error is not None:
            self._error(503, error, reply_type, headers=self._retry())
            return
        response = ExportTraceServiceResponse()
        if mapped.rejected:
            response.partial_success.rejected_spans = mapped.rejected
            response.partial_success.error_message = mapped.error_message()
        self._reply(200, response, reply_type)

    @staticmethod
    def _retry() -> dict:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}


class _InFlight:
    """Counts the requests being handled, so a shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = threading.Condition()

    def __enter__(self) -> None:
        with self.idle:
            self.count += 1

    def __exit__(self, *exc: object) -> None:
        with self.idle:
            self.count -= 1
            self.idle.notify_all()

    def wait(self, timeout: float) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.count == 0, timeout)


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        url: str,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        feature_key: str | None = None,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ReceiverError(
                f"refusing to listen on {host} without COSTWATCH_OTLP_TOKEN"
                " (set it, and have exporters send it as a Bearer token)"
            )
        self.token = token or None
        self.max_body_bytes = max_body_bytes
        self.feature_key = feature_key
        self.in_flight = _InFlight()
        self.writer = Writer(Store(url))
        super().__init__((host, port), Handler)
        self.writer.start()

    def close(self, timeout: float = 60.0) -> None:
        """After `shutdown()`: let the requests in flight finish, flush the writer, close."""
        self.server_close()
        self.in_flight.wait(timeout)
        self.writer.stop()

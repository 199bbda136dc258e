"""`make demo SOURCE=otlp`: the seeded scenario sent as real OpenTelemetry GenAI spans (the SDK
and its OTLP/HTTP exporter, explicit start and end times) to a `costwatch otlp serve` process,
which writes the raw tables; the pipeline then runs as usual. OpenAI-served calls carry their
provider cost, the others none, so both paths show: `cost_source` provider and priced (at the
dated prices, the same list prices the scenario uses). Change events and feature flags are not
spans: they are written as `costwatch seed` writes them.

    python -m orchestration.runbook.ingest.demo --scenario autosave_loop --days 14 --replace
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from rich.console import Console

from orchestration.core.database import connect
from orchestration.core.embedded import database_url
from orchestration.runbook.ingest.sender import SpanFactory, export_all
from orchestration.runbook.seed import DEFAULT_EVENTS_PER_HOUR, generate, rows
from orchestration.runbook.seed.timeline import default_end

COSTWATCH = str(Path(sys.executable).with_name("costwatch"))
CHUNK = 2048


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the receiver exited: {process.stderr.read().strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the receiver did not start listening")


def _provider(model: str) -> str:
    return "anthropic" if model.startswith("claude") else "openai"


def send_scenario(data, endpoint: str, processes: int | None = None) -> tuple[int, int]:
    """Every event and tool call of a SeedData as spans, from a few processes (the SDK's Python
    encoder is the client's limit); (spans sent, spans failed)."""
    calls: dict[str, list[str]] = defaultdict(list)
    for row in data.tool_rows():
        calls[row.split("\t", 3)[2]].append(row)
    events = list(data.inference_rows())
    processes = processes or max(1, min(4, os.cpu_count() or 1))
    size = -(-len(events) // processes)
    parts = []
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        tools = [t for row in chunk for t in calls.get(row.split("\t", 1)[0], ())]
        parts.append((chunk, tools, endpoint))
    with ProcessPoolExecutor(len(parts) or 1) as pool:
        results = list(pool.map(_send_part, parts))
    return sum(r[0] for r in results), sum(r[1] for r in results)


def _send_part(part: tuple[list[str], list[str], str]) -> tuple[int, int]:
    events, tool_rows, endpoint = part
    calls: dict[str, list[list[str]]] = defaultdict(list)
    for row in tool_rows:
        fields = row.split("\t")
        calls[fields[2]].append(fields)
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=30)
    factory = SpanFactory(service="costwatch-demo")
    sent = failed = 0
    pending = 0
    for row in events:
        event_id, at, user, session, feature, trigger, model, tin, tout, cost, agent = row.split(
            "\t"
        )
        start = datetime.fromisoformat(at)
        provider = _provider(model)
        span = factory.inference(
            start,
            model=model,
            input_tokens=int(tin),
            output_tokens=int(tout),
            feature=feature,
            trigger_type=trigger,
            user_id=user,
            session_id=session,
            user_agent=agent,
            cost_usd=float(cost) if provider == "openai" else None,
            provider=provider,
        )
        pending += 1
        for _, t, _, tool_feature, tool, success, retries, latency in calls.pop(event_id, ()):
            factory.tool(
                span,
                datetime.fromisoformat(t),
                tool_name=tool,
                success=success == "t",
                retries=int(retries),
                latency_ms=int(latency),
                feature=tool_feature,
            )
            pending += 1
        if pending >= CHUNK:
            s, f = export_all(exporter, [factory.take()])
            sent, failed, pending = sent + s, failed + f, 0
    s, f = export_all(exporter, [factory.take()])
    exporter.shutdown()
    return sent + s, failed + f


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.runbook.ingest.demo")
    parser.add_argument("--scenario", default="autosave_loop")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--events-per-hour", type=int, default=DEFAULT_EVENTS_PER_HOUR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replace", action="store_true")
    args = parser.parse_args(argv)

    url = database_url()
    end = default_end()
    start = end - timedelta(days=args.days)
    data = generate(
        args.scenario, start=start, end=end, events_per_hour=args.events_per_hour, seed=args.seed
    )
    with connect(url) as conn, conn.cursor() as cur:
        if args.replace:
            cur.execute("truncate raw.inference_events, raw.tool_calls, raw.change_events")
        rows.copy_rows(cur, "raw.change_events", data.change_rows())
        rows.upsert_flags(cur, end, reset=args.replace)

    port = _free_port()
    env = {**os.environ, "COSTWATCH_DATABASE_URL": url}
    receiver = subprocess.Popen(
        [COSTWATCH, "otlp", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_listening(port, receiver)
        began = time.monotonic()
        sent, failed = send_scenario(data, f"http://127.0.0.1:{port}/v1/traces")
        seconds = time.monotonic() - began
    finally:
        receiver.send_signal(signal.SIGTERM)
        out, err = receiver.communicate(timeout=120)

    console = Console(highlight=False, soft_wrap=True)
    console.print(out.strip())
    console.print(
        f"sent {sent:,} spans of {args.scenario} ({len(data.events):,} inference calls,"
        f" {data.n_tool_calls:,} tool calls) over OTLP/HTTP in {seconds:.1f} s"
        f" ({sent / max(seconds, 1e-9):,.0f} spans/s); {failed:,} failed"
    )
    if receiver.returncode != 0 or failed:
        Console(stderr=True).print(err.strip())
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench`, the receiver's part: spans/s that `costwatch otlp serve` stores, sustained, from
the OpenTelemetry SDK's OTLP/HTTP exporter, and the receiver's memory over the run.

The spans are made by the real SDK and encoded by the exporter's own encoder beforehand (that
Python encoder costs ~250 us a span on the client: it is the client's limit, not the
receiver's, and is reported apart). The timed part is the exporter's HTTP client sending the
batches (512 spans, gzip) from several threads to a receiver in its own process, until every
batch is answered, i.e. stored: rows in raw tables, counted after.

    python -m bench.otlp [--spans 200000] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from orchestration.core.database import connect, url_for_database
from orchestration.core.embedded import EmbeddedPostgres, configured_url
from orchestration.core.schema import init_database
from orchestration.runbook.ingest.demo import _free_port, _wait_listening

RESULTS = Path(__file__).resolve().parent / "results"
COSTWATCH = str(Path(sys.executable).with_name("costwatch"))
BATCH = 512
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4")


def _encode_batches(first: int, count: int) -> list[bytes]:
    """`count` batches of BATCH spans (inference spans, one tool span in eight), encoded."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from orchestration.runbook.ingest.sender import SpanFactory

    factory = SpanFactory(service="bench")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for batch in range(first, first + count):
        for i in range(BATCH if batch % 8 else BATCH - BATCH // 8):
            n = batch * BATCH + i
            at = start + timedelta(milliseconds=50 * n)
            span = factory.inference(
                at,
                model=MODELS[n % 3],
                input_tokens=100 + n % 900,
                output_tokens=10 + n % 300,
                feature=f"feature-{n % 7}",
                trigger_type="user",
                user_id=f"u{n % 5000}",
                session_id=f"s{n % 20000}",
                user_agent="Mozilla/5.0",
                cost_usd=0.0001 * (1 + n % 40) if n % 2 else None,
                provider="anthropic" if n % 3 == 2 else "openai",
            )
            if batch % 8 == 0 and i % 7 == 0:
                factory.tool(span, at, tool_name="search", success=n % 5 != 0)
        out.append(encode_spans(factory.take()[:BATCH]).SerializeToString())
    return out


def _bench_url() -> str:
    base = configured_url() or EmbeddedPostgres().start()
    url = url_for_database(base, "costwatch_bench_otlp")
    with connect(url_for_database(base, "postgres"), autocommit=True) as conn:
        conn.execute('drop database if exists "costwatch_bench_otlp" with (force)')
        conn.execute('create database "costwatch_bench_otlp"')
    init_database(url)
    return url


def run(spans: int = 200_000, threads: int = 4) -> dict:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    batches = max(1, spans // BATCH)
    began = time.monotonic()
    workers = max(1, os.cpu_count() or 1)
    share = -(-batches // workers)
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(_encode_batches, range(0, batches, share), [share] * workers)
        bodies = [body for part in parts for body in part][:batches]
    encode_seconds = time.monotonic() - began

    url = _bench_url()
    port = _free_port()
    env = {**os.environ, "COSTWATCH_DATABASE_URL": url}
    receiver = subprocess.Popen(
        [COSTWATCH, "otlp", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    memory: list[float] = []
    done = threading.Event()
    try:
        _wait_listening(port, receiver)
        process = psutil.Process(receiver.pid)

        def sample() -> None:
            while not done.is_set():
                memory.append(process.memory_info().rss / 2**20)
                done.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        exporters = [
            OTLPSpanExporter(
                endpoint=f"http://127.0.0.1:{port}/v1/traces",
                compression=Compression.Gzip,
                timeout=60,
            )
            for _ in range(threads)
        ]

        def send(index: int) -> int:
            client = exporters[index % threads]._client  # the exporter's own HTTP client
            ok = 0
            for body in bodies[index::threads]:
                ok += bool(client.export(body).success)
            return ok

        cpu_before = _cpu_seconds(process)
        started = time.monotonic()
        with ThreadPoolExecutor(threads) as pool:
            answered = sum(pool.map(send, range(threads)))
        seconds = time.monotonic() - started
        receiver_cpu = _cpu_seconds(process) - cpu_before
        done.set()
        sampler.join()
    finally:
        done.set()
        receiver.send_signal(signal.SIGTERM)
        receiver.communicate(timeout=120)
    with connect(url) as conn:
        stored = conn.execute(
            "select (select count(*) from raw.inference_events)"
            " + (select count(*) from raw.tool_calls)"
        ).fetchone()[0]
    sent = batches * BATCH
    third = max(1, len(memory) // 3)
    return {
        "spans": sent,
        "batches_answered_ok": answered,
        "batches": batches,
        "spans_stored": stored,
        "threads": threads,
        "seconds": round(seconds, 2),
        "spans_per_second": round(stored / seconds),
        "client_encode_seconds": round(encode_seconds, 1),
        "client_encode_us_per_span": round(encode_seconds / sent * 1e6 * workers, 1),
        "receiver_rss_mb": {
            "first_third_max": round(max(memory[:third], default=0), 1),
            "last_third_max": round(max(memory[-third:], default=0), 1),
            "peak": round(max(memory, default=0), 1),
        },
        # Above 1.0 only with several receiver processes: one Python process is bound by its GIL.
        "receiver_cpu_per_wall_second": round(receiver_cpu / seconds, 2),
        "receiver_exit_code": receiver.returncode,
    }


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time of the receiver and of its worker processes, if any."""
    total = 0.0
    for proc in (process, *process.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp")
    parser.add_argument("--spans", type=int, default=int(os.environ.get("BENCH_SPANS", 200_000)))
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    result = run(args.spans, args.threads)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"otlp-{stamp}.json").write_text(json.dumps(result, indent=2))
    rss = result["receiver_rss_mb"]
    sys.stdout.write(
        f"OTLP receiver: {result['spans_stored']:,} of {result['spans']:,} spans stored in"
        f" {result['seconds']} s = {result['spans_per_second']:,} spans/s"
        f" ({result['threads']} exporter threads, {BATCH}-span gzip batches);"
        f" receiver memory {rss['first_third_max']} MB early, {rss['last_third_max']} MB late,"
        f" peak {rss['peak']} MB; receiver CPU {result['receiver_cpu_per_wall_second']} s/s;"
        f" client-side SDK encoding"
        f" {result['client_encode_us_per_span']} us/span (not timed)\n"
    )
    ok = result["spans_stored"] == result["spans"] and result["receiver_exit_code"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

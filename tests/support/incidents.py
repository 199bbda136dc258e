"""Helpers for the incident, channel, cost-cap and sensor tests (no tests in here).

`Marts` writes the detection marts of CONTRACT section 5 by hand (what dbt would build), hour
by hour, so a test can drive the incident lifecycle by appending hours of data. `HookServer` is
a real HTTP server on 127.0.0.1 that records what it receives and answers as told.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

T0 = datetime(2026, 11, 20, 0, tzinfo=UTC)
BASELINE = 10.0

_DDL = """
create schema if not exists marts;
create table if not exists marts.cost_baseline_hourly (
    hour timestamptz primary key, total_cost_usd numeric, baseline_cost_usd numeric,
    pct_above_baseline double precision, is_spike_hour boolean, is_complete boolean
);
create table if not exists marts.cost_spikes (
    spike_id text, spike_start timestamptz, spike_end timestamptz, hours integer,
    peak_hour timestamptz, total_cost_usd numeric, baseline_cost_usd numeric,
    excess_cost_usd numeric, pct_above_baseline double precision, is_ongoing boolean
);
create table if not exists marts.spike_diagnosis (
    spike_id text, rank integer, cause text, feature text, tool_name text, trigger_type text,
    model text, contribution_usd numeric, evidence jsonb, recommended_fix text
);
"""

AUTOSAVE = {
    "cause": "hidden_recompute",
    "trigger_type": "auto_save",
    "evidence": {
        "hidden_ratio": {"before": 0.12, "after": 0.61},
        "change_events": [
            {
                "kind": "ux",
                "changed_at": "2026-11-20T01:10:00+00:00",
                "description": "editor auto-save interval lowered 30s -> 5s",
            }
        ],
    },
    "recommended_fix": "Rate limit, add confirmation",
}


class Marts:
    """The detection marts of one test database, rebuilt from a list of hourly costs."""

    def __init__(self, url: str, start: datetime = T0):
        self.url = url
        self.start = start
        self.costs: list[float] = []
        self.causes: list[dict[str, Any]] = [AUTOSAVE]
        with psycopg.connect(url) as conn:
            conn.execute(_DDL)

    def hour(self, index: int) -> datetime:
        return self.start + timedelta(hours=index)

    @property
    def last_hour(self) -> datetime:
        return self.hour(len(self.costs) - 1)

    def append(self, *costs: float) -> Marts:
        """Append complete hours with these total costs (baseline $10/h) and rebuild the marts."""
        self.costs.extend(costs)
        self.rebuild()
        return self

    def rebuild(self) -> None:
        spike = [c > BASELINE * 1.2 and c - BASELINE > 1.0 for c in self.costs]
        runs: list[tuple[int, int]] = []
        i = 0
        while i < len(spike):
            if spike[i]:
                j = i
                while j + 1 < len(spike) and spike[j + 1]:
                    j += 1
                if j - i + 1 >= 3:
                    runs.append((i, j))
                i = j + 1
            else:
                i += 1
        last = len(self.costs) - 1
        with psycopg.connect(self.url) as conn:
            conn.execute(
                "truncate marts.cost_baseline_hourly, marts.cost_spikes, marts.spike_diagnosis"
            )
            for index, cost in enumerate(self.costs):
                conn.execute(
                    "insert into marts.cost_baseline_hourly values (%s, %s, %s, %s, %s, true)",
                    (self.hour(index), cost, BASELINE, (cost - BASELINE) / BASELINE, spike[index]),
                )
            for first, end in runs:
                hours = self.costs[first : end + 1]
                total = sum(hours)
                base = BASELINE * len(hours)
                spike_id = f"spike-{self.hour(first):%Y-%m-%dT%H}"  # detection_spike_id's format
                peak = first + hours.index(max(hours))
                conn.execute(
                    "insert into marts.cost_spikes values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (
                        spike_id, self.hour(first), self.hour(end), len(hours), self.hour(peak),
                        total, base, total - base, (total - base) / base, end == last,
                    ),
                )  # fmt: skip
                for rank, cause in enumerate(self.causes, start=1):
                    conn.execute(
                        "insert into marts.spike_diagnosis values (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                        (
                            spike_id, rank, cause["cause"], cause.get("feature"),
                            cause.get("tool_name"), cause.get("trigger_type"), cause.get("model"),
                            (total - base) * (0.8 if rank == 1 else 0.2),
                            Jsonb(cause.get("evidence", {})), cause.get("recommended_fix"),
                        ),
                    )  # fmt: skip


# --------------------------------------------------------------------------- HTTP


class HookServer:
    """A real HTTP server on 127.0.0.1: records each request; answers from a script."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[int | str] = []  # status codes, or "hang"; the last one repeats
        self.default: int = 200
        self.hang_seconds = 2.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append(
                    {
                        "path": self.path,
                        "body": json.loads(body or b"null"),
                        "headers": dict(self.headers),
                    }
                )
                answer = server.script.pop(0) if server.script else server.default
                if answer == "hang":
                    time.sleep(server.hang_seconds)
                    answer = 200
                self.send_response(int(answer))
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if int(answer) < 300 else b"upstream trouble")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def bodies(self, path: str | None = None) -> list[Any]:
        return [r["body"] for r in self.requests if path is None or r["path"] == path]


@contextmanager
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


SLACK_PATH = "/services/T000/B000/slacksecrettoken"
HOOK_PATH = "/hooks/generic-secret-abc123"
ROUTING_KEY = "R0UT1NGKEYsecret0123456789abcdef"


def channel_env(server: HookServer, **extra: str) -> dict[str, str]:
    """Environment turning on all three channels, pointed at `server`."""
    return {
        "COSTWATCH_ALERT_WEBHOOK_URL": server.base + HOOK_PATH,
        "COSTWATCH_SLACK_WEBHOOK_URL": server.base + SLACK_PATH,
        "COSTWATCH_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "COSTWATCH_PAGERDUTY_URL": server.base + "/v2/enqueue",
        "COSTWATCH_ALERT_TIMEOUT_SECONDS": "0.5",
        **extra,
    }


def rows(url: str, sql: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()

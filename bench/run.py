"""`make bench`: the full pass against the hand-written floor, then one more hour.

Loads N synthetic events (14 days of an incident scenario) into a fresh database on the same
PostgreSQL costwatch uses, then measures, in one run:
  1. the full `costwatch run` (seconds, events/s, peak memory of the process tree);
  2. the floor: the runbook's step queries by hand as plain SQL (bench/floor.sql), and run/floor;
  3. one more hour appended and the incremental `costwatch run`, and its ratio to the full run;
  4. where the time goes: start-up, dbt parse, each model, dbt tests, GX checks, sensors.
The figures are printed and written as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from orchestration.core.database import connect, url_for_database
from orchestration.core.dbt_log import STARTUP_FILE
from orchestration.core.embedded import EmbeddedPostgres, configured_url
from orchestration.core.schema import init_database
from orchestration.runbook.seed import default_end, seed

ROOT = Path(__file__).resolve().parent.parent
FLOOR_SQL = Path(__file__).with_name("floor.sql")
COSTWATCH = str(Path(sys.executable).with_name("costwatch"))
DAYS = 14
# The goals, by data size: (figure, at most).
GOALS = {
    1_000_000: {"run_over_floor": 3.0, "incremental_over_full": 0.25},
    10_000_000: {"run_over_floor": 1.5, "incremental_seconds": 30.0, "peak_memory_mb": 1536.0},
}


def goal_verdicts(results: dict) -> dict[str, str]:
    """The goals of the size nearest to this run, each met or not."""
    size = min(GOALS, key=lambda n: abs(math.log(n) - math.log(max(results["events"], 1))))
    figures = {
        "run_over_floor": results["run_over_floor"],
        "incremental_over_full": results["incremental_over_full"],
        "incremental_seconds": results["incremental"]["seconds"],
        "peak_memory_mb": max(
            results["full_run"]["peak_memory_mb"], results["incremental"]["peak_memory_mb"]
        ),
    }
    return {
        f"{name} <= {limit} (goal at {size:,} events)": (
            f"{figures[name]} {'met' if figures[name] <= limit else 'NOT met'}"
        )
        for name, limit in GOALS[size].items()
    }


class PeakMemory:
    """Samples the resident memory of a process and all its children, keeping the peak."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                total = 0
                for proc in tree:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak_bytes = max(self.peak_bytes, total)
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def timed_run(url: str, dagster_home: Path, label: str) -> dict:
    """One `costwatch run` as a user starts it; wall time, peak memory, its own timings."""
    report = dagster_home / f"{label}.json"
    env = {
        **os.environ,
        "COSTWATCH_DATABASE_URL": url,
        "DAGSTER_HOME": str(dagster_home),
        "COSTWATCH_LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    proc = subprocess.Popen(
        [COSTWATCH, "run", "--json", str(report)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    with PeakMemory(proc.pid) as memory:
        output, _ = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: costwatch run ({label}) failed:\n{output[-2000:]}")
    figures = json.loads(report.read_text())
    figures["wall_seconds"] = round(seconds, 3)
    figures["peak_memory_mb"] = round(memory.peak_bytes / 2**20, 1)
    # What the pass does not see: interpreter start-up and the CLI's imports.
    figures["timings"]["process_startup"] = round(seconds - figures["seconds"], 3)
    return figures


def run_floor(url: str) -> dict[str, float]:
    statements = [s.strip() for s in FLOOR_SQL.read_text().split("\n;;\n") if s.strip()]
    timings: dict[str, float] = {}
    with connect(url, autocommit=True) as conn:
        conn.execute("set timezone = 'UTC'")
        for statement in statements:
            started = time.perf_counter()
            conn.execute(statement)
            first = next(
                line for line in statement.splitlines() if line and not line.startswith("--")
            )
            timings[first.rstrip(" ;")[:60]] = round(time.perf_counter() - started, 3)
    return timings


def dbt_startup(run_id: str | None) -> dict[str, float]:
    """dbt's own start-up in the pass's invocation, from the timestamps of its first events
    (orchestration/defs/dbt.py: record_startup): dbt's start until its first event (its
    imports, in the pass's process on PostgreSQL, in its own on Spark), loading the
    partial-parse state and building the graph, then the run's start (schemas, relation
    cache, on-run-start) until the first node."""
    folders = sorted(
        (ROOT / "dbt_project" / "target").glob(f"costwatch_dbt_assets-{(run_id or '?')[:7]}-*")
    )
    if not folders:
        return {}
    folder = folders[-1]
    try:
        launched = float((folder / "costwatch-launched").read_text())
        stamps = json.loads((folder / STARTUP_FILE).read_text())
        first, found, node = stamps["first"], stamps["found"], stamps["node"]
    except (FileNotFoundError, ValueError, KeyError):
        return {}
    return {
        "  dbt start (imports)": round(first - launched, 3),
        "  dbt parse (partial) and graph": round(found - first, 3),
        "  dbt run start (schemas, cache, hooks)": round(node - found, 3),
    }


def breakdown(figures: dict) -> dict[str, float]:
    """Where a pass's time went, in the issue's terms."""
    timings = figures["timings"]
    steps = figures["steps"]
    dbt_step = steps.get("costwatch_dbt_assets", 0.0)
    models = sum(figures["models"].values())
    dbt_tests = sum(v for k, v in figures["checks"].items() if "gx_suite" not in k)
    gx = sum(v for k, v in steps.items() if "expectations" in k)
    other_steps = sum(v for k, v in steps.items() if k != "costwatch_dbt_assets") - gx
    return {
        "process start-up (python, CLI imports)": timings.get("process_startup", 0.0),
        "dagster and dagster-dbt import": timings.get("dagster_import", 0.0),
        "dagster definitions import": timings.get("definitions_import", 0.0),
        "dbt manifest (parse when stale)": timings.get("dbt_manifest", 0.0),
        "dbt build step (total)": dbt_step,
        **dbt_startup(figures.get("run_id")),
        # dbt runs several nodes at once (COSTWATCH_DBT_THREADS): node sums can exceed the step.
        "  dbt models (sum of node times)": round(models, 3),
        "  dbt tests (sum of node times)": round(dbt_tests, 3),
        "GX expectation suites": round(gx, 3),
        "other checks and assets": round(other_steps, 3),
        "dagster run overhead": round(
            max(timings.get("execute", 0.0) - sum(steps.values()), 0.0), 3
        ),
        "incident sensors": timings.get("sensors", 0.0),
    }


def fresh_database(name: str) -> tuple[str, str, str]:
    """A new, empty costwatch database `name` on the configured (or embedded) server: its
    server's admin URL, its URL, and the server's version."""
    base = configured_url() or EmbeddedPostgres().start()
    admin = url_for_database(base, "postgres")
    url = url_for_database(base, name)
    with connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
        server_version = conn.execute("show server_version").fetchone()[0]
    init_database(url)
    return admin, url, server_version


def events_per_hour(events: int) -> int:
    return max(1, math.ceil(events / (DAYS * 24)))


def bench_end() -> datetime:
    """Where a bench's 14 days end (the same for every run)."""
    return default_end(datetime(2026, 11, 25, 18, tzinfo=UTC))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scenario", default="autosave_loop")
    parser.add_argument("--database", default="costwatch_bench")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args(argv)
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

    admin, url, server_version = fresh_database(args.database)
    per_hour, end = events_per_hour(args.events), bench_end()
    with connect(url) as conn:
        started = time.perf_counter()
        loaded = seed(conn, args.scenario, days=DAYS, events_per_hour=per_hour, end=end)
        load_seconds = time.perf_counter() - started
    with connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze raw.inference_events, raw.tool_calls")

    with tempfile.TemporaryDirectory(prefix="costwatch-bench-") as tmp:
        home = Path(tmp)
        full = timed_run(url, home, "full")
        floor = run_floor(url)
        floor_seconds = round(sum(floor.values()), 3)
        with connect(url) as conn:
            hour = seed(
                conn, args.scenario, hours=1, events_per_hour=per_hour,
                end=end + timedelta(hours=1), seed=1,
            )  # fmt: skip
        incremental = timed_run(url, home, "incremental")

    events = loaded.inference_events
    results = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "postgresql": server_version,
        "events": events,
        "tool_calls": loaded.tool_calls,
        "load_seconds": round(load_seconds, 3),
        "full_run": {
            "seconds": full["wall_seconds"],
            "events_per_second": round(events / full["wall_seconds"]),
            "peak_memory_mb": full["peak_memory_mb"],
            "breakdown": breakdown(full),
            "models": full["models"],
        },
        "floor": {"seconds": floor_seconds, "statements": floor},
        "run_over_floor": round(full["wall_seconds"] / floor_seconds, 2),
        "incremental": {
            "events_appended": hour.inference_events,
            "seconds": incremental["wall_seconds"],
            "peak_memory_mb": incremental["peak_memory_mb"],
            "breakdown": breakdown(incremental),
            "models": incremental["models"],
        },
        "incremental_over_full": round(incremental["wall_seconds"] / full["wall_seconds"], 3),
    }
    results["goals"] = goal_verdicts(results)
    print_results(results)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{results['measured_at'][:19].replace(':', '')}-{events}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {out}")
    if not args.keep:
        with connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{args.database}" with (force)')


def print_results(r: dict) -> None:
    full, inc = r["full_run"], r["incremental"]
    print(f"costwatch bench: {r['events']:,} events, {r['tool_calls']:,} tool calls, "
          f"PostgreSQL {r['postgresql']} (loaded in {r['load_seconds']:.1f}s)")  # fmt: skip
    print("\n1. full costwatch run")
    print(f"   {full['seconds']:.1f} s, {full['events_per_second']:,} events/s, "
          f"peak memory {full['peak_memory_mb']:.0f} MB (process tree)")  # fmt: skip
    print("\n2. the floor: runbook queries by hand, materialized once each")
    print(f"   {r['floor']['seconds']:.1f} s; run / floor = {r['run_over_floor']:.2f}x")
    print("\n3. one more hour appended, incremental costwatch run")
    print(f"   {inc['events_appended']:,} events, {inc['seconds']:.1f} s, "
          f"{r['incremental_over_full']:.3f}x the full run, "
          f"peak memory {inc['peak_memory_mb']:.0f} MB")  # fmt: skip
    print("\n4. where the time goes (seconds)")
    print(f"   {'':44} {'full':>8} {'hour':>8}")
    for key, value in full["breakdown"].items():
        print(f"   {key:44} {value:8.2f} {inc['breakdown'].get(key, 0.0):8.2f}")
    print("   slowest models (full run):")
    for name, seconds in sorted(full["models"].items(), key=lambda kv: -kv[1])[:8]:
        hour = inc["models"].get(name, 0.0)
        print(f"     {name:42} {seconds:8.2f} {hour:8.2f}")
    print("\ngoals")
    for goal, verdict in r["goals"].items():
        print(f"   {goal:58} {verdict}")


if __name__ == "__main__":
    main()

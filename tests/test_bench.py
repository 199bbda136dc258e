"""`make bench` works: the benchmark once at a tiny size (its figures are not asserted: speed is
measured by `make bench`, not by the suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def test_bench_prints_all_four_parts_and_writes_json(server_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COSTWATCH_DATABASE_URL"}
    env["COSTWATCH_DATABASE_URL"] = server_url
    database = f"cw_bench_test_{os.getpid()}"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--events", "4000", "--database", database,
         "--results-dir", str(tmp_path)],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for part in (
        "1. full costwatch run",
        "2. the floor",
        "3. one more hour appended, incremental costwatch run",
        "4. where the time goes",
        "goals",
    ):
        assert part in out, out
    [written] = list(tmp_path.glob("*.json"))
    figures = json.loads(written.read_text())
    assert figures["events"] >= 3000
    assert figures["full_run"]["seconds"] > 0 and figures["floor"]["seconds"] > 0
    assert figures["full_run"]["peak_memory_mb"] > 0
    assert figures["incremental"]["events_appended"] > 0
    assert figures["run_over_floor"] == round(
        figures["full_run"]["seconds"] / figures["floor"]["seconds"], 2
    )
    breakdown = figures["full_run"]["breakdown"]
    assert breakdown["dbt build step (total)"] > 0
    assert "GX expectation suites" in breakdown and "incident sensors" in breakdown
    for part in ("dbt start (imports)", "parse (partial) and graph", "run start"):
        assert any(part in key and value > 0 for key, value in breakdown.items()), part
    assert len(figures["floor"]["statements"]) == 15  # dedupe x2 + 11 marts + schema x2

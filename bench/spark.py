"""`make bench ENGINE=spark`: the models that build on Spark, on local Spark beside PostgreSQL.

The same N synthetic events (14 days of an incident scenario, as `make bench`) are loaded into a
fresh PostgreSQL database and written as Parquet (COSTWATCH_SPARK_RAW). The same dbt selection
(every model Spark builds: the runbook marts and spike detection, SELECTION) is then built on
both engines: a full build, then one more hour appended and an incremental pass. On Spark both
run in one process, so one JVM serves them (as tests/support/spark_runner.py). Measured: wall
seconds of each dbt invocation, the Spark session's start (until the first model runs), and each
model's time. What a cluster would do is estimated in the README's "Engines", not measured here.
The figures are printed and written as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.run import DAYS, bench_end, events_per_hour, fresh_database
from orchestration.core.config import Config
from orchestration.core.database import connect
from orchestration.runbook.seed import seed

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "dbt_project"
DBT = str(Path(sys.executable).with_name("dbt"))
SELECTION = "+marts.runbook +cost_spikes"


def _timings(run_results: dict, wall: float, started: float) -> dict:
    """Wall seconds, start-up until the first node began, and each model's seconds."""
    models, first = {}, None
    for result in run_results["results"]:
        if not result["unique_id"].startswith(("model.", "seed.")):
            continue
        models[result["unique_id"].split(".")[-1]] = round(result["execution_time"], 3)
        for step in result.get("timing") or []:
            if step.get("started_at"):
                at = datetime.fromisoformat(step["started_at"].replace("Z", "+00:00")).timestamp()
                first = at if first is None else min(first, at)
    return {
        "seconds": round(wall, 3),
        "startup_seconds": round(first - started, 3) if first else None,
        "models_seconds": round(sum(models.values()), 3),
        "models": models,
    }


def child(spec_file: str) -> int:
    """In the Spark process: the full build on `raw`, then the pass on `raw_next`."""
    from dbt.cli.main import dbtRunner  # noqa: PLC0415 (the child's own import)

    spec = json.loads(Path(spec_file).read_text())
    runner = dbtRunner()
    common = ["--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT)]
    select = ["--select", SELECTION]
    target = Path(os.environ["DBT_TARGET_PATH"])
    report = {}
    started = time.time()
    built = runner.invoke(
        ["build", *common, *select, "--resource-type", "seed", "--resource-type", "model"]
    )
    if not built.success:
        return 1
    wall = time.time() - started
    report["full"] = _timings(json.loads((target / "run_results.json").read_text()), wall, started)
    shutil.rmtree(spec["raw"])
    shutil.copytree(spec["raw_next"], spec["raw"])
    started = time.time()
    passed = runner.invoke(["run", *common, *select])
    if not passed.success:
        return 1
    wall = time.time() - started
    run_results = json.loads((target / "run_results.json").read_text())
    report["incremental"] = _timings(run_results, wall, started)
    Path(spec["report"]).write_text(json.dumps(report))
    return 0


def _postgres_dbt(url: str, target: Path, *args: str) -> dict:
    config = Config.load(database_url=url)
    env = {**os.environ, "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(target)}
    env.pop("COSTWATCH_ENGINE", None)
    command = [DBT, *args, "--project-dir", str(PROJECT)]
    command += ["--profiles-dir", str(config.dbt_profiles_dir()), "--select", SELECTION]
    started = time.time()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.time() - started
    if result.returncode != 0:
        raise SystemExit(f"bench: dbt {args[0]} on PostgreSQL failed:\n{result.stdout[-3000:]}")
    return _timings(json.loads((target / "run_results.json").read_text()), wall, started)


def _spark(home: Path, raw_first: Path, raw_next: Path) -> dict:
    from orchestration.core.spark_files import mart_folder  # noqa: PLC0415 (Spark path only)

    raw = home / "raw"
    shutil.copytree(raw_first, raw)
    env = {
        **os.environ,
        "COSTWATCH_ENGINE": "spark",
        "COSTWATCH_HOME": str(home),
        "COSTWATCH_SPARK_RAW": str(raw),
        "DBT_TARGET_PATH": str(home / "target"),
        "DBT_LOG_PATH": str(home / "target"),
    }
    spec = {"raw": str(raw), "raw_next": str(raw_next), "report": str(home / "report.json")}
    (home / "spec.json").write_text(json.dumps(spec))
    result = subprocess.run(
        [sys.executable, "-m", "bench.spark", "--child", str(home / "spec.json")],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise SystemExit(f"bench: dbt on Spark failed:\n{result.stdout[-3000:]}")
    report = json.loads((home / "report.json").read_text())
    warehouse = mart_folder("x", environ=env).parent
    report["mart_files_mb"] = round(
        sum(f.stat().st_size for f in warehouse.rglob("*.parquet")) / 2**20, 1
    )
    report["raw_parquet_mb"] = round(
        sum(f.stat().st_size for f in raw.rglob("*.parquet")) / 2**20, 1
    )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.spark", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scenario", default="autosave_loop")
    parser.add_argument("--database", default="costwatch_bench_spark")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.exit(child(args.child))
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    from orchestration.core.spark_files import export_raw_parquet  # noqa: PLC0415

    admin, url, server_version = fresh_database(args.database)
    per_hour, end = events_per_hour(args.events), bench_end()
    with connect(url) as conn:
        loaded = seed(conn, args.scenario, days=DAYS, events_per_hour=per_hour, end=end)
    with connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze raw.inference_events, raw.tool_calls")
    with tempfile.TemporaryDirectory(prefix="costwatch-bench-spark-") as tmp:
        home = Path(tmp)
        started = time.perf_counter()
        with connect(url) as conn:
            export_raw_parquet(conn, home / "raw_first")
        export_seconds = time.perf_counter() - started
        postgres = {
            "full": _postgres_dbt(url, home / "pg", "build", "--exclude", "resource_type:test")
        }
        with connect(url) as conn:
            hour = seed(
                conn, args.scenario, hours=1, events_per_hour=per_hour,
                end=end + timedelta(hours=1), seed=1,
            )  # fmt: skip
        postgres["incremental"] = _postgres_dbt(url, home / "pg", "run")
        with connect(url) as conn:
            export_raw_parquet(conn, home / "raw_next")
        spark = _spark(home / "spark_home", home / "raw_first", home / "raw_next")
    with connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{args.database}" with (force)')
    results = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "selection": SELECTION,
        "events": loaded.inference_events,
        "tool_calls": loaded.tool_calls,
        "events_appended": hour.inference_events,
        "raw_to_parquet_seconds": round(export_seconds, 3),
        "postgresql": postgres,
        "spark": spark,
        "postgresql_version": server_version,
        "spark_master": "local[2]",
    }
    print_results(results)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["measured_at"][:19].replace(":", "")
    out = args.results_dir / f"{stamp}-{results['events']}-spark.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {out}")


def print_results(r: dict) -> None:
    pg, sp = r["postgresql"], r["spark"]
    print(f"costwatch bench, ENGINE=spark: {r['events']:,} events, {r['tool_calls']:,} tool calls;"
          f" dbt --select {r['selection']} on both engines")  # fmt: skip
    print(f"   raw tables to Parquet: {r['raw_to_parquet_seconds']:.1f} s "
          f"({sp['raw_parquet_mb']:.0f} MB); Spark marts on disk "
          f"{sp['mart_files_mb']:.1f} MB")  # fmt: skip
    print(f"\n   {'seconds':44} {'PostgreSQL':>11} {'Spark':>8}")
    for label, key in (("full build", "full"), ("one more hour, incremental", "incremental")):
        p, s = pg[key], sp[key]
        print(f"   {label + ' (wall)':44} {p['seconds']:11.1f} {s['seconds']:8.1f}")
        print(f"   {'  start until the first model':44} {p['startup_seconds'] or 0:11.1f}"
              f" {s['startup_seconds'] or 0:8.1f}")  # fmt: skip
        print(f"   {'  models (sum)':44} {p['models_seconds']:11.1f} {s['models_seconds']:8.1f}")
    print(f"   ({r['events_appended']:,} events appended)")
    print("\n   slowest models on Spark (full build; PostgreSQL beside)")
    for name, seconds in sorted(sp["full"]["models"].items(), key=lambda kv: -kv[1])[:10]:
        print(f"     {name:42} {pg['full']['models'].get(name, 0.0):8.2f} {seconds:8.2f}")


if __name__ == "__main__":
    main()

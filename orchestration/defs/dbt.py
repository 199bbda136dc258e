"""Every dbt model an asset, every dbt test an asset check (dagster-dbt)."""

import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    dbt_assets,
)

from orchestration.core.dbt_log import STARTUP_FILE
from orchestration.core.dbt_seeds import record_spark_seeds, unchanged_seeds, unchanged_spark_seeds
from orchestration.core.engine import SPARK_NOT_PORTED, spark_home
from orchestration.defs.project import dbt_project, partial_parse_for_profile
from orchestration.defs.resources import PassLockedDbtCliResource
from orchestration.instance import prune_old_runs
from orchestration.runbook.expectations.runner import warm_up


class CostwatchTranslator(DagsterDbtTranslator):
    """Keys are `<schema>/<name>`; groups are the runbook concern each model serves, set in
    dbt (`meta.dagster.group` per folder or model in dbt_project.yml), else the folder."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        meta = dbt_resource_props.get("meta") or {}
        if meta.get("dagster", {}).get("asset_key"):
            return dg.AssetKey(meta["dagster"]["asset_key"])
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        group = dbt_group(dbt_resource_props)
        if group:
            return group
        fqn = dbt_resource_props.get("fqn") or []
        # fqn = [project, folder, ..., name]: without a group in dbt, the first folder.
        return fqn[1] if len(fqn) > 2 else "dbt"


def dbt_group(dbt_resource_props: Mapping[str, Any]) -> str | None:
    """The Dagster group dbt's metadata gives a node (`meta.dagster.group`, as a property or
    set by dbt_project.yml's `+meta`), or dbt's own `group` config; None when neither."""
    config = dbt_resource_props.get("config") or {}
    for meta in (dbt_resource_props.get("meta") or {}, config.get("meta") or {}):
        group = (meta.get("dagster") or {}).get("group")
        if group:
            return str(group)
    return config.get("group") or None


translator = CostwatchTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_code_references=False)
)


class DbtBuildConfig(dg.Config):
    full_refresh: bool = False


@dbt_assets(
    manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=translator
)
def costwatch_dbt_assets(
    context: dg.AssetExecutionContext, dbt: PassLockedDbtCliResource, config: DbtBuildConfig
):
    """`dbt build`: models, then their tests, in dependency order."""
    yield from dbt_build(context, dbt, config)


# On Spark: the same build, without the models not ported there yet (engine.SPARK_NOT_PORTED),
# so the asset graph (and what the incident step waits for) is what Spark builds.
@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    exclude=" ".join(SPARK_NOT_PORTED) or None,
    name="costwatch_dbt_assets",
)
def spark_dbt_assets(
    context: dg.AssetExecutionContext, dbt: PassLockedDbtCliResource, config: DbtBuildConfig
):
    """`dbt build` on Spark (dbt-spark in a subprocess): models, then their tests."""
    yield from dbt_build(context, dbt, config)


def dbt_assets_for(engine: str) -> dg.AssetsDefinition:
    """The dbt assets of the engine the configuration names."""
    return spark_dbt_assets if engine == "spark" else costwatch_dbt_assets


def dbt_build(
    context: dg.AssetExecutionContext, dbt: PassLockedDbtCliResource, config: DbtBuildConfig
):
    """The pass's `dbt build`, its events streamed to Dagster; a model not built fails it."""
    spark = dbt.settings.engine == "spark"
    # Unit tests check the models' logic, not the data: CI runs them (tests/test_dbt_unit.py).
    args = ["build", "--exclude-resource-type", "unit_test", *dbt.dbt_args()]
    # dbt writes every debug event (each statement it sends) to target/.../dbt.log as JSON, at
    # any --log-level-file but none: ~0.5 s (~5%) of a small pass's dbt CPU. The node results
    # reach Dagster on stdout all the same; DBT_LOG_LEVEL_FILE=debug (dbt's own) brings it back.
    if not dbt.settings.environ.get("DBT_LOG_LEVEL_FILE"):
        args += ["--log-level-file", "none"]
    if config.full_refresh:
        args.append("--full-refresh")
    else:
        unchanged = (
            unchanged_spark_seeds(spark_home(dbt.settings.environ), dbt_project.manifest_path)
            if spark
            else unchanged_seeds(dbt.database_url, dbt_project.manifest_path)
        )
        if unchanged:  # dbt reloads every seed on every build: skip those already loaded
            args += ["--exclude", " ".join(unchanged)]
    # A failing dbt test is a failed asset check (shown, counted, and the checks downstream still
    # run); a model that cannot be built fails the step.
    target_path = invocation_target_path(context)
    # dbt keys partial parsing on the database: give it the project's state made current for
    # this one, or it parses the whole project again for every new database.
    if not spark:  # (dbt-spark's profile hash is its own: dbt parses again on Spark)
        partial_parse_for_profile(dbt_project.project_dir / target_path, dbt.settings)
    # When dbt was launched, for `make bench`'s breakdown of dbt's own start-up.
    launched = dbt_project.project_dir / target_path / "costwatch-launched"
    launched.parent.mkdir(parents=True, exist_ok=True)
    launched.write_text(f"{time.time():.6f}")
    invocation = dbt.cli(args, context=context, raise_on_error=False, target_path=target_path)
    record_startup(invocation, launched.with_name(STARTUP_FILE))
    # dbt now runs (in its thread, or on Spark its process): load Great Expectations meanwhile.
    warm_up(None if spark else dbt.database_url)
    yield from invocation.stream()
    prune_target_dirs(invocation.target_path.parent, f"{context.op_execution_context.op.name}-")
    # Dagster's own storage stays bounded: old runs and their event logs go (both for
    # `costwatch run` and for the runs `dagster dev` launches).
    prune_old_runs(context.instance, dbt.settings.run_retention_days)
    if spark:
        record_spark_seeds(
            spark_home(dbt.settings.environ),
            dbt_project.manifest_path,
            invocation.get_artifact("run_results.json"),
        )
    if not invocation.is_successful():
        results = invocation.get_artifact("run_results.json")
        broken = unfinished_nodes(results, ("model", "seed", "snapshot"))
        if broken or invocation.process.returncode not in (0, 1):
            failed_tests = unfinished_nodes(results, ("test", "unit_test"))
            because = f" because {', '.join(failed_tests)} failed" if failed_tests else ""
            raise dg.Failure(
                description=f"dbt did not build {', '.join(broken) or 'the project'}{because}",
                metadata={"dbt": dg.MetadataValue.json({"models": broken, "tests": failed_tests})},
            )


# dbt's own start-up in this invocation, from the timestamps of its first events on stdout (dbt's
# clock): its first line (imports done), "Concurrency: N threads" (partial parse and graph done)
# and the first node's START line (schemas, relation cache and on-run-start done). `make bench`
# reads it (STARTUP_FILE) beside `costwatch-launched`.
STARTUP_EVENTS = {"ConcurrencyLine": "found", "LogStartLine": "node"}


def record_startup(invocation, path: Path) -> None:
    """Wrap the invocation's stdout stream (dagster-dbt's `_stream_stdout`, which `stream()`
    reads; tests/test_dbt_resource.py checks it is there) to note dbt's start-up timestamps."""
    stream = invocation._stream_stdout
    stamps: dict[str, float] = {}

    def timed():
        for raw in stream():
            if len(stamps) < 3 and isinstance(raw, dict):
                info = raw.get("info") or {}
                try:
                    ts = datetime.fromisoformat(str(info["ts"]).replace("Z", "+00:00"))
                except (KeyError, ValueError):
                    ts = None
                if ts is not None:
                    stamps.setdefault("first", ts.timestamp())
                    key = STARTUP_EVENTS.get(str(info.get("name")))
                    if key == "found" or (key == "node" and "found" in stamps):
                        stamps.setdefault(key, ts.timestamp())
                    if len(stamps) == 3:
                        path.write_text(json.dumps(stamps))
            yield raw

    invocation._stream_stdout = timed


def invocation_target_path(context: dg.AssetExecutionContext) -> Path:
    """A target folder of this invocation's own, named as dagster-dbt names them."""
    name = context.op_execution_context.op.name
    unique = uuid.uuid4().hex[:7]
    base = Path(os.environ.get("DBT_TARGET_PATH") or "target")
    return base / f"{name}-{context.run.run_id[:7]}-{unique}"


# dagster-dbt gives each dbt invocation a target folder of its own (~6 MB: manifest, logs,
# compiled SQL). An hourly pass would add 4 GB a month; keep the last day's worth.
KEEP_TARGET_DIRS = 24
KEEP_TARGET_SECONDS = 3600


def prune_target_dirs(target: Path, prefix: str, keep: int = KEEP_TARGET_DIRS) -> list[Path]:
    """Delete all but the `keep` newest invocation folders (`prefix`*) under `target`, sparing
    any touched in the last hour (another process may be running dbt in it)."""
    folders = sorted(
        (p for p in target.glob(f"{prefix}*") if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    cutoff = time.time() - KEEP_TARGET_SECONDS
    removed = [p for p in folders[keep:] if p.stat().st_mtime < cutoff]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def unfinished_nodes(run_results: Mapping[str, Any], kinds: tuple[str, ...]) -> dict[str, str]:
    """dbt nodes of these kinds that errored, failed or were skipped, with dbt's reason."""
    out = {}
    for result in run_results.get("results", []):
        kind = result.get("unique_id", "").split(".", 1)[0]
        if kind in kinds and result.get("status") in ("error", "fail", "skipped"):
            message = (result.get("message") or result.get("status") or "").strip()
            # unique_id is kind.project.name[.hash]: the name, not the hash of a long test name
            name = result["unique_id"].split(".")[2]
            out[name] = (message.splitlines() or [""])[0][:300]
    return out

"""The code location's shape, snapshotted: every asset key with its group, every asset check,
sensor, schedule and job, compared with tests/fixtures/definitions.json.

Like dagster-open-platform's test_defs.py it loads the real definitions (the ones `dagster dev`
and `costwatch run` load) and resolves them; unlike it, it also pins what they contain, so an
asset, check or sensor that disappears or changes group (a translator change, a dbt folder
moved) fails here instead of in the UI. A deliberate change regenerates the file:

    COSTWATCH_UPDATE_DEFS_SNAPSHOT=1 .venv/bin/pytest -n 0 tests/test_definitions.py

and the diff of tests/fixtures/definitions.json is part of the change's review.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.definitions import PASS_JOB_NAME, defs

SNAPSHOT = Path(__file__).parent / "fixtures" / "definitions.json"


def snapshot(definitions: dg.Definitions) -> dict[str, Any]:
    """What a reader of the code location sees, as plain sorted data."""
    graph = definitions.resolve_asset_graph()
    specs = definitions.resolve_all_asset_specs()
    jobs = [job for job in definitions.resolve_all_job_defs() if not job.name.startswith("__")]
    return {
        "assets": {
            spec.key.to_user_string(): {"group": spec.group_name, "kinds": sorted(spec.kinds)}
            for spec in sorted(specs, key=lambda s: s.key.to_user_string())
        },
        "asset_checks": sorted(
            f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys
        ),
        "sensors": {
            sensor.name: {
                "jobs": sorted(job.name for job in sensor.jobs) if sensor.has_jobs else [],
                "default_status": sensor.default_status.value,
            }
            for sensor in sorted(definitions.sensors or [], key=lambda s: s.name)
        },
        "schedules": {
            schedule.name: {
                "job": schedule.job_name,
                "cron": schedule.cron_schedule,
                "timezone": schedule.execution_timezone,
                "default_status": schedule.default_status.value,
            }
            for schedule in sorted(definitions.schedules or [], key=lambda s: s.name)
        },
        "jobs": {
            job.name: sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys)
            for job in sorted(jobs, key=lambda j: j.name)
        },
    }


def test_definitions_match_the_snapshot() -> None:
    current = snapshot(defs())
    text = json.dumps(current, indent=2, sort_keys=True) + "\n"
    if os.environ.get("COSTWATCH_UPDATE_DEFS_SNAPSHOT"):
        SNAPSHOT.write_text(text)
    expected = json.loads(SNAPSHOT.read_text())
    for part in ("assets", "asset_checks", "sensors", "schedules", "jobs"):
        assert current[part] == expected[part], (
            f"the definitions' {part} changed: if that is meant, regenerate {SNAPSHOT.name} "
            "(COSTWATCH_UPDATE_DEFS_SNAPSHOT=1, see this file's docstring) and review its diff"
        )


def test_every_asset_has_a_group_and_the_pass_job_takes_the_marts() -> None:
    """The parts of the snapshot the runbook depends on, stated directly."""
    current = snapshot(defs())
    assert all(asset["group"] for asset in current["assets"].values())
    pass_assets = set(current["jobs"][PASS_JOB_NAME])
    for key in ("marts/cost_spikes", "marts/spike_diagnosis", "ops/incidents"):
        assert key in pass_assets
    assert not any(key.startswith("raw/") for key in pass_assets)  # external: observed only
    assert current["schedules"]["costwatch_pass_schedule"]["job"] == PASS_JOB_NAME


def test_snapshot_sees_a_changed_group() -> None:
    """The snapshot is not blind: moving one asset to another group changes it."""
    spec = dg.AssetSpec("x", group_name="a")
    moved = dg.AssetSpec("x", group_name="b")
    assert snapshot(dg.Definitions(assets=[spec])) != snapshot(dg.Definitions(assets=[moved]))

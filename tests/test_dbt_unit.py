"""Every dbt `unit_tests:` case, run on its own: they test the models' logic, not the data, so
the hourly pass leaves them out (`dbt build --exclude-resource-type unit_test`) and CI runs them
here."""

from __future__ import annotations

import json

from orchestration.defs.project import dbt_project, prepare_manifest
from tests.test_marts_support import run_dbt


def test_every_dbt_unit_test_passes(db_url: str) -> None:
    prepare_manifest()
    declared = set(json.loads(dbt_project.manifest_path.read_text())["unit_tests"])
    assert len(declared) >= 8  # baseline, run-length, diagnosis, cleaning, ratios...
    # Unit tests read their inputs' column types from the warehouse: build every relation empty.
    run_dbt(db_url, "seed", select="")  # the cause catalogue, which the diagnosis reads
    run_dbt(db_url, "run", "--empty", select="")
    results = run_dbt(db_url, "test", select="test_type:unit")
    ran = {  # the on-run-start hook (operation.*) runs with them
        r["unique_id"]: r["status"]
        for r in results["results"]
        if not r["unique_id"].startswith("operation.")
    }
    assert set(ran) == declared
    assert set(ran.values()) == {"pass"}, {k: v for k, v in ran.items() if v != "pass"}

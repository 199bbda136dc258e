"""The dbt resource's start-up shortcuts stay true to what dagster-dbt would have computed."""

import re
import subprocess

from dagster_dbt import DbtCliResource

from orchestration.project import DBT_EXECUTABLE, dbt_project
from orchestration.resources import PassLockedDbtCliResource


def resource() -> PassLockedDbtCliResource:
    return PassLockedDbtCliResource(
        project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE, database_url="postgresql://x@h/d"
    )


def test_overrides_still_override_dagster_dbt():
    # An upgrade that renames these would silently bring back a `dbt --version` and an in-process
    # dbt import on every pass.
    for name in ("_cli_version", "_initialize_dbt_core_adapter"):
        assert hasattr(DbtCliResource, name), name
        assert name in vars(PassLockedDbtCliResource), name


def test_cli_version_is_the_version_dbt_reports():
    reported = subprocess.run(
        [DBT_EXECUTABLE, "--version"], capture_output=True, text=True, check=True
    ).stdout
    core = re.search(r"installed:\s*(\d+\.\d+\.\d+)", reported) or re.search(
        r"(\d+\.\d+\.\d+)", reported
    )
    assert str(resource()._cli_version) == core.group(1)


def test_no_adapter_is_opened_in_process():
    assert resource()._initialize_dbt_core_adapter(["build"]) is None

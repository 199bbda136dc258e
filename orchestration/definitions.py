"""The costwatch code location: what `dagster dev` shows and `costwatch run` executes, assembled
from `orchestration/defs/` (one module per concern) with resources on one configuration."""

from __future__ import annotations

import dagster as dg

from orchestration.core.config import Config
from orchestration.defs.dbt import costwatch_dbt_assets
from orchestration.defs.expectations import expectation_checks
from orchestration.defs.incident_checks import spike_asset_checks
from orchestration.defs.incidents import (
    incident_assets,
    incident_due_sensor,
    incident_jobs,
    pipeline_failure_alert,
    raw_data_sensor_for,
)
from orchestration.defs.jobs import PASS_JOB_NAME, costwatch_pass, hourly
from orchestration.defs.ops_views import alert_assets
from orchestration.defs.project import DBT_EXECUTABLE, dbt_project
from orchestration.defs.raw import raw_assets
from orchestration.defs.reports import incident_report_assets
from orchestration.defs.resources import PassLockedDbtCliResource, PostgresResource

_dbt_keys = set(costwatch_dbt_assets.keys)
_incidents = incident_assets(_dbt_keys)
_incident_keys = {key for asset in _incidents for key in asset.keys}


def build_definitions(config: Config) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor, with resources on `config`."""
    return dg.Definitions(
        assets=[
            *raw_assets,
            costwatch_dbt_assets,
            *_incidents,
            *alert_assets(_incident_keys),
            *incident_report_assets(_dbt_keys | _incident_keys),
        ],
        asset_checks=[
            *expectation_checks,
            *spike_asset_checks([costwatch_dbt_assets, *_incidents]),
        ],
        jobs=[costwatch_pass, *incident_jobs(_incident_keys)],
        schedules=[hourly],
        sensors=[
            *([incident_due_sensor] if _incidents else []),
            raw_data_sensor_for(PASS_JOB_NAME),
            pipeline_failure_alert,
        ],
        resources={
            "dbt": PassLockedDbtCliResource(
                project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE, settings=config
            ),
            "database": PostgresResource(settings=config),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What `dagster dev` loads: the configuration read when the code location loads (each run
    `dagster dev` launches loads it again), on the CLI's database (COSTWATCH_DATABASE_URL, else
    the embedded server's when it runs)."""
    return build_definitions(Config.load(find_embedded=True))

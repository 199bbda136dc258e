"""The costwatch code location: what `dagster dev` shows and `costwatch run` executes, assembled
from `orchestration/defs/` (one module per concern) with resources on one configuration."""

from __future__ import annotations

import dagster as dg

from orchestration.core.config import Config
from orchestration.defs.dbt import dbt_assets_for
from orchestration.defs.decision_marts import decision_mart_assets
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


def build_definitions(config: Config) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor, with resources on `config`. On Spark the
    dbt assets are those Spark builds, and the marts the decisions read are copied into
    PostgreSQL before the incident step (orchestration/defs/decision_marts.py)."""
    dbt_assets = dbt_assets_for(config.engine)
    dbt_keys = set(dbt_assets.keys)
    copies = decision_mart_assets(dbt_keys) if config.engine == "spark" else []
    read_keys = dbt_keys | {key for asset in copies for key in asset.keys}
    incidents = incident_assets(read_keys)
    incident_keys = {key for asset in incidents for key in asset.keys}
    return dg.Definitions(
        assets=[
            *raw_assets,
            dbt_assets,
            *copies,
            *incidents,
            *alert_assets(incident_keys),
            *incident_report_assets(read_keys | incident_keys),
        ],
        asset_checks=[
            *expectation_checks,
            *spike_asset_checks([dbt_assets, *incidents]),
        ],
        jobs=[costwatch_pass, *incident_jobs(incident_keys)],
        schedules=[hourly],
        sensors=[
            *([incident_due_sensor] if incidents else []),
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

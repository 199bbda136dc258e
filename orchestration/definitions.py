"""The costwatch code location: what `dagster dev` shows and `costwatch run` executes."""

from __future__ import annotations

import dagster as dg

from orchestration.assets.dbt import costwatch_dbt_assets
from orchestration.assets.raw import raw_assets
from orchestration.checks import expectation_checks, raw_check_asset_keys
from orchestration.incidents.sensors import incident_sensors, spike_asset_checks
from orchestration.project import DBT_EXECUTABLE, dbt_project
from orchestration.resources import PassLockedDbtCliResource, PostgresResource
from orchestration.triage.assets import incident_report_assets

PASS_JOB_NAME = "costwatch_pass"

costwatch_pass = dg.define_asset_job(
    PASS_JOB_NAME,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*(spec.key for spec in raw_assets))
    | dg.AssetSelection.checks_for_assets(*raw_check_asset_keys()),
    description="One pass of the runbook: every mart, its tests and expectation suites.",
)

hourly = dg.ScheduleDefinition(
    job=costwatch_pass,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Keep the marts current: five minutes past every hour.",
)

defs = dg.Definitions(
    assets=[
        *raw_assets,
        costwatch_dbt_assets,
        *incident_report_assets(set(costwatch_dbt_assets.keys)),
    ],
    asset_checks=[*expectation_checks, *spike_asset_checks([costwatch_dbt_assets])],
    jobs=[costwatch_pass],
    schedules=[hourly],
    sensors=incident_sensors,
    resources={
        "dbt": PassLockedDbtCliResource(
            project_dir=dbt_project,
            dbt_executable=DBT_EXECUTABLE,
            database_url=dg.EnvVar("COSTWATCH_DATABASE_URL"),
        ),
        "database": PostgresResource(url=dg.EnvVar("COSTWATCH_DATABASE_URL")),
    },
)

"""The costwatch code location: what `dagster dev` shows and `costwatch run` executes."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.dbt import costwatch_dbt_assets
from orchestration.defs.expectations import expectation_checks, raw_check_asset_keys
from orchestration.defs.incident_checks import spike_asset_checks
from orchestration.defs.incidents import (
    incident_assets,
    incident_due_sensor,
    incident_jobs,
    pipeline_failed_hook,
    pipeline_failure_alert,
    raw_data_sensor_for,
)
from orchestration.defs.ops_views import alert_assets
from orchestration.defs.project import DBT_EXECUTABLE, dbt_project
from orchestration.defs.raw import raw_assets
from orchestration.defs.reports import incident_report_assets
from orchestration.defs.resources import PassLockedDbtCliResource, PostgresResource

PASS_JOB_NAME = "costwatch_pass"

_dbt_keys = set(costwatch_dbt_assets.keys)
_incidents = incident_assets(_dbt_keys)
_incident_keys = {key for asset in _incidents for key in asset.keys}

costwatch_pass = dg.define_asset_job(
    PASS_JOB_NAME,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*(spec.key for spec in raw_assets))
    | dg.AssetSelection.checks_for_assets(*raw_check_asset_keys()),
    description="One pass of the runbook: every mart, its tests and expectation suites, then "
    "the incident step and the triage report.",
    hooks={pipeline_failed_hook},
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
        *_incidents,
        *alert_assets(_incident_keys),
        *incident_report_assets(_dbt_keys | _incident_keys),
    ],
    asset_checks=[*expectation_checks, *spike_asset_checks([costwatch_dbt_assets, *_incidents])],
    jobs=[costwatch_pass, *incident_jobs(_incident_keys)],
    schedules=[hourly],
    sensors=[
        *([incident_due_sensor] if _incidents else []),
        raw_data_sensor_for(PASS_JOB_NAME),
        pipeline_failure_alert,
    ],
    resources={
        "dbt": PassLockedDbtCliResource(
            project_dir=dbt_project,
            dbt_executable=DBT_EXECUTABLE,
            database_url=dg.EnvVar("COSTWATCH_DATABASE_URL"),
        ),
        "database": PostgresResource(url=dg.EnvVar("COSTWATCH_DATABASE_URL")),
    },
)

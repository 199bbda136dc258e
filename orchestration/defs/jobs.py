"""The pass job (every mart, check, the incident step and the report) and its hourly schedule."""

import dagster as dg

from orchestration.defs.expectations import raw_check_asset_keys
from orchestration.defs.incidents import pipeline_failed_hook
from orchestration.defs.raw import raw_assets

PASS_JOB_NAME = "costwatch_pass"

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

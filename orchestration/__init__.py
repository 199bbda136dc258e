"""costwatch: the Cost Spike Runbook as a Dagster + dbt pipeline on PostgreSQL."""

"""The Dagster layer: definitions, one module per concern (dbt, raw, expectations, incidents,
incident checks, reports, resources, the dbt project). Imports `core` and `runbook`, never the
edges; `orchestration.definitions` assembles them into the code location."""

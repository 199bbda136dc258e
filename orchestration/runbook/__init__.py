"""The runbook's own logic, without Dagster: incidents and alerts, the triage report, the
synthetic scenarios, ingestion from OpenTelemetry and Langfuse, and the expectation suites.

Imports only `orchestration.core`; the Dagster definitions (`orchestration.defs`) and the edges
(`pipeline`, `cli`, `definitions`) build on it.
"""

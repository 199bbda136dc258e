"""Great Expectations suites (`expectations/*.json`): loading, running, reading the results.

The Dagster asset checks that run them are `orchestration.defs.expectations`.
"""

"""Dagster definitions, one module per concern (STYLE.md's layout; more move here over time)."""

"""The raw tables the application writes: external assets, so checks and lineage attach to them."""

from __future__ import annotations

import dagster as dg

raw_assets = [
    dg.AssetSpec(
        key=dg.AssetKey(["raw", table]),
        group_name="ingestion",
        description=description,
        kinds={"postgres"},
    )
    for table, description in (
        ("inference_events", "One row per model inference, written by the application."),
        ("tool_calls", "One row per tool call made while serving an inference."),
        ("change_events", "Deploys, model versions, prompt templates, UX and config changes."),
    )
]

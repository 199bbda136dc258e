"""A Langfuse observations export (blob storage export, `observations_v2/`: Parquet or JSONL,
optionally gzipped; the legacy `observations/` too) to raw rows. Pure but for reading files.

Documented columns used: id, trace_id, type, name, start_time, end_time, level,
parent_observation_id, provided_model_name (legacy: model), usage_details, cost_details,
total_cost, user_id, session_id, trace_name, tags, metadata. GENERATION rows become inference
events, TOOL rows tool calls; other types (SPAN, EVENT, AGENT, ...) are skipped.
Feature: a `feature:NAME` tag, else the trace name, else the observation name. Trigger type: a
`trigger:NAME` tag or metadata `trigger_type`, else user. Langfuse's usage keys are disjoint
(input excludes cached reads and cache writes), so input_tokens is their sum, as costwatch and
OpenTelemetry count it.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from orchestration.runbook.ingest.mapping import Mapped, _integer


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_observations(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        try:
            # Start-up time (0.3 s), and optional: only a Parquet export needs pyarrow.
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError(
                "reading Parquet needs pyarrow (export JSONL, or install pyarrow)"
            ) from None
        try:
            return pq.read_table(path).to_pylist()
        except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds
            raise ValueError(f"unreadable Parquet: {err}") from None
    with _open_text(path) as handle:
        text = handle.read()
    if text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError("not a list of observation objects")
    return rows


def _mapping(value: object) -> dict:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if isinstance(value, list):  # a Parquet map: [(key, value), ...]
        try:
            value = dict(value)
        except (TypeError, ValueError):
            return {}
    return value if isinstance(value, dict) else {}


def _tags(value: object) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [value]
    return [str(tag) for tag in value] if isinstance(value, list | tuple) else []


def _time(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _tagged(tags: list[str], prefix: str) -> str | None:
    for tag in tags:
        if tag.startswith(prefix) and len(tag) > len(prefix):
            return tag[len(prefix) :]
    return None


def _tokens(usage: dict) -> tuple[int | None, int | None, int | None, int | None, int | None]:
    """(input, output, cached input, cache write, reasoning) from Langfuse's usage keys."""
    cached = write = reasoning = 0
    found_cached = found_write = found_reasoning = False
    input_total = _integer(usage.get("input"))
    output_total = _integer(usage.get("output"))
    for key, raw in usage.items():
        value = _integer(raw)
        if value is None or key in ("input", "output", "total"):
            continue
        if "reasoning" in key:
            reasoning += value
            found_reasoning = True
        if key.startswith("output"):
            output_total = (output_total or 0) + value
        elif "cache_creation" in key or "cache_write" in key:
            write += value
            found_write = True
            input_total = (input_total or 0) + value
        elif "cache" in key or "cached" in key:
            cached += value
            found_cached = True
            input_total = (input_total or 0) + value
        elif key.startswith("input"):
            input_total = (input_total or 0) + value
    return (
        input_total,
        output_total,
        cached if found_cached else None,
        write if found_write else None,
        reasoning if found_reasoning else None,
    )


def _cost(row: dict) -> Decimal | None:
    value = row.get("total_cost")
    if value is None:
        value = _mapping(row.get("cost_details")).get("total")
    if value is None:
        value = row.get("calculated_total_cost")
    if value is None or isinstance(value, bool):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() else None


def map_observations(rows: list[dict]) -> Mapped:
    out = Mapped()
    for row in rows:
        kind = str(row.get("type") or "").upper()
        if kind not in ("GENERATION", "TOOL"):
            continue
        tags = _tags(row.get("tags"))
        metadata = _mapping(row.get("metadata"))
        feature = _tagged(tags, "feature:") or row.get("trace_name") or row.get("name")
        created_at = _time(row.get("start_time"))
        identifier = str(row["id"]) if row.get("id") not in (None, "") else None
        if kind == "GENERATION":
            usage = _mapping(row.get("usage_details")) or _mapping(row.get("usage"))
            input_tokens, output_tokens, cached, write, reasoning = _tokens(usage)
            cost = _cost(row)
            trigger = _tagged(tags, "trigger:") or metadata.get("trigger_type") or "user"
            out.inference.append(
                (
                    identifier,
                    created_at,
                    row.get("user_id"),
                    row.get("session_id"),
                    feature,
                    str(trigger),
                    row.get("provided_model_name") or row.get("model") or row.get("model_id"),
                    input_tokens,
                    output_tokens,
                    cost,
                    metadata.get("user_agent"),
                    cached,
                    write,
                    reasoning,
                    metadata.get("provider") or metadata.get("gen_ai.provider.name"),
                    "provider" if cost is not None else "unknown",
                )
            )
        else:
            ended = _time(row.get("end_time"))
            latency = None
            if ended and created_at:
                latency = _integer(round((ended - created_at).total_seconds() * 1000))
            retries = _integer(metadata.get("retries"))
            out.tools.append(
                (
                    identifier,
                    created_at,
                    row.get("parent_observation_id"),
                    feature,
                    row.get("name"),
                    str(row.get("level") or "DEFAULT").upper() != "ERROR",
                    retries if retries is not None else 0,
                    latency,
                )
            )
    return out

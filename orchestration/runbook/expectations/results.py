"""Turn a GX validation result into what the Dagster UI shows: which expectations failed, on how
many rows, with a sample of the offending values. Pure functions over plain dicts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

SAMPLE_SIZE = 5
_CELL = 80


@dataclass
class Finding:
    """One failed expectation."""

    expectation: str  # e.g. expect_column_values_to_be_unique(event_id)
    type: str
    column: str | None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[Any] = field(default_factory=list)
    observed_value: Any = None
    expected: dict[str, Any] | None = None
    why: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v not in (None, [])}
        return json.loads(json.dumps(out, default=_plain))


@dataclass
class SuiteOutcome:
    """A suite's verdict on its batch."""

    suite: str
    evaluated: int
    findings: list[Finding]
    rows: int | None
    seconds: float
    batch: str

    @property
    def passed(self) -> bool:
        return not self.findings


def expectation_label(type_: str, kwargs: dict[str, Any], description: str | None = None) -> str:
    if description:
        return f"{type_}: {description}"
    if kwargs.get("column"):
        return f"{type_}({kwargs['column']})"
    if kwargs.get("column_list"):
        return f"{type_}({', '.join(kwargs['column_list'])})"
    return type_


def finding_from_result(result: dict[str, Any], meta: dict[str, Any] | None = None) -> Finding:
    """`result` is one ExpectationValidationResult's to_json_dict()."""
    config = result.get("expectation_config") or {}
    type_ = config.get("type", "?")
    kwargs = config.get("kwargs") or {}
    body = result.get("result") or {}
    meta = meta or config.get("meta") or {}
    finding = Finding(
        expectation=expectation_label(type_, kwargs, config.get("description")),
        type=type_,
        column=kwargs.get("column"),
        unexpected_count=body.get("unexpected_count"),
        unexpected_percent=_round(body.get("unexpected_percent")),
        why=meta.get("why"),
    )
    if "partial_unexpected_counts" in body and body["partial_unexpected_counts"]:
        finding.sample = [
            {"value": _plain(c.get("value")), "count": c.get("count")}
            for c in body["partial_unexpected_counts"][:SAMPLE_SIZE]
        ]
    elif body.get("partial_unexpected_list"):
        finding.sample = [_plain(v) for v in body["partial_unexpected_list"][:SAMPLE_SIZE]]
    details = body.get("details") or {}
    if details.get("unexpected_rows"):
        rows = details["unexpected_rows"]
        finding.sample = [_row(r) for r in rows[:SAMPLE_SIZE]]
    bounds = {k: _plain(kwargs[k]) for k in ("min_value", "max_value") if k in kwargs}
    if bounds and type_ != "expect_column_values_to_be_between":
        finding.expected = bounds
    if "observed_value" in body:
        finding.observed_value = _plain(body["observed_value"])
        if type_ == "unexpected_rows_expectation":
            finding.unexpected_count = body["observed_value"]
    info = result.get("exception_info") or {}
    if info.get("raised_exception"):
        message = str(info.get("exception_message") or "error").strip().splitlines()
        finding.error = message[0] if message else "error"
    return finding


def markdown_table(findings: list[Finding]) -> str:
    """The failed expectations as a Markdown table (the Dagster UI renders it)."""
    lines = [
        "| expectation | unexpected rows | sample of offending values | observed | expected |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in findings:
        unexpected = "" if f.unexpected_count is None else f"{f.unexpected_count}"
        if f.unexpected_percent is not None:
            unexpected += f" ({f.unexpected_percent:g}%)"
        observed = f.error and f"error: {f.error}" or _cell(f.observed_value)
        lines.append(
            f"| {_cell(f.expectation)} | {unexpected} | {_cell(f.sample)} | {observed} "
            f"| {_cell(f.expected)} |"
        )
    return "\n".join(lines)


def summary_line(outcome: SuiteOutcome) -> str:
    if outcome.passed:
        return f"{outcome.suite}: all {outcome.evaluated} expectations met on {outcome.batch}"
    names = ", ".join(f.expectation for f in outcome.findings[:4])
    more = "" if len(outcome.findings) <= 4 else f" and {len(outcome.findings) - 4} more"
    return (
        f"{outcome.suite}: {len(outcome.findings)} of {outcome.evaluated} expectations failed: "
        f"{names}{more}"
    )


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _row(row: Any) -> Any:
    return _plain(dict(row)) if isinstance(row, dict) else _plain(row)


def _cell(value: Any) -> str:
    if value is None or value == []:
        return ""
    text = value if isinstance(value, str) else json.dumps(_plain(value), default=str)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"

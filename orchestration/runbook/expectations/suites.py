"""Expectation suites as data: `expectations/<schema>.<table>.json`, one GX 1.x suite per file.

Each file is an ExpectationSuite (name, expectations, meta). `meta.costwatch` says which Dagster
asset it checks, its severity (raw data warns, marts fail) and its batch: a whole table, or for the
raw tables only the recent window, so that an hourly check stays cheap on millions of events.
Nothing here imports Great Expectations; loading suites is cheap enough for definitions time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestration.core.database import PROJECT_ROOT

SUITES_DIR = PROJECT_ROOT / "expectations"
CHECK_NAME = "gx_suite"
SEVERITIES = ("WARN", "ERROR")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

# Settings (read when a check runs, never at import time).
FRESHNESS_HOURS_ENV = "COSTWATCH_FRESHNESS_HOURS"
WINDOW_HOURS_ENV = "COSTWATCH_CHECK_WINDOW_HOURS"
DEFAULT_FRESHNESS_HOURS = 2.0
DEFAULT_WINDOW_HOURS = 24.0
FUTURE_TOLERANCE = timedelta(hours=1)  # as staging's quarantine rule


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file."""


@dataclass(frozen=True)
class Suite:
    """One suite file and how it attaches to the pipeline."""

    name: str
    path: Path
    asset_key: tuple[str, ...]
    severity: str  # "WARN" | "ERROR"
    schema: str
    table: str
    recent_window_column: str | None
    description: str
    document: dict[str, Any] = field(repr=False, compare=False, hash=False)

    @property
    def expectation_types(self) -> list[str]:
        return [e["type"] for e in self.document["expectations"]]

    def batch_query(self, window_hours: float) -> str | None:
        """The SQL of the batch, or None for the whole table.

        Raw tables are checked over the `window_hours` before their newest event (capped at an
        hour past the wall clock, so one row stamped in 2099 cannot empty the window), plus rows
        without a timestamp. Hourly runs therefore see every row about `window_hours` times.
        """
        if self.recent_window_column is None:
            return None
        col, rel = self.recent_window_column, f"{self.schema}.{self.table}"
        hours = float(window_hours)
        # Two index range scans (union all), not `is null or >`, which the planner scans fully.
        return (
            f"select * from {rel} where {col} > ("
            f"select least(max({col}), now() + interval '1 hour') from {rel}"
            f") - interval '{hours:g} hours' "
            f"union all select * from {rel} where {col} is null"
        )

    def batch_description(self, window_hours: float) -> str:
        rel = f"{self.schema}.{self.table}"
        if self.recent_window_column is None:
            return f"{rel} (whole table)"
        return f"{rel}, {self.recent_window_column} within {window_hours:g} h of the newest row"


def load_suite(path: Path) -> Suite:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SuiteError(f"{path.name}: not a readable JSON suite: {err}") from None
    meta = (document.get("meta") or {}).get("costwatch") or {}
    try:
        asset_key = tuple(meta["asset_key"])
        severity = str(meta["severity"]).upper()
        batch = meta["batch"]
        schema, table = str(batch["table"]).split(".", 1)
    except (KeyError, TypeError, ValueError):
        raise SuiteError(
            f"{path.name}: meta.costwatch needs asset_key, severity and batch.table (schema.table)"
        ) from None
    if severity not in SEVERITIES:
        raise SuiteError(f"{path.name}: severity must be one of {SEVERITIES}, got {severity!r}")
    window_col = batch.get("recent_window_column")
    for ident in (schema, table, *([window_col] if window_col else [])):
        if not _IDENT.match(ident):
            raise SuiteError(f"{path.name}: {ident!r} is not a plain SQL identifier")
    if document.get("name") != path.stem:
        raise SuiteError(f"{path.name}: the suite's name must be the file's name ({path.stem})")
    expectations = document.get("expectations")
    if not expectations or not all(isinstance(e, dict) and "type" in e for e in expectations):
        raise SuiteError(f"{path.name}: expectations must be a non-empty list of {{type, kwargs}}")
    return Suite(
        name=document["name"],
        path=path,
        asset_key=asset_key,
        severity=severity,
        schema=schema,
        table=table,
        recent_window_column=window_col,
        description=meta.get("description", ""),
        document=document,
    )


def load_suites(directory: Path | None = None) -> list[Suite]:
    """Every suite under `expectations/`, sorted by name; one asset has at most one suite."""
    directory = directory or SUITES_DIR
    suites = [load_suite(p) for p in sorted(directory.glob("*.json"))]
    seen: dict[tuple[str, ...], str] = {}
    for suite in suites:
        if suite.asset_key in seen:
            raise SuiteError(
                f"{suite.path.name} and {seen[suite.asset_key]} both check {suite.asset_key}"
            )
        seen[suite.asset_key] = suite.path.name
    return suites


@dataclass(frozen=True)
class CheckSettings:
    freshness_hours: float = DEFAULT_FRESHNESS_HOURS
    window_hours: float = DEFAULT_WINDOW_HOURS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CheckSettings:
        environ = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SuiteError(f"{name} must be a number of hours, got {raw!r}") from None
            if value <= 0:
                raise SuiteError(f"{name} must be positive, got {raw!r}")
            return value

        return cls(
            freshness_hours=number(FRESHNESS_HOURS_ENV, DEFAULT_FRESHNESS_HOURS),
            window_hours=number(WINDOW_HOURS_ENV, DEFAULT_WINDOW_HOURS),
        )

    def parameters(self, now: datetime | None = None) -> dict[str, Any]:
        """Suite parameters (`{"$PARAMETER": name}` in the files): the wall-clock thresholds."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        return {
            "freshness_min_created_at": now - timedelta(hours=self.freshness_hours),
            "future_max_created_at": now + FUTURE_TOLERANCE,
        }

"""costwatch's settings that reach dbt as `--vars` (detection thresholds, lookback windows), and
the check that every `COSTWATCH_*` variable set is one costwatch reads.

Every dbt var in dbt_project.yml can be overridden with an environment variable
`COSTWATCH_VAR_<NAME>` (e.g. `COSTWATCH_VAR_SPIKE_THRESHOLD_PCT=0.3`). Values are parsed as JSON
when they can be (numbers, booleans, lists), otherwise kept as strings.

A mistyped setting must not silence detection (CONTRACT section 6: a setting that cannot be read
disables only what it configures, is named in one line, makes the pass exit non-zero and queues a
`pipeline_failed` alert). So a var whose value is not of its default's type (`"high"` for a
threshold) is not passed to dbt, which then uses the default, and a `COSTWATCH_*` name costwatch
does not read (`COSTWATCH_SLACK_WEBHOOK`, `COSTWATCH_VAR_SPIKE_TRESHOLD_PCT`) is named with the
closest known one. Both are `setting_problems`, which the incident step reports.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import yaml

PREFIX = "COSTWATCH_VAR_"
DBT_PROJECT_FILE = Path(__file__).resolve().parents[2] / "dbt_project" / "dbt_project.yml"

# Every other COSTWATCH_* variable costwatch reads (the README's settings table).
KNOWN_SETTINGS = frozenset(
    {
        "COSTWATCH_ALERT_TIMEOUT_SECONDS",
        "COSTWATCH_ALERT_WEBHOOK_URL",
        "COSTWATCH_ALERT_WINDOW_HOURS",
        "COSTWATCH_CHECK_WINDOW_HOURS",
        "COSTWATCH_COST_CAP_DRY_RUN",
        "COSTWATCH_COST_CAP_ENABLED",
        "COSTWATCH_COST_CAP_USD",
        "COSTWATCH_DAGSTER_STORAGE_URL",
        "COSTWATCH_DATABASE_URL",
        "COSTWATCH_DBT_THREADS",
        "COSTWATCH_DB_HOST",
        "COSTWATCH_DB_NAME",
        "COSTWATCH_DB_PASSWORD",
        "COSTWATCH_DB_PORT",
        "COSTWATCH_DB_SSLMODE",
        "COSTWATCH_DB_USER",
        "COSTWATCH_DEBUG",
        "COSTWATCH_ENGINE",
        "COSTWATCH_ESCALATE_AFTER_MINUTES",
        "COSTWATCH_ESCALATION_SLACK_WEBHOOK_URL",
        "COSTWATCH_ESCALATION_WEBHOOK_URL",
        "COSTWATCH_FRESHNESS_HOURS",
        "COSTWATCH_HOME",
        "COSTWATCH_LOG_LEVEL",
        "COSTWATCH_OTLP_FEATURE_ATTRIBUTE",
        "COSTWATCH_OTLP_TOKEN",
        "COSTWATCH_PAGERDUTY_ROUTING_KEY",
        "COSTWATCH_PAGERDUTY_URL",
        "COSTWATCH_PASS_WAIT_SECONDS",
        "COSTWATCH_REOPEN_WITHIN_HOURS",
        "COSTWATCH_RUN_RETENTION_DAYS",
        "COSTWATCH_SEVERITY_USD",
        "COSTWATCH_SLACK_WEBHOOK_URL",
        "COSTWATCH_SPARK_RAW",
        # The test suite's and the benchmark's own.
        "COSTWATCH_KEEP_TEST_DB",
        "COSTWATCH_SOAK_PASSES",
        "COSTWATCH_SOAK_REPORT",
        "COSTWATCH_TEST_DATABASE_URL",
        "COSTWATCH_UPDATE_DEFS_SNAPSHOT",
    }
)


@functools.cache
def dbt_var_defaults() -> dict[str, object]:
    """The vars dbt_project.yml declares, with their defaults."""
    project = yaml.safe_load(DBT_PROJECT_FILE.read_text()) or {}
    return dict(project.get("vars") or {})


def _parse(raw: str) -> object:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list):
        return "a JSON list"
    return "text"


def _fits(value: object, default: object) -> bool:
    """Whether `value` can stand where dbt_project.yml has `default`."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, int | float) and math.isfinite(value)
    if isinstance(default, list):
        return isinstance(value, list) and (
            not default or all(_fits(item, default[0]) for item in value)
        )
    return isinstance(value, str)


def read_dbt_vars(environ: Mapping[str, str] | None = None) -> tuple[dict[str, object], list[str]]:
    """The dbt vars set in the environment that dbt can use (lower-cased names, JSON-typed
    values), and one line for each `COSTWATCH_VAR_*` left out (unknown name, or a value not of
    its default's type: dbt then uses the default)."""
    environ = os.environ if environ is None else environ
    defaults = dbt_var_defaults()
    out: dict[str, object] = {}
    problems: list[str] = []
    for key in sorted(environ):
        if not key.startswith(PREFIX) or len(key) == len(PREFIX):
            continue
        name = key[len(PREFIX) :].lower()
        value = _parse(environ[key])
        if name not in defaults:
            known = [PREFIX + n.upper() for n in defaults]
            problems.append(f"{key} is not a costwatch setting{_did_you_mean(key, known)}")
        elif not _fits(value, defaults[name]):
            problems.append(
                f"{key} must be {_kind(defaults[name])}, got {environ[key]!r}:"
                f" using the default {json.dumps(defaults[name])}"
            )
        else:
            out[name] = value
    return out, problems


def dbt_vars(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The dbt vars set in the environment that dbt can use (see `read_dbt_vars`)."""
    return read_dbt_vars(environ)[0]


def setting_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per `COSTWATCH_*` variable that costwatch cannot use: a dbt var left out, or a
    name costwatch does not read (with the closest one it does)."""
    environ = os.environ if environ is None else environ
    problems = read_dbt_vars(environ)[1]
    problems += _number_problems(environ)
    for key in sorted(environ):
        if key.startswith("COSTWATCH_") and not key.startswith(PREFIX):
            if key not in KNOWN_SETTINGS:
                problems.append(
                    f"{key} is not a costwatch setting{_did_you_mean(key, KNOWN_SETTINGS)}"
                )
    return problems


# The core settings that are numbers: (name, the least value, what it counts). A value that is not
# one is named here and the setting keeps its default (orchestration/core/config.py).
_NUMBERS = (
    ("COSTWATCH_DBT_THREADS", 1, "a whole number of threads"),
    ("COSTWATCH_PASS_WAIT_SECONDS", 0, "a number of seconds"),
    ("COSTWATCH_RUN_RETENTION_DAYS", 0, "a number of days"),
)


def _number_problems(environ: Mapping[str, str]) -> list[str]:
    problems = []
    for name, least, what in _NUMBERS:
        raw = (environ.get(name) or "").strip()
        if not raw:
            continue
        try:
            value = int(raw) if "whole" in what else float(raw)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < least:
            problems.append(
                f"{name} must be {what} (at least {least}), got {raw!r}: using the default"
            )
    return problems


def _did_you_mean(name: str, known: object) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""

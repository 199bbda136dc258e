"""costwatch's settings that reach dbt as `--vars`: detection thresholds, lookback windows.

Every dbt var in dbt_project.yml can be overridden with an environment variable
`COSTWATCH_VAR_<NAME>` (e.g. `COSTWATCH_VAR_SPIKE_THRESHOLD_PCT=0.3`). Values are parsed as JSON
when they can be (numbers, booleans), otherwise kept as strings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

PREFIX = "COSTWATCH_VAR_"


def dbt_vars(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The dbt vars set in the environment, lower-cased names, JSON-typed values."""
    environ = os.environ if environ is None else environ
    out: dict[str, object] = {}
    for key, raw in environ.items():
        if not key.startswith(PREFIX) or len(key) == len(PREFIX):
            continue
        name = key[len(PREFIX) :].lower()
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out

"""dbt's node-by-node log, reduced to the one line `costwatch run` prints (the full log: `-v`).

dagster-dbt re-emits every dbt event on stdout; the pass captures it and keeps dbt's own totals
("Finished running 3 seeds, 40 view models, ... in ... (41.22s)." and "Done. PASS=.. WARN=..
ERROR=.. SKIP=.. TOTAL=..") as `dbt: 3 seeds, 95 models, 180 tests: PASS=... in 41.2s`.
"""

from __future__ import annotations

import re

# The timestamps of dbt's start-up in one invocation (written by orchestration/defs/dbt.py beside
# `costwatch-launched` in its target folder, read by `make bench`).
STARTUP_FILE = "costwatch-startup.json"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_FINISHED = re.compile(r"Finished running (?P<what>.+?) in .*\((?P<seconds>[\d.]+)s\)")
_DONE = re.compile(r"Done\. (?P<counts>PASS=\d+.*TOTAL=\d+)")
_PART = re.compile(r"(?P<n>\d+) (?P<kind>[a-z ]+?)s?$")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _totals(what: str) -> str:
    """'3 seeds, 40 view models, 55 table models, 2 incremental models, 180 data tests'
    -> '3 seeds, 97 models, 180 tests'."""
    counts: dict[str, int] = {}
    for part in what.split(","):
        match = _PART.match(part.strip())
        if not match:
            continue
        kind = match["kind"].strip()
        kind = "model" if kind.endswith("model") else "test" if kind.endswith("test") else kind
        counts[kind] = counts.get(kind, 0) + int(match["n"])
    return ", ".join(f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in counts.items())


def dbt_summary(log: str) -> str | None:
    """One line from dbt's captured log; None when dbt did not finish (no totals in it)."""
    text = strip_ansi(log)
    finished = list(_FINISHED.finditer(text))
    done = list(_DONE.finditer(text))
    if not finished and not done:
        return None
    parts = []
    if finished:
        parts.append(_totals(finished[-1]["what"]))
    if done:
        counts = done[-1]["counts"]
        failed = re.search(r"ERROR=(\d+)", counts)
        verdict = "ok" if failed and failed.group(1) == "0" else "FAILED"
        parts.append(f"{verdict} ({counts})")
    line = "dbt: " + ": ".join(p for p in parts if p)
    if finished:
        line += f" in {float(finished[-1]['seconds']):.1f}s"
    return line + " (`costwatch run -v` shows dbt's full log)"

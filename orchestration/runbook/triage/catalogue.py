"""The cause catalogue (dbt_project/seeds/cause_catalogue.csv) for code that has no mart row.

dbt loads the same file as `marts.cause_catalogue` and renders the fix into
`marts.spike_diagnosis.recommended_fix`; this reader gives the pure message builders the same
wording when they only know a cause's name (a test, an alert built without the diagnosis row).
`render` fills `{detail}` exactly as the `cause_text` macro does.
"""

from __future__ import annotations

import csv
import re
from functools import cache

from orchestration.core.database import PROJECT_ROOT

CATALOGUE = PROJECT_ROOT / "dbt_project" / "seeds" / "cause_catalogue.csv"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """cause -> its row (title, detail_column, default_detail, action, fix, ...)."""
    with CATALOGUE.open(newline="", encoding="utf-8") as handle:
        return {row["cause"]: row for row in csv.DictReader(handle)}


def render(template: str, detail: str | None, default: str | None) -> str:
    """A catalogue text with `{detail}` filled in: one line, no backticks, at most 200 chars."""
    if detail is not None:
        filled = _CONTROL.sub(" ", detail).replace("`", "'")[:200]
    else:
        filled = default or ""
    return template.replace("{detail}", filled)


def title(cause: str | None) -> str:
    row = catalogue().get(cause or "")
    return row["title"] if row else (cause or "undiagnosed")


def fix(cause: str | None, detail: str | None = None) -> str | None:
    """The runbook's step 7 fix for `cause` pinned on `detail`; None for an unknown cause."""
    row = catalogue().get(cause or "")
    return render(row["fix"], detail, row["default_detail"]) if row else None


def action(cause: str | None, detail: str | None = None) -> str | None:
    """The one-line action for `cause` pinned on `detail`; None for an unknown cause."""
    row = catalogue().get(cause or "")
    return render(row["action"], detail, row["default_detail"]) if row else None

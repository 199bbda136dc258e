"""What every section shares: a step's rows of marts.spike_runbook_steps, a cause's label,
and a metric as a table row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestration.core.formatting import (
    change,
    money,
    number,
)
from orchestration.runbook.triage.summary import cause_name

TOP_FEATURES = 5
TOP_TOOLS = 5

Row = Mapping[str, Any]


def as_float(value: Any) -> float:
    return float(value or 0)


class Step:
    """One step's rows of marts.spike_runbook_steps: spike-wide metrics and, per subject (a
    trigger type, feature or tool, in the mart's `subject_rank` order), its metrics."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.metrics: dict[str, Row] = {}
        self.subjects: dict[str, dict[str, Row]] = {}
        ranks: dict[str, int] = {}
        for row in rows:
            if row.get("subject") is None:
                self.metrics[row["metric"]] = row
            else:
                self.subjects.setdefault(row["subject"], {})[row["metric"]] = row
                if row.get("subject_rank") is not None:
                    ranks[row["subject"]] = int(row["subject_rank"])
        self.ranked = sorted(self.subjects, key=lambda s: (ranks.get(s, 1 << 30), s))

    def get(self, metric: str, field: str, subject: str | None = None) -> Any:
        row = self.metrics.get(metric) if subject is None else self.subjects[subject].get(metric)
        return (row or {}).get(field)

    def pair(self, metric: str, subject: str | None = None) -> tuple[Any, Any]:
        return self.get(metric, "before", subject), self.get(metric, "after", subject)

    def signal(self, metric: str, subject: str | None = None) -> bool:
        return bool(self.get(metric, "is_signal", subject))


def causes_found(causes: Sequence[Row]) -> set[str]:
    return {str(c.get("cause")) for c in causes}


def cause_label(cause: Row) -> str:
    return cause_name(cause.get("title") or cause.get("cause"), cause.get("detail"))


def metric_row(step: Step, metric: str, label: str, kind: str) -> tuple[str, str, str, str]:
    before, after = step.get(metric, "before"), step.get(metric, "after")
    show = {
        "usd": lambda v: money(v),
        "usd5": lambda v: money(v, 5),
        "n1": lambda v: number(v, 1),
        "n0": lambda v: number(v),
    }[kind]
    return (label, show(before), show(after), change(before, after))

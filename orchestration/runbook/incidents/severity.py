"""An incident's severity from its excess cost, and the keys that deduplicate its alerts.

Pure: unit-tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

# Excess cost of the spike (USD) at or above which an incident gets each severity.
SEVERITY_THRESHOLDS_USD: tuple[tuple[str, float], ...] = (
    ("critical", 500.0),
    ("high", 100.0),
    ("medium", 25.0),
)
PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


# Excess as a fraction of the baseline cost of the spike's hours, for each severity: doubling
# the spend is serious at any scale, even before the absolute amount is.
SEVERITY_RATIOS: tuple[tuple[str, float], ...] = (("critical", 3.0), ("high", 1.0), ("medium", 0.5))
_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def severity_for(
    excess_cost_usd: float | None,
    pct_above_baseline: float | None = None,
    thresholds: tuple[tuple[str, float], ...] = SEVERITY_THRESHOLDS_USD,
) -> str:
    """The higher of two readings of the excess cost: in USD (critical >= $500, high >= $100,
    medium >= $25) and relative to baseline (critical >= +300%, high >= +100%, medium >= +50%)."""
    excess = float(excess_cost_usd or 0.0)
    ratio = float(pct_above_baseline or 0.0)
    by_usd = next((name for name, floor in thresholds if excess >= floor), "low")
    by_ratio = next((name for name, floor in SEVERITY_RATIOS if ratio >= floor), "low")
    return max(by_usd, by_ratio, key=_RANK.__getitem__) if excess > 0 else "low"


def parse_severity_thresholds(text: str) -> tuple[tuple[str, float], ...]:
    """`"25,100,500"` (medium, high, critical floors in USD) -> thresholds, highest first."""
    try:
        medium, high, critical = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"expected three increasing USD amounts 'medium,high,critical', got {text!r}"
        ) from None
    if not 0 <= medium <= high <= critical:
        raise ValueError(f"expected three increasing USD amounts, got {text!r}")
    return (("critical", critical), ("high", high), ("medium", medium))


def dedup_key(spike_id: str) -> str:
    """One key per spike, shared by every channel and kind (PagerDuty groups on it)."""
    return f"costwatch-{spike_id}"


def incident_dedup_key(incident: Mapping[str, Any]) -> str:
    """The incident's own key (kept when late data moves its spike's start)."""
    return incident.get("dedup_key") or dedup_key(incident["spike_id"])


def pipeline_dedup_key(at: datetime) -> str:
    """A failing pipeline alerts once per hour, whether `costwatch run` or a sensor saw it."""
    return f"costwatch-pipeline-failed-{at:%Y%m%dT%H}"

"""Spike detection in plain Python: the reference for `marts.cost_baseline_hourly`.

The dbt model walks the hours with a recursive CTE; this module walks them with a loop, with the
same rules and defaults (dbt_project.yml vars `spike_*`). It needs no database, so the rules are
unit-tested here, and the integration tests check that the SQL agrees with it on seeded data.

Rules (CONTRACT section 5): the baseline of an hour is the median cost of the same hour of day
over the previous `baseline_days` days, leaving out gap hours, the hour still filling and hours
of earlier spikes; fewer than `min_observations` such hours: no baseline. A spike hour is complete,
has data, and costs more than baseline * (1 + threshold_pct) and more than the noise floor above
it. A spike is confirmed by `min_hours` consecutive spike hours, starts at the first of the
consecutive hours above baseline * (1 + threshold_pct) leading into them, and ends after
`end_hours` hours that are not spike hours. Spike hours are left out of later baselines for at most
`max_excluded_hours` after the spike's start (a longer spike is a new level the baseline learns),
and only when the spike was found with at least `min_history_days_to_exclude` days of data before
it (a young baseline's mistakes must not keep it young).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Settings:
    """The detection defaults; each is a dbt var (`spike_<name>`)."""

    baseline_days: int = 7
    min_baseline_observations: int = 3
    threshold_pct: float = 0.20
    min_excess_usd: float = 0.10
    noise_sigmas: float = 2.25
    min_hours: int = 3
    end_hours: int = 2
    max_excluded_hours: int = 24
    min_history_days_to_exclude: int = 5


@dataclass(frozen=True)
class Hour:
    """One hour of `intermediate.int_detection_hourly` (consecutive hours, gaps included)."""

    hour: datetime
    total_cost_usd: float
    cost_variance_usd2: float = 0.0
    has_data: bool = True
    is_complete: bool = True


@dataclass
class Verdict:
    hour: datetime
    baseline_cost_usd: float | None
    baseline_observations: int
    noise_floor_usd: float
    is_spike_hour: bool
    spike_id: str | None = None


@dataclass
class _Walk:
    history: list[float | None]
    variances: list[float | None]
    run: int = 0
    above: int = 0
    in_spike: bool = False
    quiet: int = 0
    start: int | None = None
    excluding: bool = False
    spans: list[list[int]] = field(default_factory=list)  # [first, last spike hour] per spike


def spike_id(start: datetime) -> str:
    """The stable id of a spike: its first hour, 'spike-2026-11-29T03'."""
    return f"spike-{start:%Y-%m-%dT%H}"


def noise_floor(settings: Settings, variances: Sequence[float], observations: int) -> float:
    """The excess a spike hour must exceed: the dollar floor, or sigmas standard errors of
    (cost - median of n observations) = se * sqrt(1 + pi / 2n)."""
    if not variances or observations == 0:
        return settings.min_excess_usd
    std_error = math.sqrt(statistics.median(variances))
    inflation = math.sqrt(1 + math.pi / (2 * observations))
    return max(settings.min_excess_usd, settings.noise_sigmas * std_error * inflation)


def detect(hours: Sequence[Hour], settings: Settings | None = None) -> list[Verdict]:
    """Walk consecutive hours in order and judge each one (see the module's rules)."""
    settings = settings or Settings()
    span = 24 * settings.baseline_days
    walk = _Walk(history=[None] * span, variances=[None] * span)
    verdicts: list[Verdict] = []
    for index, hour in enumerate(hours):
        same_hours = [span - 24 * k for k in range(1, settings.baseline_days + 1)]
        observed = [walk.history[i] for i in same_hours if walk.history[i] is not None]
        variances = [walk.variances[i] for i in same_hours if walk.variances[i] is not None]
        baseline = (
            statistics.median(observed)
            if len(observed) >= settings.min_baseline_observations
            else None
        )
        floor = noise_floor(settings, variances, len(observed))
        cost = float(hour.total_cost_usd)
        is_spike_hour = (
            hour.is_complete
            and hour.has_data
            and baseline is not None
            and cost > baseline * (1 + settings.threshold_pct)
            and cost - baseline > floor
        )
        is_above = (
            hour.is_complete
            and hour.has_data
            and baseline is not None
            and cost > baseline * (1 + settings.threshold_pct)
        )
        walk.above = min(walk.above + 1, 23) if is_above else 0
        null_count = 0
        if is_spike_hour:
            walk.run += 1
            if walk.in_spike:
                if walk.excluding and index - walk.spans[-1][0] < settings.max_excluded_hours:
                    null_count = walk.quiet + 1
                walk.spans[-1][1] = index
            elif walk.run >= settings.min_hours:
                walk.in_spike = True
                walk.excluding = index // 24 >= settings.min_history_days_to_exclude
                null_count = walk.above if walk.excluding else 0
                walk.spans.append([index - walk.above + 1, index])
            walk.quiet = 0
        else:
            walk.run = 0
            if walk.in_spike:
                walk.quiet += 1
                if walk.quiet >= settings.end_hours:
                    walk.in_spike = False
                    walk.quiet = 0
        observation = hour.has_data and hour.is_complete
        walk.history = walk.history[1:] + [cost if observation else None]
        walk.variances = walk.variances[1:] + [
            float(hour.cost_variance_usd2) if observation else None
        ]
        if null_count:
            walk.history[span - null_count :] = [None] * null_count
            walk.variances[span - null_count :] = [None] * null_count
        verdicts.append(
            Verdict(hour.hour, baseline, len(observed), floor, is_spike_hour, spike_id=None)
        )
    for first, last in walk.spans:
        for verdict in verdicts[first : last + 1]:
            verdict.spike_id = spike_id(verdicts[first].hour)
    return verdicts


def spikes(verdicts: Sequence[Verdict]) -> list[str]:
    """The spike ids, in order."""
    return list(dict.fromkeys(v.spike_id for v in verdicts if v.spike_id))

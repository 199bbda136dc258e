"""Spike detection in plain Python: the test reference for `marts.cost_baseline_hourly`.

The dbt model walks the hours with a recursive CTE; this module walks them with a loop, with the
same rules and defaults (dbt_project.yml vars `spike_*`). It needs no database, so the rules are
unit-tested on their own, and the integration tests check that the SQL agrees with it hour by hour.
The product has one implementation, the dbt model; this is a second one, written to be read.

Method (CONTRACT section 5; the model's opening comment has the why):
- profile: for hour h, the median of the last `baseline_days` usable observations of the same hour
  of day on earlier days of the same day type (weekday / weekend), within `lookback_days`. An
  observation is stored normalised by the level in force when it was seen (cost / level), so a
  profile made of old days does not lag growth. Fewer than `min_baseline_observations`: no baseline.
- level: the median of cost / profile over the last `level_hours` usable hours that had a profile
  (within `level_lookback_hours`); with fewer than `level_min_hours` of them the previous level
  carries on (1.0 at first).
- baseline = profile * level; noise floor = max(min_excess_usd, noise_sigmas * standard error *
  sqrt(1 + pi / 2n + pi / 2m)) for a median of n profile and m level observations.
- spike hour: complete, has data, cost > baseline * (1 + threshold_pct) and excess > noise floor.
- confirmed by `min_hours` consecutive spike hours, or `min_severe_hours` consecutive severe
  ones (at least `severe_pct` above baseline); starts at the first of the consecutive hours above
  baseline * (1 + threshold_pct) leading into the run (at most 23 back); ends after `end_hours`
  hours that are not spike hours. A confirmed spike's hours are left out of everything later
  (profile, level, noise) for at most `max_excluded_hours` after its start, and only when it was
  found with at least `min_history_days_to_exclude` days of data before it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

WEEKEND = (6, 7)  # ISO weekdays


@dataclass(frozen=True)
class Settings:
    """The detection defaults; each is a dbt var (`spike_<name>`)."""

    baseline_days: int = 7
    lookback_days: int = 28
    min_baseline_observations: int = 3
    level_hours: int = 24
    level_min_hours: int = 6
    level_lookback_hours: int = 168
    level_guard_hours: int = 6
    threshold_pct: float = 0.20
    severe_pct: float = 1.0
    severe_noise_factor: float = 2.0
    lead_noise_share: float = 0.5
    min_excess_usd: float = 0.10
    noise_sigmas: float = 2.25
    min_hours: int = 3
    min_severe_hours: int = 2
    end_hours: int = 2
    max_excluded_hours: int = 24
    min_history_days_to_exclude: int = 5
    weekend_isodow: tuple[int, ...] = WEEKEND
    # the method: 'profile_level' (the product's), or for comparison 'median' (the same hour of
    # the previous baseline_days days, every day alike, no level) and 'day_type_median' (the
    # profile of same-day-type days with no level term)
    method: str = "profile_level"


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
    level: float = 1.0
    is_severe: bool = False
    spike_id: str | None = None
    confirmed_at: datetime | None = None  # the hour whose completion confirmed the spike


@dataclass
class _Walk:
    norm: list[float | None]  # cost / level, per hour (None: no observation)
    variances: list[float | None]  # variance / level^2
    ratios: list[float | None]  # cost / profile, for the level
    level: float = 1.0
    run: int = 0
    severe_run: int = 0
    above: int = 0
    in_spike: bool = False
    quiet: int = 0  # consecutive hours of a spike not above the threshold
    dip: int = 0  # consecutive hours of a spike that are not spike hours
    excluding: bool = False
    spans: list[list[int]] = field(default_factory=list)  # [first, last, confirmed] per spike


def spike_id(start: datetime) -> str:
    """The stable id of a spike: its first hour, 'spike-2026-11-29T03'."""
    return f"spike-{start:%Y-%m-%dT%H}"


def noise_floor(
    settings: Settings, variances: Sequence[float], observations: int, level_hours: int = 0
) -> float:
    """The excess a spike hour must exceed: the dollar floor, or sigmas standard errors of
    (cost - baseline), the baseline a median of n profile and m level observations."""
    if not variances or observations == 0:
        return settings.min_excess_usd
    std_error = math.sqrt(statistics.median(variances))
    extra = math.pi / (2 * observations) + (math.pi / (2 * level_hours) if level_hours else 0.0)
    return max(settings.min_excess_usd, settings.noise_sigmas * std_error * math.sqrt(1 + extra))


def is_weekend(hour: datetime, settings: Settings) -> bool:
    return hour.astimezone(UTC).isoweekday() in settings.weekend_isodow


def detect(hours: Sequence[Hour], settings: Settings | None = None) -> list[Verdict]:
    """Walk consecutive hours in order and judge each one (see the module's rules)."""
    s = settings or Settings()
    n_hours = len(hours)
    walk = _Walk(norm=[None] * n_hours, variances=[None] * n_hours, ratios=[None] * n_hours)
    verdicts: list[Verdict] = []
    for i, hour in enumerate(hours):
        # --- the profile: same hour of day, earlier days of the same type
        obs: list[float] = []
        obs_var: list[float] = []
        if s.method == "median":
            back = range(1, s.baseline_days + 1)
        else:
            back = range(1, s.lookback_days + 1)
        weekend = is_weekend(hour.hour, s)
        for d in back:
            j = i - 24 * d
            if j < 0 or len(obs) >= s.baseline_days:
                break
            if s.method != "median" and is_weekend(hour.hour - timedelta(days=d), s) != weekend:
                continue
            if walk.norm[j] is not None:
                obs.append(walk.norm[j])
                obs_var.append(walk.variances[j])
        profile = statistics.median(obs) if len(obs) >= s.min_baseline_observations else None
        # --- the level: median of cost / profile over the last usable hours
        level_samples = 0
        if s.method == "profile_level":
            # the level stops at the current run of hours above the threshold (at most
            # level_guard_hours back): an incident not yet confirmed does not raise its baseline
            guard = 0 if walk.in_spike else min(walk.above, s.level_guard_hours)
            recent = [
                r
                for r in reversed(
                    walk.ratios[max(0, i - s.level_lookback_hours) : max(0, i - guard)]
                )
                if r is not None
            ][: s.level_hours]
            if len(recent) >= s.level_min_hours and statistics.median(recent) > 0:
                walk.level = statistics.median(recent)
                level_samples = len(recent)
        level = walk.level if s.method == "profile_level" else 1.0
        baseline = profile * level if profile is not None else None
        floor = noise_floor(s, [v * level * level for v in obs_var], len(obs), level_samples)
        cost = float(hour.total_cost_usd)
        usable = hour.is_complete and hour.has_data
        is_above = usable and baseline is not None and cost > baseline * (1 + s.threshold_pct)
        # a leading hour of a spike: above the threshold and beyond part of the noise floor
        is_lead = is_above and cost - baseline > s.lead_noise_share * floor
        is_spike_hour = is_above and cost - baseline > floor
        is_severe = (
            is_spike_hour
            and cost >= baseline * (1 + s.severe_pct)
            and cost - baseline > s.severe_noise_factor * floor
        )
        walk.above = min(walk.above + 1, 23) if is_lead else 0
        null_count = 0
        if is_spike_hour:
            walk.run += 1
            walk.severe_run = walk.severe_run + 1 if is_severe else 0
            if walk.in_spike:
                if walk.excluding and i - walk.spans[-1][0] < s.max_excluded_hours:
                    null_count = walk.dip + 1
                walk.spans[-1][1] = i
            elif walk.run >= s.min_hours or walk.severe_run >= s.min_severe_hours:
                walk.in_spike = True
                walk.excluding = i // 24 >= s.min_history_days_to_exclude
                null_count = walk.above if walk.excluding else 0
                walk.spans.append([i - walk.above + 1, i, i])
            walk.quiet = 0
            walk.dip = 0
        else:
            walk.run = 0
            walk.severe_run = 0
            if walk.in_spike:
                # a spike ends after end_hours hours not even above the threshold; an hour
                # above it but within the noise is a dip that does not end the spike
                walk.dip += 1
                walk.quiet = 0 if is_above else walk.quiet + 1
                if walk.quiet >= s.end_hours:
                    walk.in_spike = False
                    walk.quiet = walk.dip = 0
        if usable:
            walk.norm[i] = cost / level
            walk.variances[i] = float(hour.cost_variance_usd2) / (level * level)
            walk.ratios[i] = cost / profile if profile else None
        for k in range(i - null_count + 1, i + 1) if null_count else ():
            walk.norm[k] = walk.variances[k] = walk.ratios[k] = None
        verdicts.append(
            Verdict(
                hour.hour,
                baseline,
                len(obs),
                floor,
                is_spike_hour,
                level=level,
                is_severe=is_severe,
            )
        )
    for first, last, confirmed_index in walk.spans:
        for verdict in verdicts[first : last + 1]:
            verdict.spike_id = spike_id(verdicts[first].hour)
            verdict.confirmed_at = verdicts[confirmed_index].hour
    return verdicts


def spikes(verdicts: Sequence[Verdict]) -> list[str]:
    """The spike ids, in order."""
    return list(dict.fromkeys(v.spike_id for v in verdicts if v.spike_id))


def confirmations(verdicts: Sequence[Verdict]) -> dict[str, datetime]:
    """Each spike's id and the hour whose completion confirmed it."""
    return {v.spike_id: v.confirmed_at for v in verdicts if v.spike_id and v.confirmed_at}

"""The product's traffic over the period: the day, the week, a trend, a lasting step.

`TrafficShape` holds the knobs `costwatch seed` exposes; its defaults are the product the
scenarios have always simulated (weekends at 65% of a weekday, no trend, no step), so default
data is unchanged. `hourly_level` turns it into each hour's expected events relative to
`events_per_hour`, which is the mean hourly rate of a week at the start of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from orchestration.runbook.seed.timeline import HOUR_US, hour_starts, to_us

WEEKEND_LEVEL = 0.65  # default weekend traffic relative to a weekday
PEAK_HOUR_UTC = 15
DAILY_AMPLITUDE = 0.5  # afternoon peak 1.5x the day's mean, night trough 0.5x

# What the options accept (wider than the realistic ranges, narrower than nonsense).
WEEKEND_RATIO_RANGE = (0.05, 2.0)
DAILY_GROWTH_RANGE = (-0.2, 0.2)
STEP_FACTOR_RANGE = (0.1, 10.0)
MAGNITUDE_RANGE = (0.05, 10.0)
RAMP_HOURS_MAX = 48


class ShapeError(ValueError):
    """A traffic-shape option out of range; the message names it and the range."""


@dataclass(frozen=True)
class TrafficShape:
    """How traffic moves apart from the incident.

    weekend_ratio: Saturday and Sunday traffic relative to a weekday.
    daily_growth: compound change per day (0.03 = +3%/day, -0.02 = -2%/day), from the start.
    step_factor, step_at: from `step_at` on, traffic is `step_factor` times what it was (a launch,
        a new customer): a lasting change of level, not an incident.
    """

    weekend_ratio: float = WEEKEND_LEVEL
    daily_growth: float = 0.0
    step_factor: float = 1.0
    step_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_range("weekend ratio", self.weekend_ratio, WEEKEND_RATIO_RANGE)
        _check_range("daily growth", self.daily_growth, DAILY_GROWTH_RANGE)
        _check_range("step factor", self.step_factor, STEP_FACTOR_RANGE)
        if self.step_factor != 1.0 and self.step_at is None:
            raise ShapeError("a step factor needs the time it starts (step_at / --step-at)")

    def hourly_level(self, start_us: int, hours: int, *, weekend: bool = True) -> np.ndarray:
        """Each hour's traffic relative to `events_per_hour`; `weekend=False` gives a weekday's
        level at every hour (what incidents are sized on)."""
        stamps = hour_starts(start_us, hours).astype("datetime64[us]")
        hour_of_day = (stamps.astype("datetime64[h]").astype(np.int64)) % 24
        weekday = (stamps.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 0 = Monday
        daily = 1.0 + DAILY_AMPLITUDE * np.cos(2 * np.pi * (hour_of_day + 0.5 - PEAK_HOUR_UTC) / 24)
        ratio = self.weekend_ratio
        weekly = np.where((weekday >= 5) & weekend, ratio, 1.0)
        level = daily * weekly / ((5 + 2 * ratio) / 7)
        if self.daily_growth:
            days = np.arange(hours, dtype=float) / 24.0
            level = level * (1.0 + self.daily_growth) ** days
        if self.step_at is not None and self.step_factor != 1.0:
            step_us = to_us(self.step_at)
            # An hour the step falls inside gets the share of it after the step.
            after = np.clip((hour_starts(start_us, hours) + HOUR_US - step_us) / HOUR_US, 0.0, 1.0)
            level = level * (1.0 + (self.step_factor - 1.0) * after)
        return level


def ramp_strength(
    hour_starts_us: np.ndarray, onset_us: int, ramp_hours: float | None
) -> np.ndarray | None:
    """Share of the incident in force in each hour: 1 from the onset, or rising linearly to 1
    over `ramp_hours` (the hour's mid-point on the line). None when there is no ramp."""
    if not ramp_hours:
        return None
    mid = (hour_starts_us - onset_us) / HOUR_US + 0.5
    return np.clip(mid / ramp_hours, 0.0, 1.0)


def check_ramp_hours(ramp_hours: float | None) -> None:
    if ramp_hours is not None and not 0 < ramp_hours <= RAMP_HOURS_MAX:
        raise ShapeError(f"ramp hours must be between 0 and {RAMP_HOURS_MAX}: {ramp_hours}")


def check_magnitude(magnitude: float) -> None:
    _check_range("incident magnitude", magnitude, MAGNITUDE_RANGE)


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not (low <= value <= high):
        raise ShapeError(f"{name} must be between {low} and {high}: {value}")

"""Hourly cost series shaped like real LLM products, for the detection tests.

Each hour's cost is drawn the way `costwatch seed` builds it, at the hour's grain: Poisson events
grouped into sessions of ~3.2, each session's cost log-normal (mean $0.0118, sd $0.0153, as seeded
traffic measures), so the cost and its session variance (`session_cost_sq_usd`) carry realistic
noise (hours vary ~0.64x their session standard error, as in seeded data).
The shape: a daily curve (peak 15:00 UTC, trough at half the mean), weekends at
`weekend_ratio` of a weekday, a trend of `growth_per_day` (compounded), and any multiplicative
`effects` (incidents, steps, ramps) on top. Written straight into
`intermediate.int_detection_hourly_costs`, the detection models then run on it as on real data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from tests.support.detection import Hour

SESSION_EVENTS = 3.16
SESSION_COST_MEAN = 0.0118
SESSION_COST_SD = 0.0153
NOISE_SHARE = 0.64
_SIGMA2 = math.log(1 + (SESSION_COST_SD / SESSION_COST_MEAN) ** 2)
_MU = math.log(SESSION_COST_MEAN) - _SIGMA2 / 2


@dataclass(frozen=True)
class HourRow:
    hour: datetime
    requests: int
    total_cost_usd: float
    session_cost_sq_usd: float


Effect = Callable[[datetime], float]  # multiplier of the hour's expected cost


def series(
    start: datetime,
    days: float,
    *,
    events_per_hour: float = 150,
    weekend_ratio: float = 0.65,
    growth_per_day: float = 0.0,
    effects: Iterable[Effect] = (),
    seed: int = 0,
) -> list[HourRow]:
    """`days` of hours from `start` (UTC, on the hour); the last hour is the one still filling."""
    rng = np.random.default_rng(seed)
    effects = list(effects)
    rows = []
    mean_week = (5 + 2 * weekend_ratio) / 7
    for i in range(int(round(days * 24))):
        hour = start + timedelta(hours=i)
        daily = 1.0 + 0.5 * math.cos(2 * math.pi * (hour.hour + 0.5 - 15) / 24)
        weekly = weekend_ratio if hour.isoweekday() >= 6 else 1.0
        trend = (1 + growth_per_day) ** (i / 24)
        factor = math.prod(effect(hour) for effect in effects)
        rate = events_per_hour * daily * weekly / mean_week * trend * factor
        sessions = rng.poisson(rate / SESSION_EVENTS)
        costs = rng.lognormal(_MU, math.sqrt(_SIGMA2), size=sessions)
        # seeded traffic spreads features evenly over an hour's sessions: its cost varies
        # ~0.64x what independent sessions would (measured: 16% against 25% at 150 events/h)
        expected = rate / SESSION_EVENTS * SESSION_COST_MEAN
        total = expected + NOISE_SHARE * (float(costs.sum()) - expected) if sessions else 0.0
        rows.append(
            HourRow(
                hour=hour,
                requests=int(round(sessions * SESSION_EVENTS)),
                total_cost_usd=max(total, 0.0),
                session_cost_sq_usd=float((costs * costs).sum()),
            )
        )
    return rows


def step(at: datetime, factor: float, hours: float = math.inf) -> Effect:
    """Cost x `factor` from `at` for `hours` (an incident, or with no end a new level)."""
    end = at + timedelta(hours=hours) if hours != math.inf else None
    return lambda hour: factor if hour >= at and (end is None or hour < end) else 1.0


def ramp(at: datetime, factor: float, over_hours: int) -> Effect:
    """Cost rising linearly from x1 at `at` to x`factor` `over_hours` later, then staying."""

    def effect(hour: datetime) -> float:
        k = (hour - at) / timedelta(hours=1) + 1
        if k <= 0:
            return 1.0
        return 1 + (factor - 1) * min(1.0, k / over_hours)

    return effect


def as_hours(rows: list[HourRow]) -> list[Hour]:
    """The reference's input: what int_detection_hourly makes of these rows."""
    return [
        Hour(r.hour, r.total_cost_usd, r.session_cost_sq_usd, r.requests > 0, i < len(rows) - 1)
        for i, r in enumerate(rows)
    ]


def load(conn, rows: list[HourRow]) -> None:
    """Replace intermediate.int_detection_hourly_costs with these hours (the newest event of
    each hour is its last minute; the last row is the hour still filling)."""
    conn.execute("create schema if not exists intermediate")
    conn.execute("drop table if exists intermediate.int_detection_hourly_costs cascade")
    conn.execute(
        """
        create table intermediate.int_detection_hourly_costs (
            hour timestamptz, requests bigint, total_cost_usd numeric,
            session_cost_sq_usd numeric, newest_event_at timestamptz)
        """
    )
    with conn.cursor().copy("copy intermediate.int_detection_hourly_costs from stdin") as copy:
        for r in rows:
            if r.requests > 0:
                copy.write_row(
                    (
                        r.hour,
                        r.requests,
                        r.total_cost_usd,
                        r.session_cost_sq_usd,
                        r.hour + timedelta(minutes=59),
                    )  # fmt: skip
                )
    conn.commit()

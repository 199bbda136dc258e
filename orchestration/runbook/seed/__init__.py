"""Synthetic events for `costwatch seed --scenario NAME`: a realistic product plus one incident.

The baseline is an LLM product with daily and weekly seasonality, Zipf-like users in sessions,
several features, models, tools and clients, heavy-tailed tokens and list-price costs. Each
scenario then changes the data from the onset (by default 10 hours before `end`) the way that
real incident would, so the runbook's queries (and costwatch's diagnosis) can tell the
incidents apart.

The package, by concern:
  catalog     the product's features, models, prices, tools, clients (data only)
  timeline    time units and conversions
  shape       traffic over the period: day, week, weekend ratio, trend, a lasting step
  simulator   the product's normal life: users, sessions, tokens, tool calls, routine changes
  scenarios   the registry of scenarios, one function per incident (magnitude, ramp)
  rows        text rows for COPY, feature flags

Generation is vectorised with numpy and loaded with COPY in one transaction: all or nothing.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import psycopg

from orchestration.runbook.seed import rows
from orchestration.runbook.seed.events import Events
from orchestration.runbook.seed.rows import SeedData
from orchestration.runbook.seed.scenarios import (
    INCIDENT_HOURS_BEFORE_END,
    OUTAGE_FAILURE_RATE,
    REGISTRY,
    SCENARIOS,
    Incident,
)
from orchestration.runbook.seed.shape import (
    WEEKEND_LEVEL,
    ShapeError,
    TrafficShape,
    check_magnitude,
    check_ramp_hours,
    ramp_strength,
)
from orchestration.runbook.seed.simulator import TOOLS, Outage, Simulator
from orchestration.runbook.seed.timeline import HOUR_US, as_utc, default_end, hour_starts, to_us

__all__ = [
    "DEFAULT_EVENTS_PER_HOUR",
    "INCIDENT_HOURS_BEFORE_END",
    "SCENARIOS",
    "WEEKEND_LEVEL",
    "SeedData",
    "SeedSummary",
    "ShapeError",
    "TrafficShape",
    "UnknownScenario",
    "default_end",
    "generate",
    "seed",
]

DEFAULT_EVENTS_PER_HOUR = 1000


class UnknownScenario(ValueError):
    """A scenario name that does not exist; the message lists the valid ones."""

    def __init__(self, name: str):
        super().__init__(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
        self.name = name


@dataclass(frozen=True)
class SeedSummary:
    scenario: str
    start: datetime
    end: datetime
    onset: datetime | None
    inference_events: int
    tool_calls: int
    change_events: int


def seed(
    conn: psycopg.Connection,
    scenario: str,
    *,
    days: int = 14,
    events_per_hour: int = DEFAULT_EVENTS_PER_HOUR,
    seed: int = 0,
    end: datetime | None = None,
    replace: bool = False,
    hours: int | None = None,
    shape: TrafficShape | None = None,
    onset: datetime | None = None,
    ramp_hours: float | None = None,
    magnitude: float = 1.0,
) -> SeedSummary:
    """Append `days` of synthetic data ending at `end`, with `scenario`'s incident, in one commit.

    `replace` first empties the three raw tables (feature flags are upserted, never deleted).
    `shape` sets the traffic's weekly cycle, trend and any lasting step; `onset` the incident's
    start (default: 10 hours before `end`); `ramp_hours` makes it reach full strength over that
    many hours; `magnitude` scales its extra effect. Same arguments give the same rows; ids
    carry a tag of the arguments so that loads with different arguments appended to the same
    tables never collide.
    """
    start, end, onset_at = _period(scenario, days, events_per_hour, end, hours, onset)
    data = generate(
        scenario,
        start=start,
        end=end,
        events_per_hour=events_per_hour,
        seed=seed,
        shape=shape,
        onset=onset,
        ramp_hours=ramp_hours,
        magnitude=magnitude,
    )
    with conn.transaction():
        with conn.cursor() as cur:
            if replace:
                cur.execute("truncate raw.inference_events, raw.tool_calls, raw.change_events")
            rows.write(cur, data)
            rows.upsert_flags(cur, end, reset=replace)
    conn.commit()
    return SeedSummary(
        scenario=scenario,
        start=start,
        end=end,
        onset=onset_at if REGISTRY[scenario].has_incident else None,
        inference_events=len(data.events),
        tool_calls=data.n_tool_calls,
        change_events=len(data.changes),
    )


def _period(
    scenario: str,
    days: int,
    events_per_hour: int,
    end: datetime | None,
    hours: int | None,
    onset: datetime | None,
) -> tuple[datetime, datetime, datetime]:
    """(start, end, onset) of a load, checked."""
    if scenario not in REGISTRY:
        raise UnknownScenario(scenario)
    if days <= 0 or events_per_hour <= 0 or (hours is not None and hours <= 0):
        raise ValueError("days, hours and events_per_hour must be positive")
    end = default_end() if end is None else as_utc(end)
    # `hours` (e.g. one more hour of events, appended to what is there) overrides `days`.
    start = end - (timedelta(hours=hours) if hours is not None else timedelta(days=days))
    if onset is None:
        onset = max(start, end - timedelta(hours=INCIDENT_HOURS_BEFORE_END))
    else:
        onset = as_utc(onset)
        if not start <= onset < end:
            raise ShapeError(
                f"the onset {onset:%Y-%m-%d %H:%M} is outside the seeded period "
                f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}"
            )
    return start, end, onset


# --------------------------------------------------------------------------- generation


def generate(
    scenario: str,
    *,
    start: datetime,
    end: datetime,
    events_per_hour: int,
    seed: int = 0,
    shape: TrafficShape | None = None,
    onset: datetime | None = None,
    ramp_hours: float | None = None,
    magnitude: float = 1.0,
) -> SeedData:
    """The rows for one scenario, without touching a database (deterministic in the arguments)."""
    spec = REGISTRY.get(scenario)
    if spec is None:
        raise UnknownScenario(scenario)
    check_ramp_hours(ramp_hours)
    check_magnitude(magnitude)
    shape = shape or TrafficShape()
    start_us = to_us(start)
    end_us = to_us(end)
    hours = max(1, (end_us - start_us) // HOUR_US)
    if onset is None:
        onset_us = max(start_us, end_us - INCIDENT_HOURS_BEFORE_END * HOUR_US)
    else:
        onset_us = to_us(onset)
    incident_end_us = onset_us + HOUR_US if spec.one_hour else end_us
    tag = hashlib.blake2b(
        _tag_text(scenario, seed, start_us, end_us, events_per_hour, shape, onset, ramp_hours,
                  magnitude).encode(),
        digest_size=5,
    ).hexdigest()  # fmt: skip

    # The baseline depends on the seed (and the traffic's shape) only, so every scenario shares
    # the same normal days; the incident draws from its own stream.
    base = Simulator(np.random.default_rng([seed, 0]), start_us, hours, events_per_hour, shape)
    events = base.baseline()
    sim = base.with_rng(np.random.default_rng([seed, zlib.crc32(scenario.encode()) + 1]))
    starts = hour_starts(start_us, hours)
    strength = ramp_strength(starts, onset_us, ramp_hours)
    extra = None
    if spec.apply is not None:
        incident = Incident(
            sim=sim,
            events=events,
            in_window=(events.t >= onset_us) & (events.t < incident_end_us),
            window_hours=np.arange(hours)[(starts >= onset_us) & (starts < incident_end_us)],
            strength=strength,
            magnitude=magnitude,
        )
        extra = spec.apply(incident)
    if extra is not None and len(extra):
        extra = extra.take(np.flatnonzero(extra.t < end_us))
        events = Events.concat([events, extra])
    events = events.take(np.argsort(events.t, kind="stable"))

    outage = None
    if spec.outage_tool is not None:
        outage = Outage(
            onset_us,
            incident_end_us,
            TOOLS.index(spec.outage_tool),
            OUTAGE_FAILURE_RATE,
            None if strength is None else _strength_at(strength, start_us),
        )
    tools = sim.tool_calls(events, end_us, outage)
    changes = sim.change_events(start_us, end_us, onset_us, spec.change)
    return SeedData(tag=tag, events=events, tools=tools, changes=changes)


def _strength_at(strength: np.ndarray, start_us: int):
    """The ramp's strength at times `t` (microseconds): that of their hour."""

    def at(t: np.ndarray) -> np.ndarray:
        hour = np.clip((t - start_us) // HOUR_US, 0, len(strength) - 1)
        return strength[hour]

    return at


def _tag_text(
    scenario: str,
    seed: int,
    start_us: int,
    end_us: int,
    events_per_hour: int,
    shape: TrafficShape,
    onset: datetime | None,
    ramp_hours: float | None,
    magnitude: float,
) -> str:
    """What the ids' tag hashes: the arguments (the new ones only when set, so default loads
    keep the ids they always had)."""
    text = f"{scenario}|{seed}|{start_us}|{end_us}|{events_per_hour}"
    extras = []
    if shape != TrafficShape():
        step_at = to_us(shape.step_at) if shape.step_at is not None else None
        extras.append(
            f"shape={shape.weekend_ratio},{shape.daily_growth},{shape.step_factor},{step_at}"
        )
    if onset is not None:
        extras.append(f"onset={to_us(onset)}")
    if ramp_hours:
        extras.append(f"ramp={ramp_hours}")
    if magnitude != 1.0:
        extras.append(f"magnitude={magnitude}")
    return "|".join([text, *extras])

"""Time as the generator counts it: int64 microseconds since the epoch, hours of the period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

US_PER_S = 1_000_000
HOUR_US = 3600 * US_PER_S
DAY_US = 24 * HOUR_US


def default_end(now: datetime | None = None) -> datetime:
    """Now (UTC), rounded down to the hour: the default end of the seeded period."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(minute=0, second=0, microsecond=0)


def as_utc(moment: datetime) -> datetime:
    """A naive timestamp is UTC; an aware one is converted to it."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_us(moment: datetime) -> int:
    delta = as_utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


def hour_starts(start_us: int, hours: int) -> np.ndarray:
    """The start (microseconds) of each hour of the period."""
    return start_us + np.arange(hours, dtype=np.int64) * HOUR_US

"""The detection rules in plain Python (tests/support/detection.py), without a database."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.detection import Hour, Settings, detect, noise_floor, spike_id, spikes

START = datetime(2026, 1, 1, tzinfo=UTC)


def hours(costs: list[float], *, gaps: tuple[int, ...] = (), variance: float = 0.0) -> list[Hour]:
    """Consecutive hours from START; the last one is still filling."""
    return [
        Hour(
            hour=START + timedelta(hours=i),
            total_cost_usd=0.0 if i in gaps else cost,
            cost_variance_usd2=0.0 if i in gaps else variance,
            has_data=i not in gaps,
            is_complete=i < len(costs) - 1,
        )
        for i, cost in enumerate(costs)
    ]


def test_spike_id_is_the_start_hour() -> None:
    assert spike_id(datetime(2026, 11, 29, 3, tzinfo=UTC)) == "spike-2026-11-29T03"


def test_no_baseline_before_three_days() -> None:
    verdicts = detect(hours([1.0] * 71 + [5.0] * 10))
    assert all(v.baseline_cost_usd is None for v in verdicts[:72])
    assert verdicts[72].baseline_cost_usd == 1.0 and verdicts[72].baseline_observations == 3
    assert not any(v.is_spike_hour for v in verdicts[:72])  # 71..: no baseline yet


def test_past_spikes_do_not_teach_the_baseline() -> None:
    costs = [1.0] * 240
    for day in (5, 6, 7, 8):
        for h in range(10, 14):
            costs[24 * day + h] = 3.0
    verdicts = detect(hours(costs + [1.0]))
    day10 = verdicts[24 * 9 + 10]
    assert day10.baseline_cost_usd == 1.0 and day10.baseline_observations == 3
    assert spikes(verdicts) == [f"spike-2026-01-{d + 1:02d}T10" for d in (5, 6, 7, 8)]


def test_a_young_baseline_does_not_keep_itself_young() -> None:
    """Data from a Thursday: the 3-day median of Fri, Sat, Sun calls Monday a spike. Monday is
    not left out, so from Wednesday on the baseline is right again."""
    level = {0: 1.0, 1: 1.0, 2: 0.65, 3: 0.65}  # Thu, Fri, Sat, Sun; weekdays 1.0
    costs = [level.get(i // 24, 1.0) for i in range(24 * 9)]
    verdicts = detect(hours(costs + [1.0]))
    days = {v.hour.day for v in verdicts if v.is_spike_hour}
    assert days <= {5, 6}  # Monday 5th (and maybe Tuesday 6th), never later


def test_blip_dip_gap_and_filling_hour() -> None:
    costs = [1.0] * 96
    for h in (2, 3, 6, 7, 8, 12, 13, 14, 16, 17, 20, 21, 23):
        costs[72 + h] = 3.0
    costs[95] = 9.0  # still filling
    verdicts = detect(hours(costs, gaps=(94,)))
    assert spikes(verdicts) == ["spike-2026-01-04T06", "spike-2026-01-04T12"]
    by_hour = {v.hour.hour: v for v in verdicts[72:]}
    assert by_hour[15].spike_id == "spike-2026-01-04T12"  # a one-hour dip does not split it
    assert by_hour[18].spike_id is None
    assert not by_hour[23].is_spike_hour


def test_noise_floor_grows_for_a_young_baseline() -> None:
    settings = Settings()
    three = noise_floor(settings, [0.04] * 3, 3)
    seven = noise_floor(settings, [0.04] * 7, 7)
    assert three == pytest.approx(2.25 * 0.2 * math.sqrt(1 + math.pi / 6))
    assert three > seven > 2.25 * 0.2
    assert noise_floor(settings, [], 0) == settings.min_excess_usd


def test_small_excess_within_the_noise_is_no_spike() -> None:
    costs = [1.0] * 96
    for h in (10, 11, 12):
        costs[72 + h] = 1.5
    for h in (14, 15, 16):
        costs[72 + h] = 1.6
    verdicts = detect(hours(costs, variance=0.04))
    assert spikes(verdicts) == ["spike-2026-01-04T14"]


def test_a_new_level_is_learned_not_a_spike_forever() -> None:
    """Cost doubles for good on day 4: a spike at first, then the baseline learns the new level."""
    costs = [1.0] * 72 + [2.0] * (24 * 7) + [2.0]
    verdicts = detect(hours(costs))
    assert spikes(verdicts) == ["spike-2026-01-04T00"]
    assert not verdicts[-2].is_spike_hour
    assert verdicts[-2].baseline_cost_usd == 2.0


def test_spike_starts_where_its_first_hours_rose_within_the_noise() -> None:
    """Hours 10-11 are 50% up (within the noise), 12 normal, 13 50% up, 14-16 beyond the noise:
    the spike starts at 13, the first of the hours above the 20% leading into it."""
    costs = [1.0] * 96
    for h in (10, 11, 13):
        costs[72 + h] = 1.5
    for h in (14, 15, 16):
        costs[72 + h] = 1.6
    verdicts = detect(hours(costs, variance=0.04))
    assert spikes(verdicts) == ["spike-2026-01-04T13"]

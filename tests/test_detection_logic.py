"""The detection rules in plain Python (tests/support/detection.py), without a database.

The reference is what tests compare the dbt model against, so its own rules are pinned here.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.detection import (
    Hour,
    Settings,
    confirmations,
    detect,
    noise_floor,
    spike_id,
    spikes,
)

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
ALIKE = Settings(weekend_isodow=())  # every day the same type


def hours(
    costs: list[float], *, gaps: tuple[int, ...] = (), variance: float = 0.0, start=MONDAY
) -> list[Hour]:
    """Consecutive hours from `start`; the last one is still filling."""
    return [
        Hour(
            hour=start + timedelta(hours=i),
            total_cost_usd=0.0 if i in gaps else cost,
            cost_variance_usd2=0.0 if i in gaps else variance,
            has_data=i not in gaps,
            is_complete=i < len(costs) - 1,
        )
        for i, cost in enumerate(costs)
    ]


def test_spike_id_is_the_start_hour() -> None:
    assert spike_id(datetime(2026, 11, 29, 3, tzinfo=UTC)) == "spike-2026-11-29T03"


def test_no_baseline_before_three_days_of_the_same_type() -> None:
    verdicts = detect(hours([1.0] * 71 + [5.0] * 10))
    assert all(v.baseline_cost_usd is None for v in verdicts[:72])
    assert verdicts[72].baseline_cost_usd == 1.0 and verdicts[72].baseline_observations == 3
    assert not any(v.is_spike_hour for v in verdicts[:72])


def test_weekend_is_compared_with_weekends() -> None:
    """Weekdays $1, weekends $0.4 from a Monday: the first weekend learns, the Monday after it
    is judged against weekdays, and a Saturday at $0.8 (+100% for a weekend, still under a
    weekday) is a spike hour once 3 weekend days are known."""
    costs = [0.4 if (i // 24) % 7 >= 5 else 1.0 for i in range(24 * 19)]
    saturday = 24 * 19  # day 19 = the third Saturday
    costs += [0.4] * 10 + [0.8] * 6 + [0.4] * 9
    verdicts = detect(hours(costs))
    assert all(v.baseline_cost_usd is None for v in verdicts[24 * 5 : 24 * 7])  # 1st weekend
    assert verdicts[24 * 7 + 10].baseline_cost_usd == pytest.approx(1.0)  # 2nd Monday
    assert not any(v.is_spike_hour for v in verdicts[:saturday])
    assert verdicts[saturday + 10].baseline_cost_usd == pytest.approx(0.4)
    assert spikes(verdicts) == ["spike-2026-01-24T10"]


def test_growth_moves_the_level_not_the_verdict() -> None:
    costs = [1.0 * 1.05 ** (i / 24) for i in range(24 * 21)]
    verdicts = detect(hours(costs), ALIKE)
    assert spikes(verdicts) == []
    assert not any(v.is_spike_hour for v in verdicts)
    assert verdicts[-2].level > 2.0  # 5%/day for 20 days, ~12 hours behind
    last = verdicts[-2]
    assert last.baseline_cost_usd == pytest.approx(costs[-2], rel=0.05)


def test_past_spikes_do_not_teach_the_baseline() -> None:
    costs = [1.0] * 240
    for day in (5, 6, 7, 8):
        for h in range(10, 14):
            costs[24 * day + h] = 3.0
    verdicts = detect(hours(costs + [1.0]), ALIKE)
    day10 = verdicts[24 * 9 + 10]
    assert day10.baseline_cost_usd == 1.0 and day10.baseline_observations == 5
    assert spikes(verdicts) == [f"spike-2026-01-{d + 5:02d}T10" for d in (5, 6, 7, 8)]


def test_severe_hours_confirm_in_two_a_moderate_run_in_three() -> None:
    costs = [1.0] * (24 * 6)
    costs[24 * 5 + 10 : 24 * 5 + 14] = [2.5] * 4  # severe
    costs[24 * 5 + 18 : 24 * 5 + 22] = [1.5] * 4  # moderate
    verdicts = detect(hours(costs), ALIKE)
    confirmed = confirmations(verdicts)
    assert confirmed == {
        "spike-2026-01-10T10": MONDAY + timedelta(days=5, hours=11),
        "spike-2026-01-10T18": MONDAY + timedelta(days=5, hours=20),
    }


def test_one_hour_never_confirms() -> None:
    costs = [1.0] * (24 * 6)
    costs[24 * 5 + 10] = 40.0
    verdicts = detect(hours(costs), ALIKE)
    assert spikes(verdicts) == [] and verdicts[24 * 5 + 10].is_spike_hour


def test_a_lasting_step_becomes_the_new_normal() -> None:
    costs = [1.0] * (24 * 8) + [1.6] * (24 * 4)
    verdicts = detect(hours(costs), ALIKE)
    assert spikes(verdicts) == ["spike-2026-01-13T00"]
    last_spike_hour = max(v.hour for v in verdicts if v.spike_id)
    assert last_spike_hour - (MONDAY + timedelta(days=8)) <= timedelta(hours=48)
    assert verdicts[-2].baseline_cost_usd == pytest.approx(1.6)


def test_blip_dip_gap_and_filling_hour() -> None:
    costs = [1.0] * 96
    for h in (2, 6, 7, 8, 12, 13, 14, 16, 17, 20, 21, 23):
        costs[72 + h] = 1.5
    costs[95] = 9.0  # still filling
    verdicts = detect(hours(costs, gaps=(94,)), ALIKE)
    assert spikes(verdicts) == ["spike-2026-01-08T06", "spike-2026-01-08T12"]
    by_hour = {v.hour.hour: v for v in verdicts[72:]}
    assert by_hour[15].spike_id == "spike-2026-01-08T12"  # a one-hour dip does not split it
    assert by_hour[18].spike_id is None
    assert not by_hour[23].is_spike_hour


def test_noise_floor_grows_for_a_young_baseline() -> None:
    settings = Settings()
    three = noise_floor(settings, [0.04] * 3, 3)
    seven = noise_floor(settings, [0.04] * 7, 7)
    assert three == pytest.approx(2.25 * 0.2 * math.sqrt(1 + math.pi / 6))
    assert three > seven > 2.25 * 0.2
    assert noise_floor(settings, [0.04] * 7, 7, 24) > seven
    assert noise_floor(settings, [], 0) == settings.min_excess_usd

"""Detection on traffic shaped like real products, on real PostgreSQL and the real dbt models.

Each case writes an hourly series (tests/support/traffic.py: weekly cycles, trends, steps,
incidents, with seeded-traffic noise) into `intermediate.int_detection_hourly_costs` and runs
the detection models on it (`int_detection_hourly`, `cost_baseline_hourly`, `cost_spikes`); every
case also checks the SQL walk against the Python reference (tests/support/detection.py) hour by
hour. One database for the module, one case after another.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestration.core.config import Config
from orchestration.core.database import connect, dbt_env
from orchestration.defs.project import partial_parse_for_profile
from tests.conftest import PROJECT_ROOT
from tests.support import traffic
from tests.support.detection import detect

pytestmark = pytest.mark.timeout(900)

DBT = str(PROJECT_ROOT / ".venv" / "bin" / "dbt")
MODELS = "int_detection_hourly cost_baseline_hourly cost_spikes"
MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def detection(module_db_url: str, tmp_path_factory: pytest.TempPathFactory):
    """run(rows, *extra dbt args) -> (hours, spikes) of the detection marts on those rows."""
    target = tmp_path_factory.mktemp("dbt_detection_traffic")

    def dbt(*args: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            **dbt_env(module_db_url),
            "DBT_TARGET_PATH": str(target),
            "DBT_LOG_PATH": str(target),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        # the project's parse state for this database: dbt parses only what changed, not all
        partial_parse_for_profile(target, Config.load(database_url=module_db_url))
        command = [DBT, *args, "--project-dir", "dbt_project", "--profiles-dir", "dbt_project"]
        return subprocess.run(command, env=env, capture_output=True, text=True, cwd=PROJECT_ROOT)

    def run(rows: list[traffic.HourRow], *, compare: bool = True):
        with connect(module_db_url) as conn:
            traffic.load(conn, rows)
        result = dbt("run", "--select", MODELS)
        assert result.returncode == 0, result.stdout[-4000:]
        with connect(module_db_url) as conn:
            hours = fetch(conn, "select * from marts.cost_baseline_hourly order by hour")
            spikes = fetch(conn, "select * from marts.cost_spikes order by spike_start")
        if compare:
            assert_matches_reference(rows, hours)
        return hours, spikes

    run.dbt = dbt
    run.target = target
    return run


def fetch(conn, sql: str) -> list[dict]:
    cur = conn.execute(sql)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def assert_matches_reference(rows: list[traffic.HourRow], hours: list[dict]) -> None:
    """The SQL walk and the Python reference agree on every hour."""
    reference = detect(traffic.as_hours(rows))
    assert len(reference) == len(hours)
    for ref, got in zip(reference, hours, strict=True):
        where = got["hour"]
        assert (got["is_spike_hour"], got["spike_id"]) == (ref.is_spike_hour, ref.spike_id), where
        if ref.baseline_cost_usd is None:
            assert got["baseline_cost_usd"] is None, where
        else:
            assert got["baseline_cost_usd"] == pytest.approx(ref.baseline_cost_usd, rel=1e-9), where
        assert got["baseline_level"] == pytest.approx(ref.level, rel=1e-9), where


def onset_ok(spike: dict, onset: datetime) -> bool:
    return abs(spike["spike_start"] - onset) <= HOUR


# --------------------------------------------------------------------------------- quiet shapes


@pytest.mark.parametrize("start_day", [0, 3, 5, 6])  # Monday, Thursday, Saturday, Sunday
def test_weekly_cycle_first_weeks_are_quiet(detection, start_day: int) -> None:
    """Weekends at 40% of weekdays, data starting on several weekdays: no spike in 12 days, the
    first weekend days learn (no baseline) and the first weekdays after them are judged
    against weekdays, not against the weekend."""
    start = MONDAY + timedelta(days=start_day)
    rows = traffic.series(start, 12, weekend_ratio=0.4, seed=10 + start_day)
    hours, spikes = detection(rows)
    assert spikes == [], [s["spike_id"] for s in spikes]
    assert not any(h["is_spike_hour"] for h in hours if h["spike_id"])
    first_weekend = [h for h in hours if h["is_weekend"]][:24]
    assert all(h["baseline_cost_usd"] is None for h in first_weekend)
    # the first week of weekdays after it: judged (from its 3rd weekday of data on)
    after = [h for h in hours if not h["is_weekend"] and h["hour"] > first_weekend[-1]["hour"]]
    judged = [h for h in after[:120] if h["baseline_cost_usd"] is not None]
    assert judged, "the first weekdays after the first weekend have a baseline"
    # judged against weekdays: cost / baseline is ~1 (against the weekend's 40% it would be ~2.5)
    ratios = sorted(float(h["total_cost_usd"]) / h["baseline_cost_usd"] for h in judged)
    assert 0.85 < ratios[len(ratios) // 2] < 1.2, ratios[len(ratios) // 2]


@pytest.mark.parametrize("growth", [0.03, -0.03])
def test_growth_and_decline_of_3_percent_a_day_are_no_spike(detection, growth: float) -> None:
    rows = traffic.series(MONDAY + timedelta(days=2), 21, growth_per_day=growth, seed=21)
    hours, spikes = detection(rows)
    assert spikes == [], [s["spike_id"] for s in spikes]
    # the baseline followed the trend: over the last week cost / baseline is ~1
    ratios = sorted(
        float(h["total_cost_usd"]) / h["baseline_cost_usd"]
        for h in hours[-24 * 7 : -1]
        if h["baseline_cost_usd"]
    )
    assert 0.93 < ratios[len(ratios) // 2] < 1.07, ratios[len(ratios) // 2]
    # and the level did move with it
    levels = [h["baseline_level"] for h in hours if h["level_observations"]]
    assert (levels[-1] > 1.2) if growth > 0 else (levels[-1] < 0.8), levels[-1]


def test_low_volume_quiet_traffic_is_no_spike(detection) -> None:
    rows = traffic.series(MONDAY + timedelta(days=4), 16, events_per_hour=80, seed=31)
    _, spikes = detection(rows)
    assert spikes == [], [s["spike_id"] for s in spikes]


def test_a_lasting_step_up_is_the_new_normal_within_48_hours(detection) -> None:
    """+60% from a Wednesday 10:00 on (a launch): one spike at the step, over within 48 h."""
    step = MONDAY + timedelta(days=16, hours=10)
    rows = traffic.series(MONDAY, 21, effects=[traffic.step(step, 1.6)], seed=41)
    hours, spikes = detection(rows)
    assert len(spikes) == 1 and onset_ok(spikes[0], step), [s["spike_id"] for s in spikes]
    assert spikes[0]["spike_end"] - step <= timedelta(hours=48)
    later = [h for h in hours if h["hour"] >= step + timedelta(hours=48) and h["is_complete"]]
    assert later and not any(h["is_spike_hour"] for h in later)
    assert later[-1]["baseline_level"] / hours[24 * 16]["baseline_level"] > 1.4


# --------------------------------------------------------------------------------- incidents


def test_a_weekend_incident_is_found(detection) -> None:
    """+80% from a Saturday 12:00 (weekends at 50% of weekdays): judged against weekends."""
    onset = MONDAY + timedelta(days=19, hours=12)  # the 3rd Saturday: 4 weekend days before
    rows = traffic.series(
        MONDAY, 19.5 + 11 / 24, weekend_ratio=0.5, events_per_hour=300,
        effects=[traffic.step(onset, 1.8)], seed=51,
    )  # fmt: skip
    hours, spikes = detection(rows)
    assert len(spikes) == 1 and onset_ok(spikes[0], onset), [s["spike_id"] for s in spikes]
    at_onset = next(h for h in hours if h["hour"] == onset)
    assert at_onset["is_weekend"] and at_onset["pct_above_baseline"] > 0.4


def test_a_severe_spike_is_confirmed_in_2_hours(detection) -> None:
    """+180% from a Wednesday 14:00: the 2nd hour (15:00) confirms it, one pass after 16:00."""
    onset = MONDAY + timedelta(days=9, hours=14)
    rows = traffic.series(
        MONDAY, 9 + 19 / 24, events_per_hour=300, effects=[traffic.step(onset, 2.8)], seed=61
    )
    hours, spikes = detection(rows)
    assert len(spikes) == 1 and spikes[0]["spike_start"] == onset, spikes
    assert spikes[0]["confirmed_hour"] == onset + HOUR
    by_hour = {h["hour"]: h for h in hours}
    assert by_hour[onset]["is_severe_spike_hour"] and by_hour[onset + HOUR]["is_severe_spike_hour"]
    # a moderate spike (+60%) needs its 3rd hour
    rows = traffic.series(
        MONDAY, 9 + 19 / 24, events_per_hour=600, effects=[traffic.step(onset, 1.6)], seed=62
    )
    _, spikes = detection(rows)
    assert len(spikes) == 1 and spikes[0]["confirmed_hour"] >= onset + 2 * HOUR, spikes


def test_a_one_hour_blip_is_suspected_never_confirmed(detection) -> None:
    """+300% for one hour: a suspected spike (column and warning check), no spike."""
    blip = MONDAY + timedelta(days=8, hours=15)
    series = traffic.series(MONDAY, 10, effects=[traffic.step(blip, 4.0, hours=1)], seed=71)
    hours, spikes = detection(series)
    assert spikes == []
    by_hour = {h["hour"]: h for h in hours}
    assert by_hour[blip]["is_spike_hour"] and by_hour[blip]["is_suspected_spike"]
    assert by_hour[blip]["spike_id"] is None
    assert not by_hour[blip + HOUR]["is_suspected_spike"]

    # While the blip is the newest complete hour, the warning check fires and only warns.
    truncated = [r for r in series if r.hour <= blip + HOUR]
    detection(truncated)
    result = detection.dbt("test", "--select", "assert_detection_spikes_newest_hour_not_suspected")
    assert result.returncode == 0, result.stdout[-3000:]
    statuses = run_statuses(detection)
    assert statuses == {"assert_detection_spikes_newest_hour_not_suspected": "warn"}
    # one hour later it is a blip of the past: the check passes
    detection([r for r in series if r.hour <= blip + 2 * HOUR])
    detection.dbt("test", "--select", "assert_detection_spikes_newest_hour_not_suspected")
    assert run_statuses(detection) == {"assert_detection_spikes_newest_hour_not_suspected": "pass"}


def run_statuses(detection) -> dict[str, str]:
    """Each node of the last dbt invocation and its status (not the on-run-start hook, an
    `operation.*` result of every invocation)."""
    results = json.loads((Path(detection.target) / "run_results.json").read_text())
    return {
        r["unique_id"].split(".")[2]: r["status"]
        for r in results["results"]
        if not r["unique_id"].startswith("operation.")
    }


# --------------------------------------------------------------------------------- replay


def test_a_replay_hour_by_hour_gives_the_same_verdicts(detection) -> None:
    """The walk is causal: run on the data truncated at T, every hour before T is judged as in
    the full run, and the spikes confirmed by T are the same (id, start, confirming hour)."""
    onset = MONDAY + timedelta(days=10, hours=9)
    series = traffic.series(
        MONDAY, 11 + 12 / 24, events_per_hour=300, effects=[traffic.step(onset, 1.9)], seed=81
    )
    full_hours, full_spikes = detection(series, compare=False)
    full = {h["hour"]: h for h in full_hours}
    columns = ("baseline_cost_usd", "baseline_level", "noise_floor_usd", "is_spike_hour",
               "spike_run_hours", "is_spike_confirmed_hour", "is_severe_spike_hour")  # fmt: skip
    for cut in (onset - 5 * HOUR, onset + 2 * HOUR, onset + 4 * HOUR, onset + 9 * HOUR):
        hours, spikes = detection([r for r in series if r.hour <= cut], compare=False)
        assert hours[-1]["hour"] == cut and not hours[-1]["is_complete"]
        for h in hours[:-1]:
            assert {c: h[c] for c in columns} == {c: full[h["hour"]][c] for c in columns}, h["hour"]
        confirmed = [(s["spike_id"], s["spike_start"], s["confirmed_hour"]) for s in spikes]
        expected = [
            (s["spike_id"], s["spike_start"], s["confirmed_hour"])
            for s in full_spikes
            if s["confirmed_hour"] < cut
        ]
        assert confirmed == expected, cut
    assert len(full_spikes) == 1 and onset_ok(full_spikes[0], onset)

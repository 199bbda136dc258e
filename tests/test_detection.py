"""Spike detection and diagnosis on real PostgreSQL and real dbt, over every seeded scenario.

Each case is its own database: `costwatch seed` data (plus our own changes for the extra
scenarios), then dbt builds `+spike_diagnosis` (only what detection needs). Cases run on two
processes (the machine has 2 cores), each with one in-process dbt whose project is parsed once
(bench/accuracy.py's Worker) and one database name, dropped and created again per case.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from orchestration.core.database import connect, url_for_database
from orchestration.runbook.seed import INCIDENT_HOURS_BEFORE_END, seed
from tests.support.detection import Hour, detect

# All cases run in one module fixture; give it room on a busy machine.
pytestmark = pytest.mark.timeout(1800)

DAYS = 9
EVENTS_PER_HOUR = 150
SEEDS = (1, 2, 3)
# Each seed's incident starts on another weekday, in the busy hours (09:00-18:00 UTC): at ~150
# events an hour, a night hour holds ~60 events and its cost's noise (~30%) delays detection by
# a few hours; at the weekend traffic is 35% under the weekday-level median. Both are covered by
# their own scenarios below (a midnight onset at a realistic volume, a weekend).
# Dates are relative to the Monday of last week: data must lie in the past (staging quarantines
# rows stamped in the future), and each onset keeps its weekday and hour.
_NOW = datetime.now(UTC)
MONDAY = (_NOW - timedelta(days=_NOW.weekday() + 7)).replace(
    hour=0, minute=0, second=0, microsecond=0
)
ONSETS: dict[int, datetime] = {
    1: MONDAY + timedelta(days=2, hours=11),  # Wednesday 11:00
    2: MONDAY + timedelta(days=3, hours=15),  # Thursday 15:00
    3: MONDAY + timedelta(days=1, hours=9),  # Tuesday 09:00
}

# Expected rank-1 cause and the detail column it fills, per incident scenario.
EXPECTED: dict[str, tuple[str, str | None, str | None]] = {
    "traffic_surge": ("traffic_increase", None, None),
    "bot_traffic": ("traffic_increase", None, None),
    "autosave_loop": ("hidden_recompute", "trigger_type", "auto_save"),
    "undo_storm": ("hidden_recompute", "trigger_type", "undo"),
    "context_bloat": ("context_bloat", None, None),
    "model_change": ("output_growth", "model", "gpt-4o"),
    "feature_abuse": ("feature_concentration", "feature", "summarize"),
    "tool_outage": ("tool_retry_storm", "tool_name", "web_search"),
}
NO_SPIKE = ("quiet", "blip")


def end_for(seed_value: int) -> datetime:
    onset = ONSETS.get(seed_value, ONSETS[1] - timedelta(days=7 * (seed_value - 3)))
    return onset + timedelta(hours=INCIDENT_HOURS_BEFORE_END)


@dataclass
class Case:
    """One database: how to fill it, and what detection and diagnosis found in it."""

    name: str  # filled by fill_for(name), which returns the injected onset
    onset: datetime | None = None
    spikes: list[dict] = field(default_factory=list)
    diagnosis: list[dict] = field(default_factory=list)
    hours: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    error: str | None = None


def seeded(scenario: str, seed_value: int, **kwargs) -> Callable[[psycopg.Connection], datetime]:
    def fill(conn: psycopg.Connection) -> datetime | None:
        summary = seed(
            conn,
            scenario,
            days=kwargs.get("days", DAYS),
            events_per_hour=kwargs.get("events_per_hour", EVENTS_PER_HOUR),
            seed=seed_value,
            end=kwargs.get("end", end_for(seed_value)),
        )
        return summary.onset if scenario not in ("quiet",) else None

    return fill


def rows(conn: psycopg.Connection, sql: str) -> list[dict]:
    cur = conn.execute(sql)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def run_case(worker, name: str) -> Case:
    """Fill the worker's fresh database with case `name`, run detection, read the marts."""
    case = Case(name)
    worker.fresh_database()
    try:
        with connect(worker.url) as conn:
            case.onset = fill_for(name)(conn)
        try:
            worker.build()  # the models of +spike_diagnosis and the seeds they read
        except RuntimeError as err:
            case.error = str(err)[-3000:]
            return case
        with connect(worker.url) as conn:
            case.spikes = rows(conn, "select * from marts.cost_spikes order by spike_start")
            case.diagnosis = rows(
                conn, "select * from marts.spike_diagnosis order by spike_id, rank"
            )
            case.hours = rows(conn, "select * from marts.cost_baseline_hourly order by hour")
            case.inputs = rows(
                conn, "select * from intermediate.int_detection_hourly order by hour_index"
            )
    finally:
        if not os.environ.get("COSTWATCH_KEEP_TEST_DB"):
            worker.drop_database()
    return case


_WORKER = None


def _init_worker(server_url: str, tag: str) -> None:
    """A case process: one database name and one in-process dbt, parsed once, for its cases."""
    global _WORKER
    from bench.accuracy import Worker

    _WORKER = Worker(server_url, f"cw_test_det_{tag}_{os.getpid()}", {})


def _run_in_worker(name: str) -> Case:
    return run_case(_WORKER, name)


def run_cases(server_url: str, names: Iterable[str], workers: int = 2) -> dict[str, Case]:
    """Every case on `workers` processes, each taking the next case when it is free."""
    tag = f"{os.getpid()}"
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(server_url, tag)
        ) as pool:
            done = list(pool.map(_run_in_worker, names))
    finally:
        with connect(url_for_database(server_url, "postgres"), autocommit=True) as conn:
            left = conn.execute(
                "select datname from pg_database where datname like %s", (f"cw_test_det_{tag}_%",)
            ).fetchall()
            for (name,) in left:
                conn.execute(f'drop database if exists "{name}" with (force)')
        tmp = Path(os.environ.get("TMPDIR", "/tmp"))
        for target in tmp.glob(f"costwatch-accuracy-cw_test_det_{tag}_*"):
            shutil.rmtree(target, ignore_errors=True)
    return {case.name: case for case in done}


def verdict(case: Case, expected: tuple[str, str | None, str | None] | None) -> str | None:
    """None when the case is right, else what is wrong (one line)."""
    if case.error:
        return f"dbt failed: {case.error[-500:]}"
    if expected is None:
        if case.spikes:
            return f"expected no spike, got {[s['spike_id'] for s in case.spikes]}"
        return None
    if len(case.spikes) != 1:
        return f"expected one spike, got {[s['spike_id'] for s in case.spikes]}"
    spike = case.spikes[0]
    if abs(spike["spike_start"] - case.onset) > timedelta(hours=1):
        return f"spike_start {spike['spike_start']:%a %H:%M}, onset {case.onset:%a %H:%M}"
    top = [d for d in case.diagnosis if d["rank"] == 1]
    if not top:
        return "no diagnosis"
    cause, column, value = expected
    got = top[0]
    causes = [(d["cause"], d["contribution_usd"]) for d in case.diagnosis]
    if got["cause"] != cause:
        return f"rank 1 {got['cause']}, expected {cause}: {causes}"
    if column and got[column] != value:
        return f"{column} {got[column]!r}, expected {value!r}"
    return None


# --------------------------------------------------------------------------- scenarios of our own

PRICES = {
    m: p
    for m, p in __import__(
        "orchestration.runbook.seed.catalog", fromlist=["x"]
    ).MODEL_PRICES.items()
}


def price_case_sql(column: str) -> str:
    """SQL: the per-token price of `column` ('input' or 'output') of an event's model."""
    i = 0 if column == "input" else 1
    whens = " ".join(f"when '{m}' then {p[i] / 1e6!r}" for m, p in PRICES.items())
    return f"(case model {whens} end)"


def gradual_growth(conn: psycopg.Connection) -> None:
    """21 quiet days whose traffic grows steadily to 2x: a trend, never a spike."""
    end = MONDAY + timedelta(days=4, hours=18)
    seed(conn, "quiet", days=21, events_per_hour=100, seed=7, end=end)
    conn.execute(
        """
        insert into raw.inference_events
        select event_id || '-g', created_at + interval '7 minutes', user_id, session_id, feature,
               trigger_type, model, input_tokens, output_tokens, cost_usd, user_agent
        from raw.inference_events
        where (hashtext(event_id) & 1023) / 1024.0
              < extract(epoch from created_at - (%s::timestamptz - interval '21 days'))
                / extract(epoch from interval '21 days')
        """,
        (end,),
    )
    conn.commit()


def weekend_surge(conn: psycopg.Connection) -> datetime:
    """A traffic surge that starts on a Saturday at noon (weekend traffic is 35% lower). A
    Saturday is judged against earlier weekend days (3 at least, else no baseline): 21 days of
    data give it 6, an established product's (with 3, the profile's noise can put the start
    two hours early)."""
    onset = MONDAY + timedelta(days=5, hours=12)
    seed(conn, "traffic_surge", days=21, events_per_hour=EVENTS_PER_HOUR, seed=11,
         end=onset + timedelta(hours=INCIDENT_HOURS_BEFORE_END))  # fmt: skip
    return onset


def midnight_autosave(conn: psycopg.Connection) -> datetime:
    """An auto-save loop starting at 00:00 (Wednesday), at a volume where night hours count."""
    onset = MONDAY + timedelta(days=2)
    seed(conn, "autosave_loop", days=8, events_per_hour=600, seed=12,
         end=onset + timedelta(hours=INCIDENT_HOURS_BEFORE_END))  # fmt: skip
    return onset


def two_causes(conn: psycopg.Connection) -> datetime:
    """An auto-save loop, and from the same hour on prompts three times longer: both causes."""
    onset = ONSETS[1]
    seed(conn, "autosave_loop", days=DAYS, events_per_hour=EVENTS_PER_HOUR, seed=13,
         end=onset + timedelta(hours=INCIDENT_HOURS_BEFORE_END))  # fmt: skip
    conn.execute(
        f"""
        update raw.inference_events
        set input_tokens = input_tokens * 3,
            cost_usd = cost_usd + 2 * input_tokens * {price_case_sql("input")}
        where created_at >= %s
        """,
        (onset,),
    )
    conn.commit()
    return onset


def gap_then_incident(conn: psycopg.Connection) -> datetime:
    """A 4-hour data gap two days before an undo storm: no false spike, the storm still found."""
    onset = ONSETS[2]
    seed(conn, "undo_storm", days=DAYS, events_per_hour=EVENTS_PER_HOUR, seed=14,
         end=onset + timedelta(hours=INCIDENT_HOURS_BEFORE_END))  # fmt: skip
    gap = onset - timedelta(days=2, hours=3)
    conn.execute(
        "delete from raw.inference_events where created_at >= %s and created_at < %s",
        (gap, gap + timedelta(hours=4)),
    )
    conn.commit()
    return onset


def quiet_with_gap(conn: psycopg.Connection) -> None:
    """Quiet data with a 5-hour gap on day 5: a gap is neither a spike nor a lesson."""
    end = MONDAY + timedelta(days=4, hours=18)
    seed(conn, "quiet", days=DAYS, events_per_hour=EVENTS_PER_HOUR, seed=15, end=end)
    gap = end - timedelta(days=4, hours=8)
    conn.execute(
        "delete from raw.inference_events where created_at >= %s and created_at < %s",
        (gap, gap + timedelta(hours=5)),
    )
    conn.commit()


EXTRA: dict[str, Callable[[psycopg.Connection], datetime | None]] = {
    "gradual_growth": gradual_growth,
    "weekend_surge": weekend_surge,
    "midnight_autosave": midnight_autosave,
    "two_causes": two_causes,
    "gap_then_incident": gap_then_incident,
    "quiet_with_gap": quiet_with_gap,
}


# --------------------------------------------------------------------------- all cases, one pool


def fill_for(name: str) -> Callable[[psycopg.Connection], datetime | None]:
    """How case `name` fills its database: an extra scenario, or `<scenario>_<seed>`."""
    if name in EXTRA:
        return EXTRA[name]
    scenario, seed_value = name.rsplit("_", 1)
    return seeded(scenario, int(seed_value))


@pytest.fixture(scope="module")
def cases(server_url: str) -> dict[str, Case]:
    """Every case of this module, run two at a time."""
    seeded_cases = [f"{scenario}_{s}" for scenario in (*EXPECTED, *NO_SPIKE) for s in SEEDS]
    return run_cases(server_url, [*EXTRA, *seeded_cases])


def scenario_of(case_name: str) -> str:
    return case_name.rsplit("_", 1)[0]


@pytest.mark.parametrize("scenario", [*EXPECTED, *NO_SPIKE])
def test_seeded_scenario(cases: dict[str, Case], scenario: str) -> None:
    """Exactly one spike, starting within an hour of the onset, with the right root cause."""
    wrong = {s: verdict(cases[f"{scenario}_{s}"], EXPECTED.get(scenario)) for s in SEEDS}
    wrong = {s: w for s, w in wrong.items() if w}
    assert not wrong, wrong


def test_accuracy_over_all_seeds(cases: dict[str, Case]) -> None:
    """The figure of the report: right cases / all seeded cases."""
    seeded_cases = [c for name, c in cases.items() if name not in EXTRA]
    right = sum(verdict(c, EXPECTED.get(scenario_of(c.name))) is None for c in seeded_cases)
    assert right == len(seeded_cases), f"{right}/{len(seeded_cases)}"


def test_gradual_growth_is_not_a_spike(cases: dict[str, Case]) -> None:
    case = cases["gradual_growth"]
    assert verdict(case, None) is None, verdict(case, None)
    complete = [h for h in case.hours if h["is_complete"]]
    first_week = sum(float(h["total_cost_usd"]) for h in complete[:168])
    last_week = sum(float(h["total_cost_usd"]) for h in complete[-168:])
    assert last_week > 1.5 * first_week  # the traffic did grow


def test_weekend_surge_is_found(cases: dict[str, Case]) -> None:
    case = cases["weekend_surge"]
    assert verdict(case, EXPECTED["traffic_surge"]) is None, verdict(
        case, EXPECTED["traffic_surge"]
    )


def test_spike_starting_at_midnight(cases: dict[str, Case]) -> None:
    case = cases["midnight_autosave"]
    assert verdict(case, EXPECTED["autosave_loop"]) is None, verdict(
        case, EXPECTED["autosave_loop"]
    )
    assert case.spikes[0]["spike_start"].hour in (0, 1), case.spikes[0]["spike_id"]


def test_two_causes_at_once(cases: dict[str, Case]) -> None:
    case = cases["two_causes"]
    assert len(case.spikes) == 1, case.spikes
    causes = {d["cause"]: d for d in case.diagnosis}
    assert {"hidden_recompute", "context_bloat"} <= set(causes), list(causes)
    assert causes["hidden_recompute"]["trigger_type"] == "auto_save"
    contributions = [d["contribution_usd"] for d in case.diagnosis]
    assert contributions == sorted(contributions, reverse=True)
    assert [d["rank"] for d in case.diagnosis] == list(range(1, len(case.diagnosis) + 1))


def test_data_gap(cases: dict[str, Case]) -> None:
    quiet = cases["quiet_with_gap"]
    assert verdict(quiet, None) is None, verdict(quiet, None)
    gap = [h for h in quiet.hours if not h["has_data"]]
    assert len(gap) == 5 and not any(h["is_spike_hour"] for h in gap)
    # the next day's same hours have one observation less than their neighbour before the gap's
    # hours: the gap taught the baseline nothing
    by_hour = {h["hour"]: h for h in quiet.hours}
    neighbour = by_hour[gap[0]["hour"] + timedelta(days=1) - timedelta(hours=1)]
    for h in gap:
        next_day = by_hour[h["hour"] + timedelta(days=1)]
        assert next_day["baseline_observations"] == neighbour["baseline_observations"] - 1
    incident = cases["gap_then_incident"]
    assert verdict(incident, EXPECTED["undo_storm"]) is None, verdict(
        incident, EXPECTED["undo_storm"]
    )


def test_evidence_has_what_on_call_quotes(cases: dict[str, Case]) -> None:
    """Before/after numbers, recent changes and the runbook's fix, on every diagnosis row."""
    bot = cases["bot_traffic_1"].diagnosis[0]
    evidence = bot["evidence"]
    for key in ("requests", "unique_users", "cost_per_request_usd", "hidden_ratio", "tokens",
                "features", "models", "tools", "top_user_agents", "top_users_share",
                "change_events", "volume_effect_usd", "rate_effect_usd"):  # fmt: skip
        assert key in evidence, key
    assert evidence["top_users_share"]["after"] > 2 * evidence["top_users_share"]["before"]
    agents = [a["user_agent"] for a in evidence["top_user_agents"]]
    assert any("python-requests" in a or "Scrapy" in a for a in agents), agents
    autosave = cases["autosave_loop_1"].diagnosis[0]
    assert "AUTO_SAVE_INTERVAL_MS = 30000" in autosave["recommended_fix"]
    assert any("auto-save" in c["description"] for c in autosave["evidence"]["change_events"])
    tool = cases["tool_outage_1"].diagnosis[0]
    assert "MAX_TOOL_RETRIES = 2" in tool["recommended_fix"]
    web = tool["evidence"]["tools"]["web_search"]
    assert web["failure_rate_after"] > web["failure_rate_before"] + 0.3


def test_sql_agrees_with_the_python_reference(cases: dict[str, Case]) -> None:
    """cost_baseline_hourly's recursive walk = tests.support.detection, hour by hour."""
    for case in cases.values():
        reference = detect(
            [
                Hour(
                    h["hour"],
                    float(h["total_cost_usd"]),
                    h["cost_variance_usd2"],
                    h["has_data"],
                    h["is_complete"],
                )  # fmt: skip
                for h in case.inputs
            ]
        )
        assert len(reference) == len(case.hours), case.name
        for ref, got in zip(reference, case.hours, strict=True):
            assert (ref.is_spike_hour, ref.spike_id) == (got["is_spike_hour"], got["spike_id"]), (
                case.name,
                got["hour"],
            )
            if ref.baseline_cost_usd is None:
                assert got["baseline_cost_usd"] is None, (case.name, got["hour"])
            else:
                assert got["baseline_cost_usd"] == pytest.approx(ref.baseline_cost_usd), case.name

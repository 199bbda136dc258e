"""`make accuracy`: the detection-quality matrix (issue 13, CONTRACT section 5).

Every row is one synthetic history (`costwatch seed`'s generator with a traffic shape and an
incident onset) run through the product's real dbt models (`+spike_diagnosis`, tests included)
on real PostgreSQL, one database per row. Incident rows are replayed as the hourly schedule
would see them: the history up to just before the onset is built first, then the data is
appended hour by hour and each pass at HH:05 sees the events created before HH:05, until a pass
has a spike covering the onset and its diagnosis (at most `REPLAY_HOURS`). The latency is the
time from the onset to that pass: the pass that would open the incident.

The incident scenarios of one seed, onset and shape share their history (the generator draws
the same product up to the onset for each): it is built once and each row starts from a copy of
that database, adding its own rows from the first cut on and its triggering change event.

Rows without an incident (quiet, growth, decline, a lasting step, low volume) are built at a few
coarse cuts (every `QUIET_STEP_HOURS` over the last days) and at the end; a spike in any pass
counts as an incident. Between two cuts the detection is trusted to be causal (a pass never
changes what an earlier hour was); every row checks that: the hours of the first pass must read
the same (baseline, spike hour) in the last pass, or the row is marked `not causal`.

Columns: found (a spike covers the onset), start (within an hour of the onset; within the ramp
for a ramp), cause and detail (rank 1 of spike_diagnosis at the opening pass, and the column the
scenario implies), false (spikes away from the incident: incidents on quiet data), latency.
Severity comes from the data itself: the incident's cost over the same rows without it
(severe: at least +100% over its first two hours, `spike_severe_pct`).

    python -m bench.accuracy                 # the whole matrix (about 160 rows)
    python -m bench.accuracy --quick         # one seed, a row of each kind
    python -m bench.accuracy --rows 'tool_outage/*' --seeds 1,2
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DBT_PROJECT_DIR = ROOT / "dbt_project"

DAYS = 21
EVENTS_PER_HOUR = 1000  # costwatch seed's default: the product as the scenarios simulate it
LOW_VOLUME_EVENTS_PER_HOUR = 80
REPLAY_HOURS = 10  # passes after the onset before a row counts as not found
# The first hourly pass run after the onset: HH:05 two hours on, when two complete incident
# hours exist. By the contract one complete hour never confirms a spike, so earlier passes
# cannot open the incident; skipping a pass can only make a measured latency longer, never
# shorter (the blip rows, replayed from before the blip, check the one-hour rule).
FIRST_PASS_AFTER_ONSET_HOURS = 2
PASS_MINUTE = 5  # the hourly schedule's pass at HH:05 sees events created before HH:05
QUIET_STEP_HOURS = 72  # coarse cuts of rows without an incident
QUIET_CUT_DAYS = 6  # ... over this many last days
SEVERE_PCT = 1.0  # spike_severe_pct: an incident at least this far above normal is severe
GOAL_LATENCY = {
    "moderate": timedelta(hours=3, minutes=10),
    "severe": timedelta(hours=2, minutes=10),
}
GOAL_RIGHT_SHARE = 0.98
SEEDS = (1, 2, 3)
# Weekend traffic relative to a weekday, per seed of the incident rows: the default product,
# and the 40-50% of real products (issue 13).
WEEKEND_BY_SEED = {1: 0.65, 2: 0.5, 3: 0.4}

# The week the incidents happen in (fixed dates in the past: staging quarantines the future).
WEEK = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
# Onsets per kind, one per seed (weekday, hour UTC; the product peaks at 15:00 UTC).
ONSETS: dict[str, dict[int, tuple[int, int]]] = {
    "weekday_peak": {1: (1, 13), 2: (2, 14), 3: (3, 15)},
    "weekday_night": {1: (1, 1), 2: (2, 2), 3: (3, 3)},
    "saturday": {1: (5, 10), 2: (5, 13), 3: (5, 16)},
    "sunday": {1: (6, 11), 2: (6, 14), 3: (6, 17)},
    "monday_morning": {1: (7, 7), 2: (7, 8), 3: (7, 9)},
}

# Rank-1 cause, and the detail column and value it must carry, per incident scenario.
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
INCIDENTS = tuple(EXPECTED)
QUIET_KINDS = ("quiet", "growth", "decline", "low_volume")


@dataclass(frozen=True)
class Row:
    """One synthetic history and what detection must make of it."""

    name: str
    kind: str  # incident | ramp | low_volume_incident | blip | quiet | growth | decline | ...
    scenario: str
    seed: int
    end: datetime
    days: int = DAYS
    events_per_hour: int = EVENTS_PER_HOUR
    weekend_ratio: float = 0.65
    daily_growth: float = 0.0
    step_factor: float = 1.0
    step_at: datetime | None = None
    onset: datetime | None = None
    onset_kind: str | None = None
    ramp_hours: float | None = None
    magnitude: float = 1.0

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    @property
    def expects_spike(self) -> bool:
        return self.scenario in EXPECTED

    @property
    def replayed(self) -> bool:
        """Replayed hour by hour from the onset (an incident, or a blip that must stay quiet)."""
        return self.onset is not None

    def seed_kwargs(self) -> dict:
        from orchestration.runbook.seed import TrafficShape

        return {
            "start": self.start,
            "end": self.end,
            "events_per_hour": self.events_per_hour,
            "seed": self.seed,
            "shape": TrafficShape(
                weekend_ratio=self.weekend_ratio,
                daily_growth=self.daily_growth,
                step_factor=self.step_factor,
                step_at=self.step_at,
            ),
            "onset": self.onset,
            "ramp_hours": self.ramp_hours,
            "magnitude": self.magnitude,
        }


@dataclass
class Result:
    row: str
    kind: str
    scenario: str
    seed: int
    onset_kind: str | None
    onset: str | None
    weekend_ratio: float
    events: int = 0
    uplift: float | None = None  # the incident's cost over the same data without it, - 1
    severity: str | None = None  # moderate | severe (incident rows)
    found: bool | None = None
    spike_start: str | None = None
    start_ok: bool | None = None
    cause: str | None = None
    detail: str | None = None
    cause_ok: bool | None = None
    detail_ok: bool | None = None
    latency_minutes: float | None = None
    false_spikes: int = 0  # spikes away from the incident (incidents on quiet data)
    false_spike_starts: list[str] = field(default_factory=list)
    spikes_final: int = 0
    causal: bool | None = None
    passes: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    right: bool = False
    why: str | None = None

    @property
    def latency(self) -> timedelta | None:
        if self.latency_minutes is None:
            return None
        return timedelta(minutes=self.latency_minutes)


# --------------------------------------------------------------------------- the matrix


def _at(weekday: int, hour: int) -> datetime:
    return WEEK + timedelta(days=weekday, hours=hour)


def matrix(seeds: Sequence[int] = SEEDS) -> list[Row]:
    """Every row of the matrix (see the module docstring)."""
    rows: list[Row] = []
    for scenario in INCIDENTS:
        for kind, by_seed in ONSETS.items():
            for s in seeds:
                weekday, hour = by_seed.get(s, by_seed[1 + (s - 1) % 3])
                onset = _at(weekday, hour)
                rows.append(
                    Row(
                        name=f"{scenario}/{kind}/s{s}",
                        kind="incident",
                        scenario=scenario,
                        seed=s,
                        end=onset + timedelta(hours=REPLAY_HOURS + 1),
                        weekend_ratio=WEEKEND_BY_SEED.get(s, 0.65),
                        onset=onset,
                        onset_kind=kind,
                    )
                )
    first = seeds[0]
    # Quiet data starting on each weekday, weekend ratios across 0.3-1.0 (two per weekday).
    ratios = ((0.3, 0.7), (0.5, 1.0), (0.6, 0.4), (0.85, 0.5), (0.4, 0.65), (0.45, 0.8), (0.3, 1.0))
    for weekday in range(7):
        start = WEEK - timedelta(days=14) + timedelta(days=weekday)
        for j, ratio in enumerate(ratios[weekday]):
            s = first + j
            rows.append(
                Row(
                    name=f"quiet/{start:%a}/wr{ratio:g}/s{s}".lower(),
                    kind="quiet",
                    scenario="quiet",
                    seed=s,
                    end=start + timedelta(days=DAYS),
                    weekend_ratio=ratio,
                )
            )
    # Growth and decline, 1-5% a day, from a Wednesday, weekends at half a weekday.
    start = WEEK - timedelta(days=19)
    for pct in (1, 2, 3, 4, 5):
        for sign, kind in ((1, "growth"), (-1, "decline")):
            rows.append(
                Row(
                    name=f"{kind}/{pct}pct/s{first}",
                    kind=kind,
                    scenario="quiet",
                    seed=first,
                    end=start + timedelta(days=DAYS),
                    weekend_ratio=0.5,
                    daily_growth=sign * pct / 100,
                )
            )
    # A lasting step up (a launch, a new customer): the new normal within 48 hours.
    for factor, weekday in ((1.5, 1), (2.0, 3)):
        step_at = _at(weekday, 10)
        rows.append(
            Row(
                name=f"step/x{factor:g}/s{first}",
                kind="step",
                scenario="quiet",
                seed=first,
                end=step_at + timedelta(days=4),
                step_factor=factor,
                step_at=step_at,
            )
        )
    # Low volume (~80 events/h): quiet weeks, and incidents at a weekday peak.
    for j, (weekday, ratio) in enumerate(((0, 0.5), (3, 0.8))):
        start = WEEK - timedelta(days=14) + timedelta(days=weekday)
        rows.append(
            Row(
                name=f"low_volume/quiet/{start:%a}/s{first + j}".lower(),
                kind="low_volume",
                scenario="quiet",
                seed=first + j,
                end=start + timedelta(days=DAYS),
                events_per_hour=LOW_VOLUME_EVENTS_PER_HOUR,
                weekend_ratio=ratio,
            )
        )
    for scenario in ("traffic_surge", "autosave_loop", "tool_outage"):
        onset = _at(2, 14)
        rows.append(
            Row(
                name=f"low_volume/{scenario}/s{first}",
                kind="low_volume_incident",
                scenario=scenario,
                seed=first,
                end=onset + timedelta(hours=REPLAY_HOURS + 1),
                events_per_hour=LOW_VOLUME_EVENTS_PER_HOUR,
                onset=onset,
                onset_kind="weekday_peak",
            )
        )
    # Ramps: the incident reaches full strength over 6-8 hours.
    for scenario, ramp, (weekday, hour) in (
        ("traffic_surge", 6, (1, 9)),
        ("context_bloat", 8, (2, 8)),
        ("autosave_loop", 6, (3, 10)),
        ("model_change", 8, (4, 9)),
    ):
        onset = _at(weekday, hour)
        rows.append(
            Row(
                name=f"ramp/{scenario}/{ramp}h/s{first}",
                kind="ramp",
                scenario=scenario,
                seed=first,
                end=onset + timedelta(hours=REPLAY_HOURS + ramp),
                onset=onset,
                onset_kind="weekday_peak",
                ramp_hours=ramp,
            )
        )
    # A blip: one hour at +300% (of a weekday's level) must open nothing.
    from orchestration.runbook.seed.scenarios import BLIP_EXTRA_TRAFFIC

    for label, (weekday, hour) in (("weekday_peak", (2, 14)), ("sunday", (6, 14))):
        onset = _at(weekday, hour)
        rows.append(
            Row(
                name=f"blip/300pct/{label}/s{first}",
                kind="blip",
                scenario="blip",
                seed=first,
                end=onset + timedelta(hours=REPLAY_HOURS + 1),
                onset=onset,
                onset_kind=label,
                magnitude=round(3.0 / BLIP_EXTRA_TRAFFIC, 6),
            )
        )
    return rows


def quick(rows: list[Row]) -> list[Row]:
    """A row of each kind and each incident scenario, one seed: a smoke run of the matrix."""
    keep: list[Row] = []
    seen: set[str] = set()
    for row in rows:
        key = row.scenario if row.kind == "incident" else row.kind
        if key in seen:
            continue
        if row.kind == "incident" and row.onset_kind != "weekday_peak":
            continue
        seen.add(key)
        keep.append(row)
    return keep


def select(rows: list[Row], patterns: str | None) -> list[Row]:
    if not patterns:
        return rows
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    return [r for r in rows if any(fnmatch.fnmatchcase(r.name, p) or p in r.name for p in wanted)]


# --------------------------------------------------------------------------- one row


class Worker:
    """One database and one in-process dbt (parsed once), reused row after row."""

    def __init__(self, server_url: str, name: str, dbt_vars: dict, tests: bool = False):
        from orchestration.core.config import Config
        from orchestration.core.database import url_for_database

        self.server_url = server_url
        self.name = name
        self.url = url_for_database(server_url, name)
        self.target = Path(os.environ.get("TMPDIR", "/tmp")) / f"costwatch-accuracy-{name}"
        self.target.mkdir(parents=True, exist_ok=True)
        # One thread per worker unless told otherwise; dbt connects through costwatch's profile.
        self.config = Config.load(
            {"COSTWATCH_DBT_THREADS": "1", **os.environ}, database_url=self.url
        )
        self._common = (
            *("--project-dir", str(DBT_PROJECT_DIR)),
            *("--profiles-dir", str(self.config.dbt_profiles_dir())),
            *("--target-path", str(self.target), "--log-path", str(self.target / "logs")),
            "--no-send-anonymous-usage-stats",
        )
        self.vars = dbt_vars
        self.tests = tests
        self._runner = None
        self._seeds: dict[str, tuple[str, str]] = {}

    def _ready(self):
        """The in-process dbt, the project parsed once (with this worker's vars)."""
        from dbt.cli.main import dbtRunner

        if self._runner is None:
            from orchestration.defs.project import partial_parse_for_profile

            # The project's parse state made current for this database: only a changed file
            # (or other vars) is parsed again, not the whole project.
            partial_parse_for_profile(self.target, self.config)
            parsed = dbtRunner().invoke(
                ["parse", "--quiet", *self._common, "--vars", json.dumps(self.vars)]
            )
            if not parsed.success:
                raise RuntimeError(f"dbt parse failed: {parsed.exception}")
            self._runner = dbtRunner(manifest=parsed.result)
            self._seeds = {
                node.name: (node.schema, node.checksum.checksum)
                for node in parsed.result.nodes.values()
                if node.resource_type == "seed"
            }
        return self._runner

    def _dbt(self, *args: str):
        runner = self._ready()
        # No debug log file and no artifacts: a pass here needs neither, and writing them costs
        # more than some of the models.
        quiet = ["--quiet", "--log-level-file", "none", "--no-write-json"]
        result = runner.invoke([*args, *quiet, *self._common, "--vars", json.dumps(self.vars)])
        if not result.success:
            failures = []
            for node in getattr(result.result, "results", None) or []:
                if str(node.status) not in ("success", "pass", "skipped"):
                    failures.append(f"{node.node.name}: {node.status} {node.message or ''}")
            detail = "; ".join(failures[:3]) or str(result.exception)
            raise RuntimeError(f"dbt {args[0]} failed: {detail}")

    def build(self, part: str = "all") -> None:
        """The models detection needs: `+spike_diagnosis` ("all"), or its two halves, "spikes"
        (`+cost_spikes`) and "diagnosis" (the rest). `dbt run`; with `tests`, `dbt build` with
        the tests whose every parent is selected (the detection models' own): they check the
        models, not detection quality, and double the cost of a pass. The seeds they read are
        built when their table does not hold their file yet, as a pass does: `db init` loads
        the price seeds, and dbt loading their 10k rows again takes ~10 s of every pass."""
        from orchestration.core.dbt_seeds import loaded_seeds

        self._ready()
        select = ["+cost_spikes"] if part == "spikes" else ["+spike_diagnosis"]
        exclude = ["+cost_spikes"] if part == "diagnosis" else []
        exclude += loaded_seeds(self.url, self._seeds)
        if not self.tests:  # models, and the seeds they read (the cause catalogue)
            excluding = ["--exclude", *exclude] if exclude else []
            self._dbt("build", "--select", *select, *excluding, "--resource-type", "model",
                      "--resource-type", "seed")  # fmt: skip
            return
        self._dbt(
            "build", "--select", *select, "--exclude", *exclude, "test_type:unit",
            "--indirect-selection", "cautious",
        )  # fmt: skip

    def fresh_database(self) -> None:
        from orchestration.core.database import connect, url_for_database
        from orchestration.core.schema import init_database

        admin = url_for_database(self.server_url, "postgres")
        with connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{self.name}" with (force)')
            conn.execute(f'create database "{self.name}"')
        init_database(self.url)

    def drop_database(self, name: str | None = None) -> None:
        self.admin(f'drop database if exists "{name or self.name}" with (force)')

    def run_group(self, rows: list[Row]) -> list[Result]:
        """Rows that share their history (the incident scenarios of one seed, onset and shape:
        the generator draws the same product up to the onset for each): the history is built
        once, then each row starts from a copy of that database (CREATE DATABASE ... TEMPLATE)."""
        if len(rows) == 1:
            return [self.run(rows[0])]
        started = time.perf_counter()
        try:
            history = self.build_history(rows[0])
        except Exception as err:  # noqa: BLE001 - reported on every row of the group
            results = [self.run(row, failed=err) for row in rows]
            self.drop_database(self.template)
            return results
        shared = (time.perf_counter() - started) / len(rows)
        try:
            return [self.run(row, history=history, shared_seconds=shared) for row in rows]
        finally:
            self.drop_database(self.template)

    @property
    def template(self) -> str:
        return f"{self.name}_history"

    def build_history(self, lead: Row) -> dict:
        """The shared history (the `quiet` scenario's rows before the first cut: the same
        product, seed and shape), built, read, and kept as a template database."""
        from orchestration.core.database import connect

        cut = pass_times(lead)[0]
        data = quiet_data(lead)
        self.fresh_database()
        with connect(self.url) as conn:
            load(conn, data, row_end=lead.end, history_until=cut, held_from=None)
        self.build()
        first = self.read()
        self.drop_database(self.template)
        self.admin(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = %s and pid <> pg_backend_pid()",
            self.name,
        )
        self.admin(f'alter database "{self.name}" rename to "{self.template}"')
        return first

    def admin(self, sql: str, *params) -> None:
        from orchestration.core.database import connect, url_for_database

        with connect(url_for_database(self.server_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql, params or None)

    def run(
        self,
        row: Row,
        *,
        history: dict | None = None,
        shared_seconds: float = 0.0,
        failed: BaseException | None = None,
    ) -> Result:
        started = time.perf_counter()
        result = Result(
            row=row.name,
            kind=row.kind,
            scenario=row.scenario,
            seed=row.seed,
            onset_kind=row.onset_kind,
            onset=row.onset.isoformat() if row.onset else None,
            weekend_ratio=row.weekend_ratio,
        )
        try:
            if failed is not None:
                raise failed
            self._run(row, result, history)
        except Exception as err:  # noqa: BLE001 - a failed row is reported, the matrix goes on
            result.error = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
            if os.environ.get("COSTWATCH_DEBUG"):
                traceback.print_exc()
        result.seconds = round(time.perf_counter() - started + shared_seconds, 2)
        if shared_seconds:
            result.timings["shared_history"] = round(shared_seconds, 2)
        judge(row, result)
        return result

    def _run(self, row: Row, result: Result, history: dict | None) -> None:
        from orchestration.core.database import connect
        from orchestration.runbook.seed import generate

        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            result.timings[name] = round(result.timings.get(name, 0.0) + now - clock, 2)
            clock = now

        data = generate(row.scenario, **row.seed_kwargs())
        result.events = len(data.events)
        if row.expects_spike:
            result.uplift = incident_uplift(row, data)
            result.severity = "severe" if result.uplift >= SEVERE_PCT else "moderate"
        cuts = pass_times(row)
        if history is None:
            self.fresh_database()
            with connect(self.url) as conn:
                load(conn, data, row_end=row.end, history_until=cuts[0], held_from=cuts[0])
            lap("generate_load")
            self.build()
            lap("first_build")
            passes = [self.read()]
        else:
            self.drop_database()
            self.admin(f'create database "{self.name}" template "{self.template}"')
            with connect(self.url) as conn:
                load(conn, data, row_end=row.end, history_until=None, held_from=cuts[0],
                     cause_of=row.scenario)  # fmt: skip
            lap("generate_clone_load")
            passes = [history]
        opening = None
        for cut in cuts[1:]:
            with connect(self.url) as conn:
                release(conn, cut)
            lap("release")
            # The spike models first; the diagnosis half only once a spike covers the incident
            # (the incident opens when both exist: the same pass, built in two steps).
            self.build("spikes")
            state = self.read()
            if row.expects_spike and covering(row, state) is not None:
                self.build("diagnosis")
                state = self.read()
                opening = covering(row, state, with_diagnosis=True)
            lap("passes")
            passes.append(state)
            if opening is not None:
                spike, top = opening
                result.latency_minutes = (cut - row.onset).total_seconds() / 60
                result.spike_start = spike["spike_start"].isoformat()
                result.cause = top["cause"]
                column = EXPECTED[row.scenario][1]
                result.detail = top[column] if column else None
                break
        result.passes = len(passes)
        last = passes[-1]
        result.spikes_final = len(last["spikes"])
        result.causal = all(causal(p["hours"], last["hours"]) for p in passes[:-1])
        seen: dict[datetime, dict] = {}
        for state in passes:
            for spike in state["spikes"]:
                seen.setdefault(spike["spike_start"], spike)
        found = opening is not None
        result.found = found if row.expects_spike else None
        window = incident_window(row) if row.expects_spike else None
        false = [
            start for start, spike in sorted(seen.items())
            if window is None or not overlaps(spike, window)
        ]  # fmt: skip
        result.false_spikes = len(false)
        result.false_spike_starts = [s.isoformat() for s in false]
        if found:
            spike_start = datetime.fromisoformat(result.spike_start)
            tolerance = timedelta(hours=max(1.0, row.ramp_hours or 0))
            result.start_ok = abs(spike_start - row.onset) <= tolerance
            cause, column, value = EXPECTED[row.scenario]
            result.cause_ok = result.cause == cause
            result.detail_ok = result.cause_ok and (column is None or result.detail == value)
        if row.kind == "step":
            result.why = step_verdict(row, list(seen.values()), last["spikes"])

    def read(self) -> dict:
        from orchestration.core.database import connect

        with connect(self.url) as conn:
            return {
                "spikes": _rows(conn, "select * from marts.cost_spikes order by spike_start"),
                "diagnosis": _rows(
                    conn, "select * from marts.spike_diagnosis order by spike_id, rank"
                ),
                "hours": _rows(
                    conn,
                    "select hour, baseline_cost_usd, is_spike_hour, is_complete "
                    "from marts.cost_baseline_hourly order by hour",
                ),
            }


def _rows(conn, sql: str) -> list[dict]:
    cur = conn.execute(sql)
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def pass_times(row: Row) -> list[datetime]:
    """The cuts: the first build's (everything before it is history), then each pass's."""
    step = timedelta(minutes=PASS_MINUTE)
    if row.replayed:
        first = row.onset - timedelta(hours=1) + step
        last_hours = REPLAY_HOURS + (int(row.ramp_hours) if row.ramp_hours else 0)
        if row.kind == "blip":  # every pass from before the blip to hours after it
            return [first + timedelta(hours=h) for h in range(8)]
        skip = FIRST_PASS_AFTER_ONSET_HOURS + 1
        return [first, *(first + timedelta(hours=h) for h in range(skip, last_hours + 2))]
    end = row.end
    cuts = [
        end - timedelta(hours=h) + step for h in range(QUIET_CUT_DAYS * 24, 0, -QUIET_STEP_HOURS)
    ]
    return [*cuts, end + step]


HOLD_TABLES = (
    ("inference_events", "created_at"),
    ("tool_calls", "created_at"),
    ("change_events", "changed_at"),
)


def inference_table(schema: str) -> str:
    """COPY target: the columns the generator fills (the optional ones stay null)."""
    from orchestration.runbook.seed.rows import INFERENCE_COLUMNS

    return f"{schema}.inference_events ({INFERENCE_COLUMNS})"


def load(
    conn,
    data,
    *,
    row_end: datetime,
    history_until: datetime | None,
    held_from: datetime | None,
    cause_of: str | None = None,
) -> None:
    """Write a row's data: the rows created before `history_until` into the raw tables (the
    history), those from `held_from` on into the holdout schema (not happened yet; the passes
    release them hour by hour). `cause_of`: on a shared history, the scenario's own change
    event that set its incident off (1-3 hours before the onset) joins the history."""
    from orchestration.runbook.seed import rows as seed_rows
    from orchestration.runbook.seed.scenarios import REGISTRY
    from orchestration.runbook.seed.timeline import to_us

    with conn.cursor() as cur:
        # A row's database lives for a minute: autovacuum would only compete for the CPU (dbt
        # analyzes the tables it reads).
        for table, _ in HOLD_TABLES:
            cur.execute(f"alter table raw.{table} set (autovacuum_enabled = false)")
        if history_until is not None:
            until = to_us(history_until)
            seed_rows.copy_rows(cur, inference_table("raw"), data.inference_rows(until_us=until))
            seed_rows.copy_rows(cur, "raw.tool_calls", data.tool_rows(until_us=until))
            seed_rows.copy_rows(cur, "raw.change_events", data.change_rows(until=history_until))
            seed_rows.upsert_flags(cur, row_end, reset=True)
        if cause_of is not None and held_from is not None:
            cause = REGISTRY[cause_of].change
            own = [
                line for line in data.change_rows(until=held_from)
                if cause is not None and line.split("\t")[4] == cause[2]
            ]  # fmt: skip
            seed_rows.copy_rows(cur, "raw.change_events", own)
        if held_from is not None:
            since = to_us(held_from)
            cur.execute("create schema if not exists holdout")
            for table, _ in HOLD_TABLES:
                cur.execute(
                    f"create table holdout.{table} (like raw.{table}) "
                    "with (autovacuum_enabled = false)"
                )
            seed_rows.copy_rows(
                cur, inference_table("holdout"), data.inference_rows(since_us=since)
            )
            seed_rows.copy_rows(cur, "holdout.tool_calls", data.tool_rows(since_us=since))
            seed_rows.copy_rows(cur, "holdout.change_events", data.change_rows(since=held_from))
    conn.commit()


def release(conn, cut: datetime) -> None:
    """Append the held rows created before `cut`: what the application wrote meanwhile."""
    for table, column in HOLD_TABLES:
        conn.execute(
            f"with moved as (delete from holdout.{table} where {column} < %s returning *) "
            f"insert into raw.{table} select * from moved",
            (cut,),
        )
    conn.commit()


def incident_window(row: Row) -> tuple[datetime, datetime] | None:
    if row.onset is None:
        return None
    end = row.onset + timedelta(hours=1) if row.kind == "blip" else row.end
    return row.onset, end


def overlaps(spike: dict, window: tuple[datetime, datetime]) -> bool:
    start, end = window
    last = spike["spike_end"] + timedelta(hours=1)
    return spike["spike_start"] < end and last > start - timedelta(hours=1)


def covering(
    row: Row, state: dict, *, with_diagnosis: bool = False
) -> tuple[dict, dict | None] | None:
    """The spike this pass would open an incident for (one covering the incident), and with
    `with_diagnosis` only when its diagnosis exists, with its rank-1 cause."""
    window = incident_window(row)
    for spike in state["spikes"]:
        if not overlaps(spike, window):
            continue
        if not with_diagnosis:
            return spike, None
        top = [
            d for d in state["diagnosis"] if d["spike_id"] == spike["spike_id"] and d["rank"] == 1
        ]
        if top:
            return spike, top[0]
    return None


def causal(first: list[dict], last: list[dict]) -> bool:
    """Hours complete in the first pass read the same in the last: no later pass rewrote them."""
    later = {h["hour"]: h for h in last}
    for hour in first:
        if not hour["is_complete"]:
            continue
        other = later.get(hour["hour"])
        if other is None or other["is_spike_hour"] != hour["is_spike_hour"]:
            return False
        a, b = hour["baseline_cost_usd"], other["baseline_cost_usd"]
        if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-6 * max(1, abs(a))):
            return False
    return True


def step_verdict(row: Row, seen: list[dict], final: list[dict]) -> str | None:
    """A lasting step may be a spike for a while, once, and is the new normal within 48 h."""
    if len(seen) > 1:
        return f"{len(seen)} spikes"
    for spike in final:
        if spike.get("is_ongoing") or spike["spike_end"] >= row.step_at + timedelta(hours=48):
            return f"still a spike {spike['spike_end'] - row.step_at} after the step"
    return None


_QUIET: dict[str, object] = {}


def quiet_data(row: Row):
    """The `quiet` scenario with the row's product, seed and shape (the same rows without the
    incident), generated once per history."""
    from orchestration.runbook.seed import generate

    kwargs = row.seed_kwargs()
    key = repr(sorted(kwargs.items()))
    if key not in _QUIET:
        _QUIET.clear()
        _QUIET[key] = generate("quiet", **kwargs)
    return _QUIET[key]


def incident_uplift(row: Row, data) -> float:
    """The incident's cost over the same rows without it, over its first two full hours
    (its first two at full strength for a ramp), minus 1."""
    quiet = quiet_data(row)
    first = row.onset + timedelta(hours=int(row.ramp_hours or 0))

    def cost(d) -> float:
        t = d.events.t
        lo = int(first.timestamp() * 1e6)
        mask = (t >= lo) & (t < lo + 2 * 3600 * 1_000_000)
        return float(d.costs()[mask].sum())

    base = cost(quiet)
    return round(cost(data) / base - 1, 3) if base > 0 else float("inf")


def judge(row: Row, result: Result) -> None:
    """Right or not, and why not (one line)."""
    if result.error:
        result.right, result.why = False, result.error
        return
    reasons = []
    if result.causal is False:
        reasons.append("not causal")
    if row.expects_spike:
        if not result.found:
            reasons.append("not found")
        else:
            if not result.start_ok:
                reasons.append(f"start {result.spike_start[5:16]} vs onset {row.onset:%m-%d %H:%M}")
            if not result.cause_ok:
                reasons.append(f"cause {result.cause}")
            elif not result.detail_ok:
                reasons.append(f"detail {result.detail}")
        if result.false_spikes:
            reasons.append(f"{result.false_spikes} false spike(s)")
    elif row.kind == "step":
        if result.why:
            reasons.append(result.why)
    elif result.false_spikes:
        reasons.append(f"{result.false_spikes} incident(s): {', '.join(result.false_spike_starts)}")
    result.right = not reasons
    result.why = "; ".join(reasons) or None


# --------------------------------------------------------------------------- running it

_WORKER: Worker | None = None


def _init_worker(server_url: str, dbt_vars: dict, tests: bool, tag: str) -> None:
    global _WORKER
    _die_with_parent()
    _WORKER = Worker(server_url, f"cw_accuracy_{tag}_{os.getpid()}", dbt_vars, tests=tests)


def _die_with_parent() -> None:
    """A worker must not outlive the matrix (an interrupted run leaves no rows running)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_in_worker(unit: list[Row]) -> list[Result]:
    assert _WORKER is not None
    return _WORKER.run_group(unit)


def groups(rows: list[Row]) -> list[list[Row]]:
    """Rows that can share a history: incident rows (no ramp) of the same product, seed,
    period and onset. Every other row is a group of its own."""
    shared: dict[tuple, list[Row]] = {}
    alone: list[list[Row]] = []
    for row in rows:
        if row.kind in ("incident", "low_volume_incident") and row.magnitude == 1.0:
            key = (row.seed, row.end, row.days, row.events_per_hour, row.weekend_ratio,
                   row.daily_growth, row.step_factor, row.step_at, row.onset)  # fmt: skip
            shared.setdefault(key, []).append(row)
        else:
            alone.append([row])
    return [*shared.values(), *alone]


def interleaved(units: list[list[Row]]) -> list[list[Row]]:
    """Work units in an order that covers every kind early (an interrupted run, or its
    partial results, still tells something of each): shared incident histories in turn with
    the rows of their own, round robin over the kinds."""
    by_kind: dict[str, list[list[Row]]] = {}
    for unit in units:
        by_kind.setdefault(unit[0].kind, []).append(unit)
    queues = list(by_kind.values())
    out: list[list[Row]] = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def _drop_in_worker() -> None:
    if _WORKER is not None:
        _WORKER.drop_database()


def run_rows(
    rows: list[Row],
    server_url: str,
    *,
    jobs: int = 2,
    dbt_vars: dict | None = None,
    tests: bool = False,
    progress: bool = True,
    partial: Path | None = None,
) -> list[Result]:
    """Run `rows` on `jobs` worker processes; results in the order of `rows`."""
    dbt_vars = dbt_vars or {}
    tag = f"{os.getpid()}"
    order = {row.name: i for i, row in enumerate(rows)}
    units = interleaved(groups(rows))
    results: list[Result] = []

    def collect(batch: list[Result]) -> None:
        for result in batch:
            results.append(result)
            if progress:
                _progress(result, len(results), len(rows))
        if partial is not None:  # what is done so far survives an interrupted run
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps([asdict(r) for r in results], default=str))

    if jobs <= 1:
        _init_worker(server_url, dbt_vars, tests, tag)
        try:
            for unit in units:
                collect(_run_in_worker(unit))
        finally:
            _drop_in_worker()
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_init_worker,
            initargs=(server_url, dbt_vars, tests, tag),
        ) as pool:  # fmt: skip
            futures = [pool.submit(_run_in_worker, unit) for unit in units]
            for future in as_completed(futures):
                collect(future.result())
            for _ in range(jobs):
                pool.submit(_drop_in_worker).result()
    _drop_leftovers(server_url, tag)
    return sorted(results, key=lambda r: order[r.row])


def _drop_leftovers(server_url: str, tag: str) -> None:
    from orchestration.core.database import connect, url_for_database

    with connect(url_for_database(server_url, "postgres"), autocommit=True) as conn:
        names = conn.execute(
            "select datname from pg_database where datname like %s", (f"cw_accuracy_{tag}_%",)
        ).fetchall()
        for (name,) in names:
            conn.execute(f'drop database if exists "{name}" with (force)')


def _progress(result: Result, done: int, total: int) -> None:
    mark = "ok " if result.right else "BAD"
    print(
        f"  [{done:3}/{total}] {mark} {result.row:42} {result.seconds:6.1f}s "
        f"{_fmt_latency(result):>5}  {result.why or ''}  {result.timings}",
        file=sys.stderr,
        flush=True,
    )


# --------------------------------------------------------------------------- reporting


def _fmt_latency(result: Result) -> str:
    if result.latency is None:
        return "-"
    minutes = int(result.latency.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}"


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("y" if value else "N")


def table(results: Iterable[Result]) -> str:
    header = (
        f"{'row':44} {'wr':>4} {'uplift':>7} {'found':>5} {'start':>5} {'cause':>5} "
        f"{'detail':>6} {'false':>5} {'latency':>7}  verdict"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        uplift = f"{r.uplift:+.0%}" if r.uplift is not None else "-"
        lines.append(
            f"{r.row:44} {r.weekend_ratio:4g} {uplift:>7} {_mark(r.found):>5} "
            f"{_mark(r.start_ok):>5} {_mark(r.cause_ok):>5} {_mark(r.detail_ok):>6} "
            f"{r.false_spikes:5} {_fmt_latency(r):>7}  {'right' if r.right else r.why}"
        )
    return "\n".join(lines)


def summary(results: list[Result]) -> dict:
    """The issue's goals, measured."""
    total = len(results)
    right = sum(r.right for r in results)
    by_kind: dict[str, dict] = {}
    for r in results:
        k = by_kind.setdefault(r.kind, {"rows": 0, "right": 0, "incidents_on_quiet": 0})
        k["rows"] += 1
        k["right"] += r.right
        if r.kind in (*QUIET_KINDS, "step", "blip"):
            k["incidents_on_quiet"] += r.false_spikes
    incident_rows = [r for r in results if r.scenario in EXPECTED]
    latency: dict[str, dict] = {}
    for severity in ("moderate", "severe"):
        # Ramps reach their strength late by design: their latency is reported on its own.
        rows = [r for r in incident_rows if r.severity == severity and r.kind != "ramp"]
        found = [r for r in rows if r.latency is not None]
        worst = max((r.latency for r in found), default=None)
        goal = GOAL_LATENCY[severity]
        latency[severity] = {
            "rows": len(rows),
            "found": len(found),
            "max_minutes": worst.total_seconds() / 60 if worst else None,
            "goal_minutes": goal.total_seconds() / 60,
            "over_goal": [r.row for r in found if r.latency > goal],
            "met": bool(found) and len(found) == len(rows) and worst <= goal,
        }
    ramps = [r for r in incident_rows if r.kind == "ramp" and r.latency is not None]
    quiet_incidents = {
        kind: sum(r.false_spikes for r in results if r.kind == kind) for kind in QUIET_KINDS
    }
    share = right / total if total else 0.0
    return {
        "rows": total,
        "right": right,
        "share_right": round(share, 4),
        "goal_share_right": GOAL_RIGHT_SHARE,
        "share_met": total >= 150 and share >= GOAL_RIGHT_SHARE,
        "incidents_on_quiet_growth_decline": quiet_incidents,
        "quiet_goal_met": not any(quiet_incidents.values()),
        "false_spikes_on_incident_rows": sum(r.false_spikes for r in incident_rows),
        "found": f"{sum(bool(r.found) for r in incident_rows)}/{len(incident_rows)}",
        "start_within_an_hour": sum(bool(r.start_ok) for r in incident_rows),
        "cause_right": sum(bool(r.cause_ok) for r in incident_rows),
        "detail_right": sum(bool(r.detail_ok) for r in incident_rows),
        "latency": latency,
        "ramp_latency_max_minutes": max(
            (r.latency.total_seconds() / 60 for r in ramps), default=None
        ),
        "not_causal": [r.row for r in results if r.causal is False],
        "errors": [r.row for r in results if r.error],
        "by_kind": by_kind,
        "by_onset": _by(incident_rows, lambda r: r.onset_kind),
        "by_scenario": _by(incident_rows, lambda r: r.scenario),
    }


def _by(results: list[Result], key) -> dict[str, str]:
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(str(key(r)), []).append(r)
    return {k: f"{sum(r.right for r in v)}/{len(v)}" for k, v in groups.items()}


def print_summary(s: dict, seconds: float) -> None:
    def minutes(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{int(value) // 60}h{int(value) % 60:02d}"

    print("\nsummary")
    verdict = "met" if s["share_met"] else "NOT met"
    print(f"  rows right          {s['right']}/{s['rows']} = {s['share_right']:.1%} "
          f"(goal >= {s['goal_share_right']:.0%} of >= 150 rows: {verdict})")  # fmt: skip
    q = s["incidents_on_quiet_growth_decline"]
    print("  incidents on quiet  " + ", ".join(f"{k} {v}" for k, v in q.items())
          + f" (goal 0: {'met' if s['quiet_goal_met'] else 'NOT met'})")  # fmt: skip
    print(f"  incident rows       found {s['found']}, start within 1 h "
          f"{s['start_within_an_hour']}, cause right {s['cause_right']}, detail right "
          f"{s['detail_right']}, false spikes {s['false_spikes_on_incident_rows']}")  # fmt: skip
    for severity, lat in s["latency"].items():
        met = "met" if lat["met"] else "NOT met"
        over = f"; over: {', '.join(lat['over_goal'][:6])}" if lat["over_goal"] else ""
        goal = minutes(lat["goal_minutes"])
        print(f"  latency {severity:9}   max {minutes(lat['max_minutes'])} over "
              f"{lat['found']}/{lat['rows']} found (goal <= {goal}: {met}){over}")  # fmt: skip
    print(f"  ramp latency max    {minutes(s['ramp_latency_max_minutes'])} (from the ramp's start)")
    print("  by kind             " + ", ".join(
        f"{k} {v['right']}/{v['rows']}" for k, v in s["by_kind"].items()))  # fmt: skip
    print("  by onset            " + ", ".join(f"{k} {v}" for k, v in s["by_onset"].items()))
    print("  by scenario         " + ", ".join(f"{k} {v}" for k, v in s["by_scenario"].items()))
    if s["not_causal"]:
        print(f"  NOT CAUSAL          {', '.join(s['not_causal'][:8])}")
    if s["errors"]:
        print(f"  ERRORS              {', '.join(s['errors'][:8])}")
    print(f"  time                {seconds:.0f} s")


def report(path: Path) -> int:
    """The table and summary of a results file, complete or partial."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"accuracy: cannot read {path}: {err}", file=sys.stderr)
        return 1
    items = data["rows"] if isinstance(data, dict) else data
    names = {f.name for f in fields(Result)}
    results = [Result(**{k: v for k, v in item.items() if k in names}) for item in items]
    order = {r.name: i for i, r in enumerate(matrix())}
    results.sort(key=lambda r: order.get(r.row, len(order)))
    print(table(results))
    print_summary(summary(results), data.get("seconds", 0.0) if isinstance(data, dict) else 0.0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.accuracy", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", metavar="PATTERN", default=None,
                        help="only rows whose name matches (fnmatch or substring, "
                        "comma-separated), e.g. 'tool_outage/*,quiet/*'")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="one seed, one row of each kind and scenario")  # fmt: skip
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                        help="seeds of the incident rows (default 1,2,3)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2,
                        help="rows at once, each its own database (default 2)")  # fmt: skip
    parser.add_argument("--events-per-hour", type=int, default=EVENTS_PER_HOUR,
                        help=f"volume of ordinary rows (default {EVENTS_PER_HOUR})")  # fmt: skip
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a dbt var (repeatable), e.g. to compare methods")  # fmt: skip
    parser.add_argument("--tests", action="store_true",
                        help="dbt build: the models' tests on every pass (2x slower)")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="print the table and summary of a results file (or a .partial.json "
                        "of an interrupted run) and exit")  # fmt: skip
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

    if args.report:
        return report(args.report)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        parser.error(f"--seeds: not a list of numbers: {args.seeds!r}")
    rows = matrix(seeds or SEEDS)
    if args.events_per_hour != EVENTS_PER_HOUR:
        rows = [
            replace(r, events_per_hour=args.events_per_hour)
            if r.events_per_hour == EVENTS_PER_HOUR
            else r
            for r in rows
        ]
    if args.quick:
        rows = quick(rows)
    rows = select(rows, args.rows)
    if not rows:
        parser.error("no row matches")
    if args.list:
        for r in rows:
            print(f"{r.name:44} {r.kind:20} onset {r.onset or '-'}")
        return 0

    from orchestration.core.database import url_for_database
    from orchestration.core.embedded import EmbeddedPostgres, configured_url
    from orchestration.core.settings import dbt_vars

    variables = dbt_vars()
    for item in args.var:
        name, _, value = item.partition("=")
        try:
            variables[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            variables[name.strip()] = value
    base = configured_url() or EmbeddedPostgres().start()
    server = url_for_database(base, "postgres")
    print(f"costwatch accuracy: {len(rows)} rows, {args.jobs} at a time, dbt build "
          f"+spike_diagnosis ({'models, seeds, tests' if args.tests else 'models, seeds'})"
          + (f", vars {variables}" if variables else ""), file=sys.stderr)  # fmt: skip
    started = time.perf_counter()
    measured = datetime.now(UTC).isoformat(timespec="seconds")
    stem = f"accuracy-{measured[:19].replace(':', '')}"
    partial = args.results_dir / f"{stem}.partial.json"
    results = run_rows(
        rows, server, jobs=args.jobs, dbt_vars=variables, tests=args.tests, partial=partial
    )
    seconds = time.perf_counter() - started

    print(table(results))
    figures = summary(results)
    print_summary(figures, seconds)
    out = {
        "measured_at": measured,
        "seconds": round(seconds, 1),
        "jobs": args.jobs,
        "vars": variables,
        "summary": figures,
        "rows": [asdict(r) for r in results],
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{stem}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    partial.unlink(missing_ok=True)
    print(f"\nwritten to {path}")
    return 1 if figures["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

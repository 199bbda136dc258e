"""Synthetic events for `costwatch seed --scenario NAME`: a realistic product plus one incident.

The baseline is an LLM product with daily and weekly seasonality, Zipf-like users in sessions,
several features, models, tools and clients, heavy-tailed tokens and list-price costs. Each
scenario then changes the data from the onset (10 hours before `end`) the way that real incident
would, so the runbook's queries (and costwatch's diagnosis) can tell the incidents apart.

Generation is vectorised with numpy and loaded with COPY in one transaction: all or nothing.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from orchestration.seed import catalog as cat

SCENARIOS: tuple[str, ...] = (
    "quiet",
    "traffic_surge",
    "bot_traffic",
    "autosave_loop",
    "undo_storm",
    "context_bloat",
    "model_change",
    "feature_abuse",
    "tool_outage",
    "blip",
)
INCIDENT_HOURS_BEFORE_END = 10
DEFAULT_EVENTS_PER_HOUR = 1000

# --- what each incident does (tuned so hourly cost is ~+50%..+150% over the same hours before)
SURGE_EXTRA_TRAFFIC = 1.0  # traffic_surge: +100% requests from new users
BOT_COUNT = 12
BOT_EXTRA_TRAFFIC = 1.0  # bot_traffic: +100% requests from BOT_COUNT scripted clients
AUTOSAVE_EXTRA = 0.9  # autosave_loop: +0.9 auto_save event per weekday event (share ~48%)
UNDO_EXTRA = 0.8  # undo_storm: +0.8 undo event per weekday event (share ~45%)
CONTEXT_BLOAT_FACTOR = 3.5  # context_bloat: input tokens x3.5
MODEL_CHANGE_FEATURES: tuple[str, ...] = ("chat", "summarize")
MODEL_CHANGE_FROM, MODEL_CHANGE_TO = "gpt-4o-mini", "gpt-4o"
MODEL_CHANGE_OUTPUT_FACTOR = 3.0  # model_change: outputs x3 on the affected features
ABUSE_FEATURE = "summarize"
ABUSE_USERS = 40
ABUSE_FACTOR = 7.0  # feature_abuse: the feature's requests x7 (on weekday volume)
OUTAGE_TOOL = "web_search"
OUTAGE_FAILURE_RATE = 0.55
OUTAGE_RETRIES_PER_EVENT = 7.0  # tool_outage: mean extra `retry` inferences per calling event
BLIP_EXTRA_TRAFFIC = 1.7  # blip: one hour at ~2.5x

US_PER_S = 1_000_000
HOUR_US = 3600 * US_PER_S
SESSION_MEAN_EVENTS = 3.0
SESSION_SPAN_S = 600.0
USERS_PER_HOURLY_EVENT = 20
ZIPF_EXPONENT = 0.7
WEEKEND_LEVEL = 0.65  # weekend traffic relative to a weekday
BOT_USER_BASE = 9_000_000

UA_LIST: tuple[str, ...] = (*cat.USER_AGENTS, *cat.BOT_USER_AGENTS)
_UA_P = np.array([*cat.USER_AGENTS.values(), *[0.0] * len(cat.BOT_USER_AGENTS)])
_UA_P = _UA_P / _UA_P.sum()
_SDK_UA = UA_LIST.index(cat.SDK_USER_AGENT)
_BOT_UAS = [UA_LIST.index(ua) for ua in cat.BOT_USER_AGENTS]
_FEATURE_P = np.array(list(cat.FEATURE_WEIGHTS.values()))
_TRIGGER_P = np.array(cat.TRIGGER_WEIGHTS)
_MED_IN = np.array([cat.TOKEN_MEDIANS[f][0] for f in cat.FEATURES], dtype=float)
_MED_OUT = np.array([cat.TOKEN_MEDIANS[f][1] for f in cat.FEATURES], dtype=float)
_PRICE_IN = np.array([cat.MODEL_PRICES[m][0] for m in cat.MODELS])
_PRICE_OUT = np.array([cat.MODEL_PRICES[m][1] for m in cat.MODELS])
_F = {name: i for i, name in enumerate(cat.FEATURES)}
_M = {name: i for i, name in enumerate(cat.MODELS)}
_T = {name: i for i, name in enumerate(cat.TRIGGERS)}
TOOLS: tuple[str, ...] = tuple(cat.TOOL_FAILURE_RATE)
MAX_INPUT_TOKENS = 128_000
MAX_OUTPUT_TOKENS = 16_000


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


@dataclass
class _Events:
    """Inference events as parallel arrays (indices into the catalog's tuples)."""

    t: np.ndarray  # int64 microseconds since the epoch
    user: np.ndarray
    session: np.ndarray
    feature: np.ndarray
    trigger: np.ndarray
    model: np.ndarray
    in_tok: np.ndarray
    out_tok: np.ndarray
    ua: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    def take(self, index: np.ndarray) -> _Events:
        return _Events(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: Iterable[_Events]) -> _Events:
        parts = list(parts)
        return _Events(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Events)}
        )


def default_end(now: datetime | None = None) -> datetime:
    """Now (UTC), rounded down to the hour: the default end of the seeded period."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(minute=0, second=0, microsecond=0)


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
) -> SeedSummary:
    """Append `days` of synthetic data ending at `end`, with `scenario`'s incident, in one commit.

    `replace` first empties the three raw tables (feature flags are upserted, never deleted).
    Same arguments give the same rows; ids carry a tag of the arguments so that loads with
    different arguments appended to the same tables never collide.
    """
    if scenario not in SCENARIOS:
        raise UnknownScenario(scenario)
    if days <= 0 or events_per_hour <= 0 or (hours is not None and hours <= 0):
        raise ValueError("days, hours and events_per_hour must be positive")
    end = default_end() if end is None else end
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    end = end.astimezone(UTC)
    # `hours` (e.g. one more hour of events, appended to what is there) overrides `days`.
    start = end - (timedelta(hours=hours) if hours is not None else timedelta(days=days))
    onset = None if scenario == "quiet" else end - timedelta(hours=INCIDENT_HOURS_BEFORE_END)
    if onset is not None and onset < start:
        onset = start

    data = generate(scenario, start=start, end=end, events_per_hour=events_per_hour, seed=seed)
    with conn.transaction():
        with conn.cursor() as cur:
            if replace:
                cur.execute("truncate raw.inference_events, raw.tool_calls, raw.change_events")
            _copy(cur, f"raw.inference_events ({INFERENCE_COLUMNS})", data.inference_rows())
            _copy(cur, "raw.tool_calls", data.tool_rows())
            _copy(cur, "raw.change_events", data.change_rows())
            _upsert_flags(cur, end, reset=replace)
    conn.commit()
    return SeedSummary(
        scenario=scenario,
        start=start,
        end=end,
        onset=onset,
        inference_events=len(data.events),
        tool_calls=data.n_tool_calls,
        change_events=len(data.changes),
    )


# --------------------------------------------------------------------------- generation


@dataclass
class SeedData:
    """Everything one `seed` call writes, before formatting."""

    tag: str
    events: _Events
    tools: dict[str, np.ndarray]
    changes: list[tuple[datetime, str, str | None, str]]

    @property
    def n_tool_calls(self) -> int:
        return len(self.tools["t"])

    def inference_rows(self) -> Iterable[str]:
        ev = self.events
        n = len(ev)
        cost = (ev.in_tok * _PRICE_IN[ev.model] + ev.out_tok * _PRICE_OUT[ev.model]) / 1e6
        cols = [
            _ids(f"ev-{self.tag}-", n),
            _timestamps(ev.t),
            _labels(ev.user, "u-{:07d}"),
            _labels(ev.session, f"s-{self.tag}-" + "{}"),
            np.array(cat.FEATURES)[ev.feature].tolist(),
            np.array(cat.TRIGGERS)[ev.trigger].tolist(),
            np.array(cat.MODELS)[ev.model].tolist(),
            ev.in_tok.astype(str).tolist(),
            ev.out_tok.astype(str).tolist(),
            np.char.mod("%.8f", np.round(cost, 8)).tolist(),
            np.array(UA_LIST)[ev.ua].tolist(),
        ]
        return map("\t".join, zip(*cols, strict=True))

    def tool_rows(self) -> Iterable[str]:
        tc = self.tools
        n = len(tc["t"])
        cols = [
            _ids(f"tc-{self.tag}-", n),
            _timestamps(tc["t"]),
            [f"ev-{self.tag}-{i}" for i in tc["event"].tolist()],
            np.array(cat.FEATURES)[tc["feature"]].tolist(),
            np.array(TOOLS)[tc["tool"]].tolist(),
            np.where(tc["success"], "t", "f").tolist(),
            tc["retries"].astype(str).tolist(),
            tc["latency"].astype(str).tolist(),
        ]
        return map("\t".join, zip(*cols, strict=True))

    def change_rows(self) -> Iterable[str]:
        for i, (at, kind, feature, description) in enumerate(self.changes):
            yield "\t".join(
                (f"chg-{self.tag}-{i}", at.isoformat(), kind, feature or r"\N", description)
            )


def generate(
    scenario: str, *, start: datetime, end: datetime, events_per_hour: int, seed: int = 0
) -> SeedData:
    """The rows for one scenario, without touching a database (deterministic in the arguments)."""
    if scenario not in SCENARIOS:
        raise UnknownScenario(scenario)
    start_us = _to_us(start)
    end_us = _to_us(end)
    hours = max(1, (end_us - start_us) // HOUR_US)
    onset_us = max(start_us, end_us - INCIDENT_HOURS_BEFORE_END * HOUR_US)
    incident_end_us = onset_us + HOUR_US if scenario == "blip" else end_us
    tag = hashlib.blake2b(
        f"{scenario}|{seed}|{start_us}|{end_us}|{events_per_hour}".encode(), digest_size=5
    ).hexdigest()

    # The baseline depends on the seed only, so every scenario shares the same normal days;
    # the incident draws from its own stream.
    base = _Simulator(np.random.default_rng([seed, 0]), start_us, hours, events_per_hour)
    events = base.baseline()
    sim = base.with_rng(np.random.default_rng([seed, zlib.crc32(scenario.encode()) + 1]))
    in_window = (events.t >= onset_us) & (events.t < incident_end_us)
    window_hours = np.arange(hours)[
        (start_us + np.arange(hours) * HOUR_US >= onset_us)
        & (start_us + np.arange(hours) * HOUR_US < incident_end_us)
    ]
    extra = _apply_incident(scenario, sim, events, in_window, window_hours)
    if extra is not None and len(extra):
        extra = extra.take(np.flatnonzero(extra.t < end_us))
        events = _Events.concat([events, extra])
    events = events.take(np.argsort(events.t, kind="stable"))

    outage = (
        (onset_us, incident_end_us, TOOLS.index(OUTAGE_TOOL)) if scenario == "tool_outage" else None
    )
    tools = sim.tool_calls(events, end_us, outage)
    changes = sim.change_events(scenario, start_us, end_us, onset_us)
    return SeedData(tag=tag, events=events, tools=tools, changes=changes)


def _apply_incident(
    scenario: str,
    sim: _Simulator,
    events: _Events,
    in_window: np.ndarray,
    window_hours: np.ndarray,
) -> _Events | None:
    """Change the baseline in place and/or return the extra events the incident adds."""
    rng = sim.rng
    # Incident volume is sized on a weekday's traffic, the level the detector's median baseline
    # sits at, so an incident on a quiet Sunday still stands out as it would on a Tuesday.
    lam = sim.ref_rate[window_hours]
    window_idx = np.flatnonzero(in_window)
    if scenario == "traffic_surge":
        return sim.sessions(window_hours, rng.poisson(SURGE_EXTRA_TRAFFIC * lam), sim.new_users)
    if scenario == "blip":
        return sim.sessions(window_hours, rng.poisson(BLIP_EXTRA_TRAFFIC * lam), sim.new_users)
    if scenario == "bot_traffic":
        weights = rng.dirichlet(np.full(BOT_COUNT, 2.0))

        def bots(n: int) -> np.ndarray:
            return BOT_USER_BASE + rng.choice(BOT_COUNT, size=n, p=weights)

        extra = sim.sessions(
            window_hours,
            rng.poisson(BOT_EXTRA_TRAFFIC * lam),
            bots,
            trigger_p=np.array([1.0, 0.0, 0.0, 0.0]),
        )
        extra.ua = np.array(_BOT_UAS)[(extra.user - BOT_USER_BASE) % len(_BOT_UAS)]
        return extra
    if scenario == "feature_abuse":
        abusers = sim.user_of_rank[rng.integers(200, sim.n_users, size=ABUSE_USERS)]
        feature_p = np.zeros(len(cat.FEATURES))
        feature_p[_F[ABUSE_FEATURE]] = 1.0
        share = cat.FEATURE_WEIGHTS[ABUSE_FEATURE]
        extra = sim.sessions(
            window_hours,
            rng.poisson((ABUSE_FACTOR - 1.0) * share * lam),
            lambda n: rng.choice(abusers, size=n),
            feature_p=feature_p,
        )
        extra.ua = np.full(len(extra), _SDK_UA)
        return extra
    hour = (events.t - sim.start_us) // HOUR_US
    if scenario == "autosave_loop":
        parents = _parents_per_hour(rng, hour, window_hours, rng.poisson(AUTOSAVE_EXTRA * lam))
        delay = rng.integers(1, 13, size=len(parents)) * 5 * US_PER_S  # every 5 s while open
        return sim.derived(events, parents, delay, _T["auto_save"])
    if scenario == "undo_storm":
        parents = _parents_per_hour(rng, hour, window_hours, rng.poisson(UNDO_EXTRA * lam))
        delay = (rng.uniform(2, 45, size=len(parents)) * US_PER_S).astype(np.int64)
        return sim.derived(events, parents, delay, _T["undo"])
    if scenario == "tool_outage":
        callers = [_F[f] for f, tool in cat.FEATURE_TOOL.items() if tool == OUTAGE_TOOL]
        parents0 = window_idx[np.isin(events.feature[window_idx], callers)]
        level = sim.ref_rate[hour[parents0]] / sim.rate[hour[parents0]]
        k = rng.poisson(OUTAGE_RETRIES_PER_EVENT * level)
        parents = np.repeat(parents0, k)
        nth = np.arange(len(parents)) - np.repeat(np.cumsum(k) - k, k) + 1
        delay = (nth * rng.uniform(4, 15, size=len(parents)) * US_PER_S).astype(np.int64)
        return sim.derived(events, parents, delay, _T["retry"])
    if scenario == "context_bloat":
        idx = window_idx
        grown = events.in_tok[idx] * CONTEXT_BLOAT_FACTOR * rng.lognormal(0, 0.15, len(idx))
        events.in_tok[idx] = np.clip(np.rint(grown), 1, MAX_INPUT_TOKENS).astype(np.int64)
        return None
    if scenario == "model_change":
        affected = window_idx[
            np.isin(events.feature[window_idx], [_F[f] for f in MODEL_CHANGE_FEATURES])
        ]
        switched = affected[events.model[affected] == _M[MODEL_CHANGE_FROM]]
        events.model[switched] = _M[MODEL_CHANGE_TO]
        grown = events.out_tok[affected] * MODEL_CHANGE_OUTPUT_FACTOR
        grown = grown * rng.lognormal(0, 0.15, len(affected))
        events.out_tok[affected] = np.clip(np.rint(grown), 1, MAX_OUTPUT_TOKENS).astype(np.int64)
        return None
    return None  # quiet


class _Simulator:
    """The synthetic product: its users, traffic shape, sessions and tools."""

    def __init__(self, rng: np.random.Generator, start_us: int, hours: int, events_per_hour: int):
        self.rng = rng
        self.start_us = start_us
        self.hours = hours
        self.n_users = max(100, events_per_hour * USERS_PER_HOURLY_EVENT)
        weights = np.arange(1, self.n_users + 1, dtype=float) ** -ZIPF_EXPONENT
        self.rank_p = weights / weights.sum()
        self.user_of_rank = rng.permutation(self.n_users)
        # Users 0..n-1 are the regulars; n..2n-1 newcomers (campaigns, a viral post).
        self.user_ua = rng.choice(len(UA_LIST), size=2 * self.n_users, p=_UA_P)
        self.next_session = 0
        self.rate = events_per_hour * self._shape(start_us, hours)
        self.ref_rate = events_per_hour * self._shape(start_us, hours, weekend=False)

    def with_rng(self, rng: np.random.Generator) -> _Simulator:
        """The same product, drawing from another stream (the incident's)."""
        other = object.__new__(_Simulator)
        other.__dict__.update(self.__dict__)
        other.rng = rng
        other.next_session = self.next_session
        return other

    @staticmethod
    def _shape(start_us: int, hours: int, *, weekend: bool = True) -> np.ndarray:
        """Traffic per hour relative to the mean: afternoon peak, night trough, weekends."""
        stamps = (start_us + np.arange(hours, dtype=np.int64) * HOUR_US).astype("datetime64[us]")
        hour_of_day = (stamps.astype("datetime64[h]").astype(np.int64)) % 24
        weekday = (stamps.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 0 = Monday
        daily = 1.0 + 0.5 * np.cos(2 * np.pi * (hour_of_day + 0.5 - 15) / 24)  # peak 15h UTC
        weekly = np.where((weekday >= 5) & weekend, WEEKEND_LEVEL, 1.0)
        return daily * weekly / ((5 + 2 * WEEKEND_LEVEL) / 7)

    def regular_users(self, n: int) -> np.ndarray:
        return self.user_of_rank[self.rng.choice(self.n_users, size=n, p=self.rank_p)]

    def new_users(self, n: int) -> np.ndarray:
        return self.n_users + self.rng.integers(0, self.n_users, size=n)

    def baseline(self) -> _Events:
        counts = self.rng.poisson(self.rate)
        return self.sessions(np.arange(self.hours), counts, self.regular_users)

    def sessions(
        self,
        hour_idx: np.ndarray,
        counts: np.ndarray,
        users: Callable[[int], np.ndarray],
        *,
        feature_p: np.ndarray = _FEATURE_P,
        trigger_p: np.ndarray = _TRIGGER_P,
    ) -> _Events:
        """`counts[i]` events in hour `hour_idx[i]`, grouped into sessions of a few events."""
        rng = self.rng
        counts = np.asarray(counts, dtype=np.int64)
        n = int(counts.sum())
        per_hour = np.where(counts > 0, np.maximum(1, np.rint(counts / SESSION_MEAN_EVENTS)), 0)
        per_hour = per_hour.astype(np.int64)
        n_sessions = int(per_hour.sum())
        first_session = np.cumsum(per_hour) - per_hour
        ev_slot = np.repeat(np.arange(len(counts)), counts)
        session = first_session[ev_slot] + (rng.random(n) * per_hour[ev_slot]).astype(np.int64)

        s_user = users(n_sessions)
        # Features are spread over each hour's sessions in proportion (systematic sampling):
        # at product scale the hourly mix is stable, and the cost noise stays under the detector.
        slot_of_session = np.repeat(np.arange(len(counts)), per_hour)
        local = np.arange(n_sessions) - first_session[slot_of_session]
        u = (local + rng.random(len(counts))[slot_of_session]) / per_hour[slot_of_session]
        s_feature = np.minimum(np.searchsorted(np.cumsum(feature_p), u), len(feature_p) - 1)
        s_start = rng.uniform(0, 3600 - SESSION_SPAN_S, size=n_sessions)

        hour_start = self.start_us + np.asarray(hour_idx, dtype=np.int64)[ev_slot] * HOUR_US
        offset_s = s_start[session] + rng.uniform(0, SESSION_SPAN_S, size=n)
        feature = s_feature[session]
        in_tok, out_tok = self.tokens(feature)
        # The router picks the model per request, from the feature's mix.
        model = np.zeros(n, dtype=np.int64)
        for f, name in enumerate(cat.FEATURES):
            mask = feature == f
            if mask.any():
                mix = cat.FEATURE_MODELS[name]
                model[mask] = rng.choice(
                    [_M[m] for m in mix], size=int(mask.sum()), p=list(mix.values())
                )
        user = s_user[session]
        events = _Events(
            t=hour_start + (offset_s * US_PER_S).astype(np.int64),
            user=user,
            session=self.next_session + session,
            feature=feature,
            trigger=rng.choice(len(cat.TRIGGERS), size=n, p=trigger_p),
            model=model,
            in_tok=in_tok,
            out_tok=out_tok,
            ua=self.user_ua[np.minimum(user, len(self.user_ua) - 1)],
        )
        # A session opens with something the user asked for; recomputes come after.
        order = np.lexsort((events.t, events.session))
        opens = np.ones(n, dtype=bool)
        opens[1:] = events.session[order][1:] != events.session[order][:-1]
        events.trigger[order[opens]] = _T["user"]
        self.next_session += n_sessions
        return events

    def tokens(self, feature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(feature)
        rng = self.rng
        in_tok = np.exp(np.log(_MED_IN[feature]) + cat.INPUT_SIGMA * rng.standard_normal(n))
        out_tok = np.exp(np.log(_MED_OUT[feature]) + cat.OUTPUT_SIGMA * rng.standard_normal(n))
        return (
            np.clip(np.rint(in_tok), 5, MAX_INPUT_TOKENS).astype(np.int64),
            np.clip(np.rint(out_tok), 1, MAX_OUTPUT_TOKENS).astype(np.int64),
        )

    def derived(
        self, events: _Events, parents: np.ndarray, delay_us: np.ndarray, trigger: int
    ) -> _Events:
        """Recomputes of existing requests: same user, session, feature and model, new output."""
        extra = events.take(parents)
        extra.t = extra.t + delay_us
        extra.trigger = np.full(len(parents), trigger, dtype=np.int64)
        _, extra.out_tok = self.tokens(extra.feature)
        return extra

    def tool_calls(
        self, events: _Events, end_us: int, outage: tuple[int, int, int] | None
    ) -> dict[str, np.ndarray]:
        """0-3 tool calls per inference of a tool-using feature, seconds after it."""
        rng = self.rng
        tool_of_feature = np.array(
            [
                TOOLS.index(cat.FEATURE_TOOL[f]) if f in cat.FEATURE_TOOL else -1
                for f in cat.FEATURES
            ]
        )
        ev_tool = tool_of_feature[events.feature]
        callers = np.flatnonzero(ev_tool >= 0)
        k = rng.choice(len(cat.TOOL_CALLS_PER_EVENT), size=len(callers), p=cat.TOOL_CALLS_PER_EVENT)
        event = np.repeat(callers, k)
        n = len(event)
        tool = ev_tool[event]
        t = events.t[event] + (rng.uniform(0.1, 8.0, size=n) * US_PER_S).astype(np.int64)
        t = np.minimum(t, end_us - 1)
        fail_p = np.array([cat.TOOL_FAILURE_RATE[name] for name in TOOLS])[tool]
        in_outage = np.zeros(n, dtype=bool)
        if outage is not None:
            lo, hi, outage_tool = outage
            in_outage = (tool == outage_tool) & (t >= lo) & (t < hi)
            fail_p = np.where(in_outage, OUTAGE_FAILURE_RATE, fail_p)
        success = rng.random(n) >= fail_p
        retries = np.where(
            success,
            rng.choice(3, size=n, p=[0.94, 0.05, 0.01]),
            rng.integers(2, 6, size=n),
        )
        outage_retries = np.where(
            success,
            rng.choice(5, size=n, p=[0.15, 0.2, 0.25, 0.25, 0.15]),
            rng.choice([3, 4, 5], size=n, p=[0.2, 0.3, 0.5]),
        )
        retries = np.where(in_outage, outage_retries, retries)
        median = np.array([cat.TOOL_LATENCY_MS[name] for name in TOOLS])[tool]
        latency = median * rng.lognormal(0, 0.5, size=n)
        latency = np.where(
            success, latency, np.maximum(latency * 4, 3000 * rng.lognormal(0, 0.3, n))
        )
        latency = np.where(in_outage & ~success, 10_000 * rng.lognormal(0, 0.05, n), latency)
        return {
            "t": t,
            "event": event,
            "feature": events.feature[event],
            "tool": tool,
            "success": success,
            "retries": retries.astype(np.int64),
            "latency": np.clip(np.rint(latency), 1, 60_000).astype(np.int64),
        }

    def change_events(
        self, scenario: str, start_us: int, end_us: int, onset_us: int
    ) -> list[tuple[datetime, str, str | None, str]]:
        """Routine deploys and config changes, plus the change that set off the incident."""
        rng = self.rng
        changes = []
        day = 1
        i = 0
        quiet_from = onset_us - 30 * HOUR_US  # keep routine noise out of the incident's 24 h
        while True:
            at_us = start_us + day * 24 * HOUR_US + int(rng.uniform(8, 17) * HOUR_US)
            if at_us >= min(end_us, quiet_from):
                break
            kind, feature, text = cat.ROUTINE_CHANGES[i % len(cat.ROUTINE_CHANGES)]
            at = _from_us(at_us)
            changes.append((at, kind, feature, text.format(n=f"{at:%Y.%m.%d}")))
            day += int(rng.integers(1, 4))
            i += 1
        cause = _INCIDENT_CHANGES.get(scenario)
        if cause is not None:
            at_us = onset_us - int(rng.uniform(1, 3) * HOUR_US)
            if at_us >= start_us:
                changes.append((_from_us(at_us), *cause))
        return changes


_INCIDENT_CHANGES: dict[str, tuple[str, str | None, str]] = {
    "traffic_surge": ("config", None, "marketing campaign launched: free trial on the homepage"),
    "autosave_loop": (
        "ux",
        None,
        "editor auto-save interval lowered 30s -> 5s (shared editor, all features)",
    ),
    "undo_storm": ("ux", None, "undo button now regenerates the last answer instead of reverting"),
    "context_bloat": (
        "prompt_template",
        None,
        "prompt template v42: full conversation history appended (was: last 10 messages)",
    ),
    "model_change": (
        "model_version",
        None,
        f"default model {MODEL_CHANGE_FROM} -> {MODEL_CHANGE_TO}, response style 'detailed' "
        f"({', '.join(MODEL_CHANGE_FEATURES)})",
    ),
    "feature_abuse": (
        "feature_flag",
        ABUSE_FEATURE,
        f"flag {ABUSE_FEATURE}_free_tier_limit disabled: no daily cap for free accounts",
    ),
}


def _parents_per_hour(
    rng: np.random.Generator, hour: np.ndarray, window_hours: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """`counts[i]` events drawn (with replacement) among those of hour `window_hours[i]`."""
    chosen = []
    for h, n in zip(window_hours.tolist(), counts.tolist(), strict=True):
        candidates = np.flatnonzero(hour == h)
        if len(candidates) and n:
            chosen.append(rng.choice(candidates, size=n))
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- loading

# The contract's columns the scenarios fill (the optional ones stay null).
INFERENCE_COLUMNS = (
    "event_id, created_at, user_id, session_id, feature, trigger_type, model, input_tokens,"
    " output_tokens, cost_usd, user_agent"
)


def _copy(cur: psycopg.Cursor, table: str, rows: Iterable[str], chunk: int = 20_000) -> None:
    with cur.copy(f"copy {table} from stdin") as copy:
        buffer = io.StringIO()
        count = 0
        for row in rows:
            buffer.write(row)
            buffer.write("\n")
            count += 1
            if count == chunk:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
                count = 0
        if count:
            copy.write(buffer.getvalue())


def _upsert_flags(cur: psycopg.Cursor, at: datetime, *, reset: bool) -> None:
    """One flag per feature; `chat` is protected from the cost cap. Never deletes a flag."""
    update = (
        "enabled = true, protected = excluded.protected, updated_at = excluded.updated_at, "
        "updated_by = excluded.updated_by"
        if reset
        else "protected = excluded.protected"
    )
    cur.executemany(
        "insert into app.feature_flags (feature, enabled, updated_at, updated_by, protected) "
        f"values (%s, true, %s, 'costwatch seed', %s) on conflict (feature) do update set {update}",
        [(feature, at, feature == "chat") for feature in cat.FEATURES],
    )


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


def _timestamps(us: np.ndarray) -> list[str]:
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return [s + "+00" for s in text.tolist()]


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _labels(values: np.ndarray, fmt: str) -> list[str]:
    unique, inverse = np.unique(values, return_inverse=True)
    labels = np.array([fmt.format(v) for v in unique.tolist()], dtype=object)
    return labels[inverse].tolist()

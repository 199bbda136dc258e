"""The scenarios of `costwatch seed --scenario`: a registry, one function per incident.

Each incident changes the product's normal data from its onset the way that real incident
would, so the runbook's queries (and costwatch's diagnosis) can tell the incidents apart. Sizes
are tuned so hourly cost is ~+50%..+150% over the same hours before, on a weekday's traffic
(the level a weekday-heavy baseline sits at): an incident on a quiet Sunday still stands out as
it would on a Tuesday.

Two knobs apply to every incident: `magnitude` multiplies its extra effect (extra requests,
extra tokens, retries; model_change's switch of model is whole at any magnitude), and a ramp
(`Incident.strength`, 0..1 per hour) makes it reach full strength gradually: a rollout to a
growing share of traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from orchestration.runbook.seed import catalog as cat
from orchestration.runbook.seed.events import Events
from orchestration.runbook.seed.simulator import (
    BOT_UAS,
    BOT_USER_BASE,
    MAX_INPUT_TOKENS,
    MAX_OUTPUT_TOKENS,
    SDK_UA,
    F,
    M,
    Simulator,
    T,
)
from orchestration.runbook.seed.timeline import HOUR_US, US_PER_S

INCIDENT_HOURS_BEFORE_END = 10

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


@dataclass
class Incident:
    """What an incident function works on: the product, its normal events, the incident's
    window (a mask over the events, and the hour indices), its ramp and magnitude."""

    sim: Simulator
    events: Events
    in_window: np.ndarray
    window_hours: np.ndarray
    strength: np.ndarray | None  # per hour of the period, 0..1; None: full strength throughout
    magnitude: float = 1.0

    @property
    def rng(self) -> np.random.Generator:
        return self.sim.rng

    def weekday_rate(self) -> np.ndarray:
        """Expected events of a weekday in each window hour, times the ramp's strength."""
        lam = self.sim.ref_rate[self.window_hours]
        if self.strength is not None:
            lam = lam * self.strength[self.window_hours]
        return lam

    def scaled(self, factor: float) -> float:
        """A multiplicative effect (x3.5 tokens) at this magnitude: 1 + (factor - 1) * m."""
        return factor if self.magnitude == 1.0 else 1.0 + (factor - 1.0) * self.magnitude

    def rolled_out(self, index: np.ndarray) -> np.ndarray:
        """The events of `index` the incident reaches: all of them, or under a ramp each with
        the probability of its hour's strength."""
        if self.strength is None:
            return index
        hour = (self.events.t[index] - self.sim.start_us) // HOUR_US
        return index[self.rng.random(len(index)) < self.strength[hour]]

    def event_hours(self) -> np.ndarray:
        return (self.events.t - self.sim.start_us) // HOUR_US


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    apply: Callable[[Incident], Events | None] | None = None
    change: tuple[str, str | None, str] | None = None  # the change event that set it off
    one_hour: bool = False  # the incident lasts one hour (a blip), not to the end
    outage_tool: str | None = None  # the tool failing from the onset

    @property
    def has_incident(self) -> bool:
        return self.apply is not None


# --------------------------------------------------------------------------- the incidents


def _traffic_surge(inc: Incident) -> Events:
    extra = inc.rng.poisson(SURGE_EXTRA_TRAFFIC * inc.magnitude * inc.weekday_rate())
    return inc.sim.sessions(inc.window_hours, extra, inc.sim.new_users)


def _blip(inc: Incident) -> Events:
    extra = inc.rng.poisson(BLIP_EXTRA_TRAFFIC * inc.magnitude * inc.weekday_rate())
    return inc.sim.sessions(inc.window_hours, extra, inc.sim.new_users)


def _bot_traffic(inc: Incident) -> Events:
    rng = inc.rng
    weights = rng.dirichlet(np.full(BOT_COUNT, 2.0))

    def bots(n: int) -> np.ndarray:
        return BOT_USER_BASE + rng.choice(BOT_COUNT, size=n, p=weights)

    extra = inc.sim.sessions(
        inc.window_hours,
        rng.poisson(BOT_EXTRA_TRAFFIC * inc.magnitude * inc.weekday_rate()),
        bots,
        trigger_p=np.array([1.0, 0.0, 0.0, 0.0]),
    )
    extra.ua = np.array(BOT_UAS)[(extra.user - BOT_USER_BASE) % len(BOT_UAS)]
    return extra


def _feature_abuse(inc: Incident) -> Events:
    rng, sim = inc.rng, inc.sim
    abusers = sim.user_of_rank[rng.integers(200, sim.n_users, size=ABUSE_USERS)]
    feature_p = np.zeros(len(cat.FEATURES))
    feature_p[F[ABUSE_FEATURE]] = 1.0
    share = cat.FEATURE_WEIGHTS[ABUSE_FEATURE]
    extra = sim.sessions(
        inc.window_hours,
        rng.poisson((ABUSE_FACTOR - 1.0) * inc.magnitude * share * inc.weekday_rate()),
        lambda n: rng.choice(abusers, size=n),
        feature_p=feature_p,
    )
    extra.ua = np.full(len(extra), SDK_UA)
    return extra


def _autosave_loop(inc: Incident) -> Events:
    rng = inc.rng
    counts = rng.poisson(AUTOSAVE_EXTRA * inc.magnitude * inc.weekday_rate())
    parents = _parents_per_hour(rng, inc.event_hours(), inc.window_hours, counts)
    delay = rng.integers(1, 13, size=len(parents)) * 5 * US_PER_S  # every 5 s while open
    return inc.sim.derived(inc.events, parents, delay, T["auto_save"])


def _undo_storm(inc: Incident) -> Events:
    rng = inc.rng
    counts = rng.poisson(UNDO_EXTRA * inc.magnitude * inc.weekday_rate())
    parents = _parents_per_hour(rng, inc.event_hours(), inc.window_hours, counts)
    delay = (rng.uniform(2, 45, size=len(parents)) * US_PER_S).astype(np.int64)
    return inc.sim.derived(inc.events, parents, delay, T["undo"])


def _tool_outage(inc: Incident) -> Events:
    rng, sim, events = inc.rng, inc.sim, inc.events
    hour = inc.event_hours()
    window_idx = np.flatnonzero(inc.in_window)
    callers = [F[f] for f, tool in cat.FEATURE_TOOL.items() if tool == OUTAGE_TOOL]
    parents0 = window_idx[np.isin(events.feature[window_idx], callers)]
    # Retries per calling event, on a weekday's level (the tool fails as often on a Sunday).
    level = sim.ref_rate[hour[parents0]] / sim.rate[hour[parents0]]
    if inc.strength is not None:
        level = level * inc.strength[hour[parents0]]
    k = rng.poisson(OUTAGE_RETRIES_PER_EVENT * inc.magnitude * level)
    parents = np.repeat(parents0, k)
    nth = np.arange(len(parents)) - np.repeat(np.cumsum(k) - k, k) + 1
    delay = (nth * rng.uniform(4, 15, size=len(parents)) * US_PER_S).astype(np.int64)
    return sim.derived(events, parents, delay, T["retry"])


def _context_bloat(inc: Incident) -> None:
    events = inc.events
    idx = inc.rolled_out(np.flatnonzero(inc.in_window))
    factor = inc.scaled(CONTEXT_BLOAT_FACTOR)
    grown = events.in_tok[idx] * factor * inc.rng.lognormal(0, 0.15, len(idx))
    events.in_tok[idx] = np.clip(np.rint(grown), 1, MAX_INPUT_TOKENS).astype(np.int64)


def _model_change(inc: Incident) -> None:
    events = inc.events
    window_idx = np.flatnonzero(inc.in_window)
    affected = window_idx[
        np.isin(events.feature[window_idx], [F[f] for f in MODEL_CHANGE_FEATURES])
    ]
    affected = inc.rolled_out(affected)
    switched = affected[events.model[affected] == M[MODEL_CHANGE_FROM]]
    events.model[switched] = M[MODEL_CHANGE_TO]
    grown = events.out_tok[affected] * inc.scaled(MODEL_CHANGE_OUTPUT_FACTOR)
    grown = grown * inc.rng.lognormal(0, 0.15, len(affected))
    events.out_tok[affected] = np.clip(np.rint(grown), 1, MAX_OUTPUT_TOKENS).astype(np.int64)


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


# --------------------------------------------------------------------------- the registry

_ALL: tuple[Scenario, ...] = (
    Scenario("quiet", "normal traffic, no incident"),
    Scenario(
        "traffic_surge",
        "+100% requests from new users at a flat cost per request (a campaign)",
        _traffic_surge,
        change=("config", None, "marketing campaign launched: free trial on the homepage"),
    ),
    Scenario(
        "bot_traffic",
        f"+100% requests from {BOT_COUNT} scripted clients",
        _bot_traffic,
    ),
    Scenario(
        "autosave_loop",
        "hidden auto_save recomputes in existing sessions",
        _autosave_loop,
        change=(
            "ux",
            None,
            "editor auto-save interval lowered 30s -> 5s (shared editor, all features)",
        ),
    ),
    Scenario(
        "undo_storm",
        "hidden undo recomputes",
        _undo_storm,
        change=("ux", None, "undo button now regenerates the last answer instead of reverting"),
    ),
    Scenario(
        "context_bloat",
        f"input tokens x{CONTEXT_BLOAT_FACTOR}",
        _context_bloat,
        change=(
            "prompt_template",
            None,
            "prompt template v42: full conversation history appended (was: last 10 messages)",
        ),
    ),
    Scenario(
        "model_change",
        f"{MODEL_CHANGE_FROM} -> {MODEL_CHANGE_TO} with longer outputs on "
        f"{', '.join(MODEL_CHANGE_FEATURES)}",
        _model_change,
        change=(
            "model_version",
            None,
            f"default model {MODEL_CHANGE_FROM} -> {MODEL_CHANGE_TO}, response style 'detailed' "
            f"({', '.join(MODEL_CHANGE_FEATURES)})",
        ),
    ),
    Scenario(
        "feature_abuse",
        f"{ABUSE_FEATURE} requests x{ABUSE_FACTOR:g} from {ABUSE_USERS} accounts",
        _feature_abuse,
        change=(
            "feature_flag",
            ABUSE_FEATURE,
            f"flag {ABUSE_FEATURE}_free_tier_limit disabled: no daily cap for free accounts",
        ),
    ),
    Scenario(
        "tool_outage",
        f"{OUTAGE_TOOL} fails {OUTAGE_FAILURE_RATE:.0%} of calls; callers retry",
        _tool_outage,
        outage_tool=OUTAGE_TOOL,
    ),
    Scenario("blip", "one hour at ~2.5x traffic: must open nothing", _blip, one_hour=True),
)
REGISTRY: dict[str, Scenario] = {s.name: s for s in _ALL}
SCENARIOS: tuple[str, ...] = tuple(REGISTRY)

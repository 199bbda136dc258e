"""The synthetic product: its users, traffic, sessions, tokens, tools and routine changes.

A `Simulator` draws the normal life of the product from its random stream; the scenarios
(`orchestration.runbook.seed.scenarios`) then change it from their onset. Draw order matters: the
same arguments must give the same rows, so new options draw nothing unless they are used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from orchestration.runbook.seed import catalog as cat
from orchestration.runbook.seed.events import Events
from orchestration.runbook.seed.shape import TrafficShape
from orchestration.runbook.seed.timeline import HOUR_US, US_PER_S, from_us

SESSION_MEAN_EVENTS = 3.0
SESSION_SPAN_S = 600.0
USERS_PER_HOURLY_EVENT = 20
ZIPF_EXPONENT = 0.7
BOT_USER_BASE = 9_000_000
MAX_INPUT_TOKENS = 128_000
MAX_OUTPUT_TOKENS = 16_000

UA_LIST: tuple[str, ...] = (*cat.USER_AGENTS, *cat.BOT_USER_AGENTS)
_UA_P = np.array([*cat.USER_AGENTS.values(), *[0.0] * len(cat.BOT_USER_AGENTS)])
_UA_P = _UA_P / _UA_P.sum()
SDK_UA = UA_LIST.index(cat.SDK_USER_AGENT)
BOT_UAS = [UA_LIST.index(ua) for ua in cat.BOT_USER_AGENTS]
FEATURE_P = np.array(list(cat.FEATURE_WEIGHTS.values()))
TRIGGER_P = np.array(cat.TRIGGER_WEIGHTS)
_MED_IN = np.array([cat.TOKEN_MEDIANS[f][0] for f in cat.FEATURES], dtype=float)
_MED_OUT = np.array([cat.TOKEN_MEDIANS[f][1] for f in cat.FEATURES], dtype=float)
PRICE_IN = np.array([cat.MODEL_PRICES[m][0] for m in cat.MODELS])
PRICE_OUT = np.array([cat.MODEL_PRICES[m][1] for m in cat.MODELS])
F = {name: i for i, name in enumerate(cat.FEATURES)}
M = {name: i for i, name in enumerate(cat.MODELS)}
T = {name: i for i, name in enumerate(cat.TRIGGERS)}
TOOLS: tuple[str, ...] = tuple(cat.TOOL_FAILURE_RATE)


@dataclass(frozen=True)
class Outage:
    """A tool failing at `failure_rate` in [start_us, end_us); `strength(t)` (a ramp) is the
    share of its calls affected at time t, all of them when None."""

    start_us: int
    end_us: int
    tool: int
    failure_rate: float
    strength: Callable[[np.ndarray], np.ndarray] | None = None


class Simulator:
    """The synthetic product: its users, traffic shape, sessions and tools."""

    def __init__(
        self,
        rng: np.random.Generator,
        start_us: int,
        hours: int,
        events_per_hour: int,
        shape: TrafficShape | None = None,
    ):
        self.rng = rng
        self.start_us = start_us
        self.hours = hours
        self.shape = shape or TrafficShape()
        self.n_users = max(100, events_per_hour * USERS_PER_HOURLY_EVENT)
        weights = np.arange(1, self.n_users + 1, dtype=float) ** -ZIPF_EXPONENT
        self.rank_p = weights / weights.sum()
        self.user_of_rank = rng.permutation(self.n_users)
        # Users 0..n-1 are the regulars; n..2n-1 newcomers (campaigns, a viral post).
        self.user_ua = rng.choice(len(UA_LIST), size=2 * self.n_users, p=_UA_P)
        self.next_session = 0
        self.rate = events_per_hour * self.shape.hourly_level(start_us, hours)
        self.ref_rate = events_per_hour * self.shape.hourly_level(start_us, hours, weekend=False)

    def with_rng(self, rng: np.random.Generator) -> Simulator:
        """The same product, drawing from another stream (the incident's)."""
        other = object.__new__(Simulator)
        other.__dict__.update(self.__dict__)
        other.rng = rng
        other.next_session = self.next_session
        return other

    def regular_users(self, n: int) -> np.ndarray:
        return self.user_of_rank[self.rng.choice(self.n_users, size=n, p=self.rank_p)]

    def new_users(self, n: int) -> np.ndarray:
        return self.n_users + self.rng.integers(0, self.n_users, size=n)

    def baseline(self) -> Events:
        counts = self.rng.poisson(self.rate)
        return self.sessions(np.arange(self.hours), counts, self.regular_users)

    def sessions(
        self,
        hour_idx: np.ndarray,
        counts: np.ndarray,
        users: Callable[[int], np.ndarray],
        *,
        feature_p: np.ndarray = FEATURE_P,
        trigger_p: np.ndarray = TRIGGER_P,
    ) -> Events:
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
                    [M[m] for m in mix], size=int(mask.sum()), p=list(mix.values())
                )
        user = s_user[session]
        events = Events(
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
        events.trigger[order[opens]] = T["user"]
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
        self, events: Events, parents: np.ndarray, delay_us: np.ndarray, trigger: int
    ) -> Events:
        """Recomputes of existing requests: same user, session, feature and model, new output."""
        extra = events.take(parents)
        extra.t = extra.t + delay_us
        extra.trigger = np.full(len(parents), trigger, dtype=np.int64)
        _, extra.out_tok = self.tokens(extra.feature)
        return extra

    def tool_calls(
        self, events: Events, end_us: int, outage: Outage | None
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
            in_outage = (tool == outage.tool) & (t >= outage.start_us) & (t < outage.end_us)
            if outage.strength is not None:  # a ramp: a growing share of the calls fails
                in_outage &= rng.random(n) < outage.strength(t)
            fail_p = np.where(in_outage, outage.failure_rate, fail_p)
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
        self,
        start_us: int,
        end_us: int,
        onset_us: int,
        cause: tuple[str, str | None, str] | None,
    ) -> list[tuple[datetime, str, str | None, str]]:
        """Routine deploys and config changes, plus `cause`: the change that set off the
        incident, 1-3 hours before its onset."""
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
            at = from_us(at_us)
            changes.append((at, kind, feature, text.format(n=f"{at:%Y.%m.%d}")))
            day += int(rng.integers(1, 4))
            i += 1
        if cause is not None:
            at_us = onset_us - int(rng.uniform(1, 3) * HOUR_US)
            if at_us >= start_us:
                changes.append((from_us(at_us), *cause))
        return changes

"""From generated arrays to the raw tables: text rows for COPY, the feature flags."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg

from orchestration.runbook.seed import catalog as cat
from orchestration.runbook.seed.events import Events
from orchestration.runbook.seed.simulator import PRICE_IN, PRICE_OUT, TOOLS, UA_LIST


@dataclass
class SeedData:
    """Everything one `seed` call writes, before formatting."""

    tag: str
    events: Events
    tools: dict[str, np.ndarray]
    changes: list[tuple[datetime, str, str | None, str]]

    @property
    def n_tool_calls(self) -> int:
        return len(self.tools["t"])

    def costs(self) -> np.ndarray:
        """Each event's cost in USD (list price of its tokens), as written to cost_usd."""
        ev = self.events
        cost = (ev.in_tok * PRICE_IN[ev.model] + ev.out_tok * PRICE_OUT[ev.model]) / 1e6
        return np.round(cost, 8)

    def inference_rows(self, since_us: int | None = None, until_us: int | None = None):
        """Text rows for COPY; `since_us`/`until_us` keep those created in [since, until) with
        the ids they have in the whole load (a load replayed in parts is the same load)."""
        ev = self.events
        keep = _between(ev.t, since_us, until_us)
        cols = [
            [f"ev-{self.tag}-{i}" for i in keep.tolist()],
            _timestamps(ev.t[keep]),
            _labels(ev.user[keep], "u-{:07d}"),
            _labels(ev.session[keep], f"s-{self.tag}-" + "{}"),
            np.array(cat.FEATURES)[ev.feature[keep]].tolist(),
            np.array(cat.TRIGGERS)[ev.trigger[keep]].tolist(),
            np.array(cat.MODELS)[ev.model[keep]].tolist(),
            ev.in_tok[keep].astype(str).tolist(),
            ev.out_tok[keep].astype(str).tolist(),
            np.char.mod("%.8f", self.costs()[keep]).tolist(),
            np.array(UA_LIST)[ev.ua[keep]].tolist(),
        ]
        return map("\t".join, zip(*cols, strict=True))

    def tool_rows(self, since_us: int | None = None, until_us: int | None = None):
        tc = self.tools
        keep = _between(tc["t"], since_us, until_us)
        cols = [
            [f"tc-{self.tag}-{i}" for i in keep.tolist()],
            _timestamps(tc["t"][keep]),
            [f"ev-{self.tag}-{i}" for i in tc["event"][keep].tolist()],
            np.array(cat.FEATURES)[tc["feature"][keep]].tolist(),
            np.array(TOOLS)[tc["tool"][keep]].tolist(),
            np.where(tc["success"][keep], "t", "f").tolist(),
            tc["retries"][keep].astype(str).tolist(),
            tc["latency"][keep].astype(str).tolist(),
        ]
        return map("\t".join, zip(*cols, strict=True))

    def change_rows(self, since: datetime | None = None, until: datetime | None = None):
        for i, (at, kind, feature, description) in enumerate(self.changes):
            if (since is not None and at < since) or (until is not None and at >= until):
                continue
            yield "\t".join(
                (f"chg-{self.tag}-{i}", at.isoformat(), kind, feature or r"\N", description)
            )


# The contract's columns the scenarios fill (the optional ones, added later, stay null).
INFERENCE_COLUMNS = (
    "event_id, created_at, user_id, session_id, feature, trigger_type, model, input_tokens,"
    " output_tokens, cost_usd, user_agent"
)


def write(cur: psycopg.Cursor, data: SeedData) -> None:
    """COPY the rows into the three raw tables (the caller holds the transaction)."""
    copy_rows(cur, f"raw.inference_events ({INFERENCE_COLUMNS})", data.inference_rows())
    copy_rows(cur, "raw.tool_calls", data.tool_rows())
    copy_rows(cur, "raw.change_events", data.change_rows())


def copy_rows(cur: psycopg.Cursor, table: str, rows: Iterable[str], chunk: int = 20_000) -> None:
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


def upsert_flags(cur: psycopg.Cursor, at: datetime, *, reset: bool) -> None:
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


def _between(t: np.ndarray, since_us: int | None, until_us: int | None) -> np.ndarray:
    """Indices of the times in [since_us, until_us) (either bound optional)."""
    mask = np.ones(len(t), dtype=bool)
    if since_us is not None:
        mask &= t >= since_us
    if until_us is not None:
        mask &= t < until_us
    return np.flatnonzero(mask)


def _timestamps(us: np.ndarray) -> list[str]:
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return [s + "+00" for s in text.tolist()]


def _labels(values: np.ndarray, fmt: str) -> list[str]:
    unique, inverse = np.unique(values, return_inverse=True)
    labels = np.array([fmt.format(v) for v in unique.tolist()], dtype=object)
    return labels[inverse].tolist()

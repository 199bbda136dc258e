"""From generated arrays to the raw tables: text rows for COPY, the feature flags."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg

from orchestration.seed import catalog as cat
from orchestration.seed.events import Events
from orchestration.seed.simulator import PRICE_IN, PRICE_OUT, TOOLS, UA_LIST


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

    def inference_rows(self) -> Iterable[str]:
        ev = self.events
        n = len(ev)
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
            np.char.mod("%.8f", self.costs()).tolist(),
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


def write(cur: psycopg.Cursor, data: SeedData) -> None:
    """COPY the rows into the three raw tables (the caller holds the transaction)."""
    copy_rows(cur, "raw.inference_events", data.inference_rows())
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


def _timestamps(us: np.ndarray) -> list[str]:
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return [s + "+00" for s in text.tolist()]


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _labels(values: np.ndarray, fmt: str) -> list[str]:
    unique, inverse = np.unique(values, return_inverse=True)
    labels = np.array([fmt.format(v) for v in unique.tolist()], dtype=object)
    return labels[inverse].tolist()

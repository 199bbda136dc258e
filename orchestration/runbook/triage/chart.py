"""The triage chart: hourly cost against its baseline, the spike shaded, the excess by cause.

matplotlib is imported inside `render_chart` (its import is slow) and drawn on an Agg canvas
without pyplot, so rendering is thread-safe and needs no display.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestration.core.formatting import money, strip_control

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _label(text: Any, limit: int = 40) -> str:
    """A name as a plain matplotlib label: one line, no mathtext (`$`), not too long."""
    out = strip_control(text)
    out = out if len(out) <= limit else out[: limit - 1] + "…"
    return out.replace("$", r"\$")


def render_chart(
    hours: Sequence[Mapping[str, Any]],
    spike_start: datetime | None = None,
    spike_end: datetime | None = None,
    causes: Sequence[tuple[str, float]] = (),
    title: str = "",
    changes: Sequence[Mapping[str, Any]] = (),
    trigger_at: datetime | None = None,
) -> bytes:
    """PNG bytes: `hours` ({hour, total_cost_usd, baseline_cost_usd}) as cost vs baseline with
    [spike_start, spike_end] shaded, UTC on the axis; `causes` (label, usd) as the excess split
    by cause (the same figures as the report's); `changes` (raw.change_events rows: changed_at,
    kind, description) marked on the time axis, the likely trigger (at `trigger_at`) in bold."""
    # Start-up time: matplotlib (0.6 s to import) loads for the first chart, not for the CLI.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    with_causes = bool(causes)
    fig = Figure(figsize=(11, 4.2) if with_causes else (9, 4.2), dpi=90)
    FigureCanvasAgg(fig)
    if with_causes:
        grid = fig.add_gridspec(1, 2, width_ratios=(2.6, 1))
        ax = fig.add_subplot(grid[0, 0])
        bars = fig.add_subplot(grid[0, 1])
    else:
        ax, bars = fig.add_subplot(1, 1, 1), None

    xs = [h["hour"] for h in hours]
    cost = [float(h.get("total_cost_usd") or 0) for h in hours]
    base = [
        float(h["baseline_cost_usd"]) if h.get("baseline_cost_usd") is not None else float("nan")
        for h in hours
    ]
    ax.plot(xs, cost, color="#c0392b", linewidth=1.8, label="hourly cost", drawstyle="steps-post")
    ax.plot(
        xs,
        base,
        color="#7f8c8d",
        linewidth=1.4,
        linestyle="--",
        label="baseline",
        drawstyle="steps-post",
    )
    if spike_start is not None:
        end = (spike_end or spike_start) + timedelta(hours=1)
        ax.axvspan(spike_start, end, color="#e74c3c", alpha=0.15, label="spike")
    first = xs[0] if xs else None
    for change in changes:
        at = change.get("changed_at")
        if not isinstance(at, datetime) or (first is not None and at < first):
            continue
        likely = trigger_at is not None and at == trigger_at
        ax.axvline(at, color="#2c3e50", linewidth=1.6 if likely else 0.9, linestyle=":")
        ax.annotate(
            _label(f"{change.get('kind')}: {change.get('description') or ''}", 48),
            xy=(at, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            rotation=90,
            va="top",
            fontsize=7,
            fontweight="bold" if likely else "normal",
            color="#2c3e50",
            # legible where it crosses the cost line (seen in the UI)
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )
    ax.set_ylabel("USD per hour")
    ax.set_xlabel("hour (UTC)", fontsize=8)
    ax.set_title(_label(title, 90) or "hourly cost vs baseline, last 48 hours", fontsize=10)
    ax.xaxis.set_major_formatter(DateFormatter("%m-%d\n%H:%M", tz=UTC))
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=8)

    if bars is not None:
        labels = [_label(name) for name, _ in causes][::-1]
        values = [float(v) for _, v in causes][::-1]
        colors = [
            "#bdc3c7" if name.startswith(("not explained", "offset")) else "#e67e22"
            for name in labels
        ]
        drawn = bars.barh(range(len(values)), values, color=colors, height=0.6)
        bars.bar_label(
            drawn, labels=[money(v).replace("$", r"\$") for v in values], fontsize=8, padding=2
        )
        bars.margins(x=0.25)
        bars.set_yticks(range(len(values)), labels, fontsize=8)
        bars.set_xlabel("USD of excess")
        bars.set_title("excess by cause", fontsize=10)
        bars.tick_params(axis="x", labelsize=8)
        bars.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()

"""`costwatch seed --scenario NAME ...`: synthetic events with one injected incident."""

from __future__ import annotations

import argparse

from orchestration.cli.common import (
    CostwatchError,
    console,
    fraction,
    parse_timestamp,
    positive_int,
)
from orchestration.core.database import connect
from orchestration.core.embedded import database_url
from orchestration.runbook import seed as seeding
from orchestration.runbook.seed.shape import WEEKEND_LEVEL


def register(sub: argparse._SubParsersAction) -> None:
    seed = sub.add_parser(
        "seed",
        help="append synthetic events for a scenario",
        description="Append synthetic events (14 days by default) with one injected incident "
        "(10 hours before --end unless --onset says when) that lasts to --end.",
    )
    seed.add_argument(
        "--scenario",
        required=True,
        metavar="NAME",
        help="quiet, traffic_surge, bot_traffic, autosave_loop, undo_storm, context_bloat, "
        "model_change, feature_abuse, tool_outage or blip (one hour only: opens nothing)",
    )
    seed.add_argument(
        "--days", type=positive_int, default=14, help="length of the period (default 14)"
    )
    seed.add_argument(
        "--hours", type=positive_int, default=None, help="a period in hours instead of --days"
    )
    seed.add_argument(
        "--events-per-hour",
        type=positive_int,
        default=None,
        metavar="N",
        help="mean events per hour over a week (default 1000; ~80 is a small product)",
    )
    seed.add_argument(
        "--seed", type=int, default=0, metavar="N", help="random seed (same seed, same data)"
    )
    seed.add_argument(
        "--end",
        type=parse_timestamp,
        default=None,
        metavar="TIMESTAMP",
        help="ISO timestamp the data ends at (default: now, rounded down to the hour)",
    )
    seed.add_argument(
        "--replace", action="store_true", help="delete the raw events first (destructive)"
    )
    _add_shape_arguments(seed)
    seed.set_defaults(handler=_cmd_seed)


def _add_shape_arguments(seed: argparse.ArgumentParser) -> None:
    """Traffic shapes and incident timing (`make accuracy` builds its rows from these)."""
    shape = seed.add_argument_group("traffic shape (defaults: the product as always simulated)")
    shape.add_argument(
        "--weekend-ratio",
        type=fraction,
        default=WEEKEND_LEVEL,
        metavar="R",
        help=f"Saturday and Sunday traffic relative to a weekday, e.g. 0.3-1.0 "
        f"(default {WEEKEND_LEVEL})",
    )
    shape.add_argument(
        "--daily-growth",
        type=fraction,
        default=0.0,
        metavar="G",
        help="compound traffic change per day from the start, e.g. 0.03 or 3%% (+3%%/day), "
        "-0.02 (a decline); --events-per-hour is the level at the start (default 0)",
    )
    shape.add_argument(
        "--step-factor",
        type=float,
        default=1.0,
        metavar="F",
        help="a lasting change of level: traffic x F from --step-at on (a launch, a new "
        "customer; default 1, no step)",
    )
    shape.add_argument(
        "--step-at",
        type=parse_timestamp,
        default=None,
        metavar="TIMESTAMP",
        help="when the --step-factor starts (ISO timestamp)",
    )
    incident = seed.add_argument_group("the incident")
    incident.add_argument(
        "--onset",
        type=parse_timestamp,
        default=None,
        metavar="TIMESTAMP",
        help="when the incident starts (ISO timestamp inside the period; default: 10 hours "
        "before --end); it lasts to --end (one hour for blip)",
    )
    incident.add_argument(
        "--ramp-hours",
        type=float,
        default=None,
        metavar="N",
        help="the incident reaches full strength gradually over N hours (a rollout to a "
        "growing share of traffic; default: full strength at the onset)",
    )
    incident.add_argument(
        "--magnitude", type=float, default=1.0, metavar="M",
        help="scale of the incident's extra effect (extra requests, tokens, retries): 0.5 "
        "half, 2 double (default 1)",
    )  # fmt: skip


def _cmd_seed(args: argparse.Namespace) -> int:
    if args.scenario not in seeding.SCENARIOS:
        raise CostwatchError(
            f"unknown scenario {args.scenario!r}; choose one of: {', '.join(seeding.SCENARIOS)}"
        )
    try:
        shape = seeding.TrafficShape(
            weekend_ratio=args.weekend_ratio,
            daily_growth=args.daily_growth,
            step_factor=args.step_factor,
            step_at=args.step_at,
        )
    except seeding.ShapeError as err:
        raise CostwatchError(str(err)) from None
    events_per_hour = args.events_per_hour or seeding.DEFAULT_EVENTS_PER_HOUR
    with connect(database_url()) as conn:
        try:
            summary = seeding.seed(
                conn,
                args.scenario,
                days=args.days,
                events_per_hour=events_per_hour,
                seed=args.seed,
                end=args.end,
                replace=args.replace,
                hours=args.hours,
                shape=shape,
                onset=args.onset,
                ramp_hours=args.ramp_hours,
                magnitude=args.magnitude,
            )
        except seeding.ShapeError as err:
            raise CostwatchError(str(err)) from None
    onset = f", incident from {summary.onset:%Y-%m-%d %H:%M}" if summary.onset else ""
    console().print(
        f"seeded {summary.scenario}: {summary.inference_events:,} inference events, "
        f"{summary.tool_calls:,} tool calls, {summary.change_events} change events "
        f"from {summary.start:%Y-%m-%d %H:%M} to {summary.end:%Y-%m-%d %H:%M} UTC{onset}"
    )
    return 0

"""The `costwatch` command: the edge where every error a user can hit becomes one clear line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from orchestration.database import DatabaseError, first_line, redact
from orchestration.ingest.cli import IngestError


class CostwatchError(RuntimeError):
    """An error for the user: printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"costwatch: error: {message} (see `{self.prog} --help`)\n")


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- db


def _cmd_db(args: argparse.Namespace) -> int:
    from orchestration.database import EmbeddedPostgres, configured_url, connect, database_url

    out = _console()
    server = EmbeddedPostgres()
    if args.db_command == "start":
        if configured_url():
            out.print("COSTWATCH_DATABASE_URL is set: nothing to start")
            return 0
        url = server.start()
        out.print(f"embedded PostgreSQL running at {redact(url)} (data: {server.data_dir})")
    elif args.db_command == "stop":
        if configured_url():
            out.print("COSTWATCH_DATABASE_URL is set: costwatch does not stop that server")
            return 0
        stopped = server.stop()
        out.print(
            "embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running"
        )
    elif args.db_command == "status":
        if configured_url():
            url = database_url()
            with connect(url) as conn:
                version = conn.execute("show server_version").fetchone()[0]
            out.print(f"configured database {redact(url)}: reachable, PostgreSQL {version}")
            return 0
        status = server.status()
        state = f"running (pid {status.pid}, port {status.port})" if status.running else "stopped"
        out.print(f"embedded PostgreSQL {state}; data: {status.data_dir}")
        return 0 if status.running else 3
    elif args.db_command == "url":
        sys.stdout.write(database_url(start=False) + "\n")
    elif args.db_command == "init":
        from orchestration.schema import init_database

        url = database_url()
        init_database(url)
        out.print(f"raw, app and ops tables ready in {redact(url)}")
    elif args.db_command == "env":
        return _db_env(args)
    elif args.db_command == "grant-analyst":
        from orchestration.schema import grant_analyst

        grant_analyst(database_url(), args.role)
        out.print(f"role {args.role} may read schema marts, nothing else")
    return 0


def _db_env(args: argparse.Namespace) -> int:
    """Print (or run a command with) the variables dbt and Dagster need for this database."""
    from orchestration.database import database_url, dbt_env

    url = database_url()
    env = {"COSTWATCH_DATABASE_URL": url, **dbt_env(url)}
    if args.exec:
        os.environ.update(env)
        # dagster-dbt's `prepare_if_dev` (under `dagster dev`) runs `dbt` from PATH: this venv's.
        venv_bin = str(Path(sys.executable).parent)
        os.environ["PATH"] = os.pathsep.join([venv_bin, os.environ.get("PATH", "")])
        command = [c for c in args.exec if c != "--"]
        if not command:
            raise CostwatchError("db env --exec needs a command")
        os.execvp(command[0], command)
    import shlex

    for key, value in env.items():
        sys.stdout.write(f"export {key}={shlex.quote(value)}\n")
    return 0


# --------------------------------------------------------------------------- seed


def _parse_end(value: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO timestamp: {value!r} (e.g. 2026-11-29T12:00:00Z)"
        ) from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    return number


def _fraction(value: str) -> float:
    """A number, or a percentage ("3%" is 0.03)."""
    text = value.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None


def _add_shape_arguments(seed: argparse.ArgumentParser) -> None:
    """Traffic shapes and incident timing (`make accuracy` builds its rows from these)."""
    from orchestration.seed.shape import WEEKEND_LEVEL

    shape = seed.add_argument_group("traffic shape (defaults: the product as always simulated)")
    shape.add_argument(
        "--weekend-ratio",
        type=_fraction,
        default=WEEKEND_LEVEL,
        metavar="R",
        help=f"Saturday and Sunday traffic relative to a weekday, e.g. 0.3-1.0 "
        f"(default {WEEKEND_LEVEL})",
    )
    shape.add_argument(
        "--daily-growth",
        type=_fraction,
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
        type=_parse_end,
        default=None,
        metavar="TIMESTAMP",
        help="when the --step-factor starts (ISO timestamp)",
    )
    incident = seed.add_argument_group("the incident")
    incident.add_argument(
        "--onset",
        type=_parse_end,
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
    from orchestration import seed as seeding
    from orchestration.database import connect, database_url

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
    with connect(database_url()) as conn:
        try:
            summary = seeding.seed(
                conn,
                args.scenario,
                days=args.days,
                events_per_hour=args.events_per_hour,
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
    _console().print(
        f"seeded {summary.scenario}: {summary.inference_events:,} inference events, "
        f"{summary.tool_calls:,} tool calls, {summary.change_events} change events "
        f"from {summary.start:%Y-%m-%d %H:%M} to {summary.end:%Y-%m-%d %H:%M} UTC{onset}"
    )
    return 0


# --------------------------------------------------------------------------- pipeline


def _cmd_prepare(args: argparse.Namespace) -> int:
    from orchestration.project import prepare_manifest

    path = prepare_manifest(force=args.force)
    _console().print(f"dbt manifest ready: {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from orchestration.pipeline import PassError, run_pass

    if args.verbose:
        os.environ["COSTWATCH_LOG_LEVEL"] = "INFO"
    if not sys.stdout.isatty():
        os.environ.setdefault("DBT_USE_COLORS", "false")  # no ANSI codes in a pipe or a file
    try:
        result = run_pass(full_refresh=args.full_refresh, wait_seconds=args.wait)
    except PassError as err:
        raise CostwatchError(str(err)) from None
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(result.to_json(), indent=2))
    out = _console()
    out.print(result.summary())
    return 0 if result.success else 1


def _cmd_triage(args: argparse.Namespace) -> int:
    from orchestration.database import database_url
    from orchestration.triage import triage_markdown

    markdown = triage_markdown(database_url(), spike_id=args.spike)
    if args.summary:
        from orchestration.triage.report import summary_markdown

        markdown = summary_markdown(markdown)
    fmt = args.format or ("text" if sys.stdout.isatty() else "md")
    if fmt == "md":
        sys.stdout.write(markdown + "\n")
    else:
        from rich.console import Console
        from rich.markdown import Markdown

        # wrapped to the terminal (the default console's soft wrap would crop rendered lines)
        Console(highlight=False).print(Markdown(markdown, hyperlinks=False))
    return 0


def _cmd_incidents(args: argparse.Namespace) -> int:
    # Loaded on use: the CLI's other commands start without rich's tables and the engine.
    from orchestration.incidents.cli import IncidentsError, incidents_command

    try:
        return incidents_command(args)
    except IncidentsError as err:
        raise CostwatchError(str(err)) from None


# --------------------------------------------------------------------------- parser


QUICK_START = """\
quick start (embedded PostgreSQL, nothing else to install):
  costwatch db start                                 start the database (data in .costwatch/)
  costwatch db init                                  create the raw, app and ops tables
  costwatch seed --scenario autosave_loop --replace  14 days of events with one incident
  costwatch run                                      one pass: dbt, checks, incidents, alerts
  costwatch triage                                   the filled-in runbook for the latest spike

examples:
  costwatch triage --format md > report.md           the report as Markdown, for a file or Slack
  costwatch triage --spike spike-2026-12-01T11       an older spike (a wrong id lists the known)
  costwatch incidents list                           the incident log; then `incidents ack ID`
  costwatch run -v                                   the pass with dbt's and Dagster's full log
  COSTWATCH_VAR_SPIKE_THRESHOLD_PCT=0.3 costwatch run   any dbt var, for one pass

Set COSTWATCH_DATABASE_URL to use your own PostgreSQL; COSTWATCH_SLACK_WEBHOOK_URL,
COSTWATCH_ALERT_WEBHOOK_URL or COSTWATCH_PAGERDUTY_ROUTING_KEY to send alerts (README: all).
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("costwatch")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without install
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="costwatch",
        description="Watch LLM inference spend and work the Cost Spike Runbook by itself.",
        epilog=QUICK_START,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"costwatch {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )

    db = sub.add_parser("db", help="the database: embedded PostgreSQL or COSTWATCH_DATABASE_URL")
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    db_sub.add_parser("start", help="start the embedded PostgreSQL (harmless when running)")
    db_sub.add_parser("stop", help="stop the embedded PostgreSQL (data is kept)")
    db_sub.add_parser("status", help="is the database up")
    db_sub.add_parser("url", help="print the libpq URL in use")
    db_sub.add_parser("init", help="create the raw, app and ops tables if missing (idempotent)")
    env = db_sub.add_parser(
        "env", help="print the variables dbt and Dagster read, or run a command"
    )
    env.add_argument("--exec", nargs=argparse.REMAINDER, help="run this command with them set")
    grant = db_sub.add_parser("grant-analyst", help="let ROLE read schema marts and nothing else")
    grant.add_argument("role", help="an existing PostgreSQL role")
    db.set_defaults(handler=_cmd_db)

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
        "--days", type=_positive_int, default=14, help="length of the period (default 14)"
    )
    seed.add_argument(
        "--hours", type=_positive_int, default=None, help="a period in hours instead of --days"
    )
    seed.add_argument(
        "--events-per-hour",
        type=_positive_int,
        default=None,
        metavar="N",
        help="mean events per hour over a week (default 1000; ~80 is a small product)",
    )
    seed.add_argument(
        "--seed", type=int, default=0, metavar="N", help="random seed (same seed, same data)"
    )
    seed.add_argument(
        "--end",
        type=_parse_end,
        default=None,
        metavar="TIMESTAMP",
        help="ISO timestamp the data ends at (default: now, rounded down to the hour)",
    )
    seed.add_argument(
        "--replace", action="store_true", help="delete the raw events first (destructive)"
    )
    _add_shape_arguments(seed)
    seed.set_defaults(handler=_cmd_seed)

    prepare = sub.add_parser("prepare", help="build dbt's manifest (done by `run` when stale)")
    prepare.add_argument("--force", action="store_true", help="rebuild it even when current")
    prepare.set_defaults(handler=_cmd_prepare)

    run = sub.add_parser(
        "run", help="one full pass: every asset, checks, then the incident sensors"
    )
    run.add_argument("--full-refresh", action="store_true", help="rebuild incremental models")
    run.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for another pass on the same database (default 900)",
    )
    run.add_argument("--json", metavar="PATH", help="also write the pass's figures and timings")
    run.add_argument(
        "-v", "--verbose", action="store_true", help="stream dbt's and Dagster's full run log"
    )
    run.set_defaults(handler=_cmd_run)

    triage = sub.add_parser("triage", help="the filled-in runbook for the latest (or given) spike")
    triage.add_argument(
        "--spike", default=None, metavar="ID", help="a spike_id (default: the latest)"
    )
    triage.add_argument(
        "--format",
        choices=("text", "md"),
        default=None,
        help="text (rendered for a terminal) or md (Markdown, for files, Slack and the UI); "
        "default: text in a terminal, md when piped",
    )
    triage.add_argument(
        "--summary", action="store_true", help="only the title and the five-line on-call summary"
    )
    triage.set_defaults(handler=_cmd_triage)

    incidents = sub.add_parser("incidents", help="the incident log")
    inc_sub = incidents.add_subparsers(dest="incidents_command", parser_class=_Parser)
    inc_sub.add_parser("list", help="recent incidents")
    for name, text in (
        ("show", "one incident, with its report"),
        ("ack", "acknowledge: no escalation, PagerDuty acknowledged"),
        ("resolve", "resolve by hand"),
    ):
        p = inc_sub.add_parser(name, help=text)
        p.add_argument(
            "incident_id", type=_positive_int, metavar="ID", help="the incident's number"
        )
    incidents.set_defaults(handler=_cmd_incidents, incidents_command="list")

    from orchestration.ingest.cli import register as register_ingest

    register_ingest(sub, _Parser, _positive_int)  # prices, otlp serve, ingest otlp|langfuse
    return parser


# Commands that start the embedded PostgreSQL when it is not running.
_STARTS_DATABASE = {"seed", "run", "triage", "incidents", "sql", "ingest", "otlp"}


def _announce_embedded_start(args: argparse.Namespace) -> None:
    """Say so when this command is about to start the embedded database (it keeps running)."""
    needs = args.command in _STARTS_DATABASE or (
        args.command == "db" and args.db_command in ("init", "env", "grant-analyst")
    )
    if not needs:
        return
    from orchestration.database import EmbeddedPostgres, configured_url

    if configured_url():
        return
    server = EmbeddedPostgres()
    if not server.status().running:
        sys.stderr.write(
            f"costwatch: starting the embedded PostgreSQL (data: {server.data_dir}); it keeps "
            "running until `costwatch db stop`\n"
        )


def _defaults_for_environment() -> None:
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "true")


def main(argv: Sequence[str] | None = None) -> None:
    _defaults_for_environment()
    args = build_parser().parse_args(argv)
    if getattr(args, "events_per_hour", 0) is None:
        from orchestration.seed import DEFAULT_EVENTS_PER_HOUR

        args.events_per_hour = DEFAULT_EVENTS_PER_HOUR
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        _announce_embedded_start(args)
        code = handler(args)
    except (CostwatchError, DatabaseError, IngestError) as err:
        sys.stderr.write(f"costwatch: error: {first_line(err)}\n")
        code = 1
    except KeyboardInterrupt:
        sys.stderr.write("costwatch: interrupted\n")
        code = 130
    except Exception as err:  # noqa: BLE001 - the edge: one line, never a traceback
        known = _known_error(err)
        sys.stderr.write(f"costwatch: error: {known}\n")
        if os.environ.get("COSTWATCH_DEBUG"):
            raise
        code = 1
    sys.stdout.flush()
    raise SystemExit(code)


def _known_error(err: Exception) -> str:
    """One line for errors from libraries (psycopg, dbt, Dagster), secrets redacted."""
    import psycopg

    if isinstance(err, psycopg.errors.UndefinedTable):
        return f"{first_line(err)} (run `costwatch db init`)"
    if isinstance(err, psycopg.Error):
        return f"database: {first_line(err)}"
    return f"{type(err).__name__}: {first_line(err)}"


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

"""The `costwatch` command: the edge where every error a user can hit becomes one clear line.

One module per command group (`db`, `seed`, `run` with `prepare` and `triage`, `incidents`,
`ingest` with `prices` and `otlp`), each with a `register` that adds its parsers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

import psycopg

from orchestration.cli import db, incidents, ingest, run, seed, sql
from orchestration.cli.common import CostwatchError, Parser, positive_int
from orchestration.core.database import DatabaseError, first_line
from orchestration.core.embedded import EmbeddedPostgres, configured_url

__all__ = ["CostwatchError", "build_parser", "main"]

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
  costwatch sql "select * from cost_daily" --format csv   any read-only query on the marts
  costwatch run -v                                   the pass with dbt's and Dagster's full log
  COSTWATCH_VAR_SPIKE_THRESHOLD_PCT=0.3 costwatch run   any dbt var, for one pass

Set COSTWATCH_DATABASE_URL to use your own PostgreSQL; COSTWATCH_SLACK_WEBHOOK_URL,
COSTWATCH_ALERT_WEBHOOK_URL or COSTWATCH_PAGERDUTY_ROUTING_KEY to send alerts (README: all).
"""


def _version() -> str:
    try:
        return version("costwatch")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without install
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="costwatch",
        description="Watch LLM inference spend and work the Cost Spike Runbook by itself.",
        epilog=QUICK_START,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"costwatch {_version()}", help="print the version"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=Parser, metavar="COMMAND"
    )
    db.register(sub)
    seed.register(sub)
    run.register(sub)  # prepare, run, triage
    incidents.register(sub)
    ingest.register(sub, Parser, positive_int)  # prices, otlp serve, ingest otlp|langfuse
    sql.register(sub)
    return parser


# Commands that start the embedded PostgreSQL when it is not running.
_STARTS_DATABASE = {"seed", "run", "triage", "incidents", "sql", "ingest", "otlp"}


def _announce_embedded_start(args: argparse.Namespace) -> None:
    """Say so when this command is about to start the embedded database (it keeps running)."""
    needs = args.command in _STARTS_DATABASE or (
        args.command == "db" and args.db_command in db.STARTS_DATABASE
    )
    if args.command in ("sql", "run", "triage") and sql.reads_spark():
        return  # sql reads the Spark marts' files; run and triage refuse Spark (for now)
    if not needs or configured_url():
        return
    server = EmbeddedPostgres()
    if not server.status().running:
        sys.stderr.write(
            f"costwatch: starting the embedded PostgreSQL (data: {server.data_dir}); it keeps "
            "running until `costwatch db stop`\n"
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        _announce_embedded_start(args)
        code = handler(args)
    except (
        CostwatchError,
        DatabaseError,
        ingest.IngestError,
        incidents.IncidentsError,
    ) as err:
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
    if isinstance(err, psycopg.errors.UndefinedTable):
        return f"{first_line(err)} (run `costwatch db init`)"
    if isinstance(err, psycopg.Error):
        return f"database: {first_line(err)}"
    return f"{type(err).__name__}: {first_line(err)}"


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])

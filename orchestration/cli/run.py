"""`costwatch prepare`, `costwatch run` (one pass) and `costwatch triage` (its report)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown

from orchestration.cli.common import CostwatchError, console
from orchestration.core.config import Config
from orchestration.core.embedded import database_url
from orchestration.core.engine import EngineError, check_engine, engine_name
from orchestration.runbook.triage.report import summary_markdown, triage_markdown


def register(sub: argparse._SubParsersAction) -> None:
    prepare = sub.add_parser("prepare", help="build dbt's manifest (done by `run` when stale)")
    prepare.add_argument("--force", action="store_true", help="rebuild it even when current")
    prepare.set_defaults(handler=_cmd_prepare)

    run = sub.add_parser(
        "run", help="one full pass: every asset and check, the incident step and its alerts"
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


def _cmd_prepare(args: argparse.Namespace) -> int:
    # Start-up time: dagster-dbt (seconds to import) loads only for the commands that use it.
    from orchestration.defs.project import prepare_manifest

    path = prepare_manifest(force=args.force)
    console().print(f"dbt manifest ready: {path}")
    return 0


def _engine(check=check_engine) -> str:
    """COSTWATCH_ENGINE (and for a pass what it needs), checked before anything starts."""
    try:
        return check()
    except EngineError as err:
        raise CostwatchError(str(err)) from None


def _cmd_run(args: argparse.Namespace) -> int:
    _engine()
    # Start-up time: Dagster and the definitions (seconds to import) load only for a pass.
    from orchestration.pipeline import PassError, run_pass

    config = Config.load()
    if args.verbose:
        config = config.replace(log_level="INFO")
    try:
        result = run_pass(full_refresh=args.full_refresh, wait_seconds=args.wait, config=config)
    except PassError as err:
        raise CostwatchError(str(err)) from None
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2))
    console().print(result.summary())
    return 0 if result.success else 1


def _cmd_triage(args: argparse.Namespace) -> int:
    # On either engine the report reads PostgreSQL: on Spark, the marts the pass copied there.
    _engine(engine_name)
    markdown = triage_markdown(database_url(), spike_id=args.spike)
    if args.summary:
        markdown = summary_markdown(markdown)
    fmt = args.format or ("text" if sys.stdout.isatty() else "md")
    if fmt == "md":
        sys.stdout.write(markdown + "\n")
    else:
        # wrapped to the terminal (the default console's soft wrap would crop rendered lines)
        Console(highlight=False).print(Markdown(markdown, hyperlinks=False))
    return 0

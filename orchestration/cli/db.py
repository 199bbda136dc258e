"""`costwatch db start | stop | status | url | init | env | grant-analyst`."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from orchestration.cli.common import CostwatchError, Parser, console
from orchestration.core.database import connect, dbt_env, redact
from orchestration.core.embedded import EmbeddedPostgres, configured_url, database_url
from orchestration.core.schema import grant_analyst, init_database

# The `db` commands that start the embedded PostgreSQL when it is not running.
STARTS_DATABASE = ("init", "env", "grant-analyst")


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="the database: embedded PostgreSQL or COSTWATCH_DATABASE_URL")
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=Parser)
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


def _cmd_db(args: argparse.Namespace) -> int:
    out = console()
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
        url = database_url()
        init_database(url)
        out.print(f"raw, app and ops tables ready in {redact(url)}")
    elif args.db_command == "env":
        return _db_env(args)
    elif args.db_command == "grant-analyst":
        grant_analyst(database_url(), args.role)
        out.print(f"role {args.role} may read schema marts, nothing else")
    return 0


def _db_env(args: argparse.Namespace) -> int:
    """Print (or run a command with) the variables dbt and Dagster need for this database."""
    url = database_url()
    env = {"COSTWATCH_DATABASE_URL": url, **dbt_env(url)}
    if args.exec:
        # The command's own environment (this process's is left as it is); dagster-dbt's
        # `prepare_if_dev` (under `dagster dev`) runs `dbt` from PATH: this venv's first.
        venv_bin = str(Path(sys.executable).parent)
        path = os.pathsep.join([venv_bin, os.environ.get("PATH", "")])
        command = [c for c in args.exec if c != "--"]
        if not command:
            raise CostwatchError("db env --exec needs a command")
        os.execvpe(command[0], command, {**os.environ, **env, "PATH": path})
    for key, value in env.items():
        sys.stdout.write(f"export {key}={shlex.quote(value)}\n")
    return 0

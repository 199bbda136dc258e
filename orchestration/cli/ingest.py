"""The ingestion commands: `prices refresh`, `otlp serve`, `ingest otlp|langfuse` (wired into
`costwatch` by `register`). Errors a user can hit raise IngestError: one line at the edge."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from rich.console import Console

from orchestration.core.config import Config
from orchestration.core.embedded import database_url
from orchestration.runbook.ingest import files, prices
from orchestration.runbook.ingest.receiver import MAX_BODY_BYTES, Receiver, ReceiverError


class IngestError(RuntimeError):
    """Bad input or configuration: one line, exit 1."""


def register(sub: argparse._SubParsersAction, parser_class: type, port_type) -> None:
    """Add the commands to `costwatch`'s subparsers."""
    kw = {"required": True, "parser_class": parser_class}
    prices = sub.add_parser("prices", help="the dated model price table (dbt seed model_prices)")
    prices_sub = prices.add_subparsers(
        dest="prices_command", required=True, parser_class=parser_class
    )
    prices_sub.add_parser("refresh", help="regenerate the seed from the installed genai-prices")
    prices.set_defaults(handler=_cmd_prices)

    otlp = sub.add_parser("otlp", help="OpenTelemetry: receive GenAI spans over OTLP/HTTP")
    otlp_sub = otlp.add_subparsers(dest="otlp_command", **kw)
    serve = otlp_sub.add_parser("serve", help="serve POST /v1/traces (protobuf or JSON)")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=port_type, default=4318, help="port (default 4318)")
    serve.add_argument(
        "--max-body-bytes", type=port_type, default=None, help="request size cap (default 16 MiB)"
    )
    otlp.set_defaults(handler=_cmd_otlp)

    ingest = sub.add_parser("ingest", help="load spans or observations exported to files")
    ingest_sub = ingest.add_subparsers(
        dest="ingest_command", required=True, parser_class=parser_class
    )
    otlp_files = ingest_sub.add_parser(
        "otlp", help="OTLP JSON files (the Collector's file exporter)"
    )
    otlp_files.add_argument("files", nargs="+", type=Path, help="OTLP/JSON files, one or more")
    langfuse = ingest_sub.add_parser("langfuse", help="a Langfuse observations export folder")
    langfuse.add_argument("directory", type=Path, help="the export's folder")
    ingest.set_defaults(handler=_cmd_ingest)


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _cmd_prices(args: argparse.Namespace) -> int:
    rows = prices.refresh()
    _console().print(
        f"wrote {rows:,} prices to {prices.SEED_PATH} from {prices.package_version()};"
        " the next `costwatch run` loads them (`--full-refresh` re-prices events already checked)"
    )
    return 0


def _cmd_otlp(args: argparse.Namespace) -> int:
    config = Config.load()
    try:
        receiver = Receiver(
            database_url(),
            host=args.host,
            port=args.port,
            token=config.otlp_token,
            feature_key=config.otlp_feature_attribute,
            max_body_bytes=args.max_body_bytes or MAX_BODY_BYTES,
        )
    except ReceiverError as err:
        raise IngestError(str(err)) from None
    except OSError as err:
        raise IngestError(f"cannot listen on {args.host}:{args.port}: {err.strerror}") from None

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=receiver.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = receiver.server_address[:2]
    auth = " (Bearer token required)" if receiver.token else ""
    _console().print(f"OTLP/HTTP receiver on http://{host}:{port}/v1/traces{auth}")
    try:
        receiver.serve_forever(poll_interval=0.2)
    finally:
        receiver.close()
    _console().print(f"stopped: {receiver.writer.stored_spans:,} spans stored")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    console = _console()
    if args.ingest_command == "otlp":
        report = files.ingest_otlp_files(database_url(), args.files, console=console)
    else:
        if not args.directory.is_dir():
            raise IngestError(f"not a folder: {args.directory}")
        report = files.ingest_langfuse(database_url(), args.directory, console=console)
    for path, reason in report.rejected_files:
        console.print(f"rejected {path}: {reason}")
    console.print(report.summary())
    return 1 if report.rejected_files and not report.loaded_files else 0

"""What every `costwatch` command shares: the one-line error, the parser, argument types."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from rich.console import Console


class CostwatchError(RuntimeError):
    """An error for the user: printed as one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"costwatch: error: {message} (see `{self.prog} --help`)\n")


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def parse_timestamp(value: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO timestamp: {value!r} (e.g. 2026-11-29T12:00:00Z)"
        ) from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    return number


def fraction(value: str) -> float:
    """A number, or a percentage ("3%" is 0.03)."""
    text = value.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None

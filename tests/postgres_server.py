"""A real, throwaway PostgreSQL 15 for tests: ``initdb`` in a temp dir, ``postgres`` on a free port.

Use it from a test module with ``from postgres_server import database_url, fresh_database_url,
postgres_server`` (all three: pytest resolves a fixture's own fixtures by name in the test's
module; tests/ is on sys.path through its conftest). ``database_url`` is a session-scoped URL of the
server's ``postgres`` database; ``fresh_database_url`` creates an empty database for one test, so
tests never see each other's tables. ``PostgresServer`` itself lets a test stop and restart a
server of its own.

PostgreSQL refuses to run as root. When the tests run as root (CI containers), the server's
commands run as the unprivileged ``nobody`` through ``runuser -u nobody --``, in a temp dir made
by ``tempfile.mkdtemp`` directly under /tmp (pytest's own tmp dirs are 0700 root, which nobody
cannot enter) and chowned to nobody. As any other user, they run as that user. The server listens
on 127.0.0.1 only, trusts local connections (``--auth=trust``), and its unix socket goes into the
temp dir (the default /var/run/postgresql is root's). ``fsync=off``: the data is thrown away.

When the binaries are missing the fixtures skip, saying which path was looked for.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("SHOPASSIST_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "nobody"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_reason() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL binaries not found: no {PG_BIN / tool} (install postgresql-15, or set SHOPASSIST_TEST_PG_BIN)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing: PostgreSQL refuses to run as root"
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} user to run PostgreSQL as"
    return None


class PostgresServer:
    """One PostgreSQL cluster in a temp dir; ``start``/``stop`` keep its data and port."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="shopassist-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam(RUN_AS)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as_user = ["runuser", "-u", RUN_AS, "--"]
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_of(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr or done.stdout}\n{log}")

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start"
        )

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self) -> str:
        """A new empty database on this server; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_of(name)

    def destroy(self) -> None:
        if self.is_running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def started_server() -> PostgresServer:
    """A started server, or a skip saying why there cannot be one."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = started_server()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def database_url(postgres_server: PostgresServer) -> str:
    """The URL of the session's PostgreSQL (its ``postgres`` database)."""
    return postgres_server.url


@pytest.fixture()
def fresh_database_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database on the session's server, for one test."""
    return postgres_server.create_database()

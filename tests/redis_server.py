"""A real, throwaway Redis for the tests: ``redis-server`` on a free port in a temp dir.

    pytest_plugins = ["redis_server"]   # in a test module (tests/ is on sys.path: its conftest)

``redis_url`` (session-scoped) starts one server for the whole test run with the settings
production needs for durable writes (``--appendonly yes --appendfsync always``) and yields its
URL (database 0); the tests keep apart by namespace or database. ``RedisServer`` can also be
stopped and started again on the same port and data dir (what the restart tests do). Tests that
need it are skipped, with the reason, when the ``redis-server`` binary is not installed (Debian:
``apt-get install redis-server``; set ``REDIS_SERVER`` to use another binary).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BINARY = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1:``port`` with its files in ``folder``."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> None:
        args = [
            BINARY,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.folder),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s:.0f}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def need_redis() -> None:
    if not os.access(BINARY, os.X_OK):
        pytest.skip(f"redis-server not found ({BINARY}): install Debian's redis-server or set REDIS_SERVER")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real Redis (AOF, fsync on every write) running for the whole test session."""
    need_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture()
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of one test's own, which it may stop and start again (restart and outage tests)."""
    need_redis()
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()

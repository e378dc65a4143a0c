"""A long-lived local agent process that ``shopassist ask`` hands its turns to.

Why: a fresh ``ask`` process spends ~5-6 s on its own start (imports, the LLM client, the rule
vocabularies, the catalog and facet snapshots) and 1-3 s loading the query embedder and Chroma
before its turn even begins; on 2 CPU cores that alone put a second ``ask`` over 10 s. The model
already lives in one shared server per home (``assistant.llm.daemon``); this does the same for the
agent. The first ``ask`` answers in its own process as before and then starts this server in the
background; later ``ask`` commands with the same home, settings and code connect to it, send the
message, and print the turn's events as they come (the same rendering as in-process), so the
shopper waits only for the turn itself.

The server listens on a Unix socket, ``HOME/agent-servers/KEY.sock`` (0600 in the 0700 home: only
the home's owner can connect), next to its record ``KEY.json`` (pid, socket, start time) and its
log. ``KEY`` digests the settings (home, collection, backends, the LLM's settings or none) and the
code (every project source file's size and mtime), so a server started by other settings or by
other code is never used. One turn runs at a time (the LLM has one slot on a small machine); a
second ``ask`` waits for it. It stops itself after ``SHOPASSIST_AGENT_IDLE_MINUTES`` (default 15)
without a request; ``0`` turns the server off (every ``ask`` then runs in its own process).
``shopassist agent status|stop`` shows and stops it.

The protocol is one JSON request line (``{"session": ..., "message": ...}``) and then one JSON line
per ``TurnEvent``; a failed turn sends ``{"type": "error", "message": ...}``. Catalog writes by any
process are searchable in the server's next turn (the catalog refreshes before every search), and
sessions are the same files the in-process path uses, so a conversation continues across both.

    python -m ui.agent_server     # reads (settings, llm settings, idle seconds) pickled on stdin
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from assistant.events import StreamedLineEvent, TurnEvent

log = logging.getLogger(__name__)

DIR = "agent-servers"
IDLE_ENV = "SHOPASSIST_AGENT_IDLE_MINUTES"
DEFAULT_IDLE_MINUTES = 15.0
STARTING_GRACE_S = 180  # a server still starting after this long is taken for dead
_ROOT = Path(__file__).resolve().parents[1]
_PACKAGES = ("assistant", "retrieval", "ranking", "ui", "shopassist")
_EVENTS: TypeAdapter[Any] = TypeAdapter(TurnEvent)  # type: ignore[arg-type]


class ServerGone(Exception):
    """The agent server went away before the turn's end (the caller may run the turn itself)."""


def idle_seconds() -> float:
    raw = os.environ.get(IDLE_ENV, "").strip()
    try:
        minutes = float(raw) if raw else DEFAULT_IDLE_MINUTES
    except ValueError:
        from shopassist.errors import UsageError

        raise UsageError(
            f"{IDLE_ENV} must be a number of minutes (got {raw!r}); 0 turns the agent server off."
        ) from None
    return max(0.0, minutes * 60)


def _code_stamp() -> bytes:
    h = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((_ROOT / package).rglob("*.py")):
            with contextlib.suppress(OSError):
                st = path.stat()
                h.update(f"{path.relative_to(_ROOT)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.digest()


def server_key(settings: Any, llm_settings: Any) -> str:
    """Which server may answer for these settings and this code (secrets only enter the digest)."""
    h = hashlib.sha256(repr(settings).encode())
    h.update(repr(llm_settings).encode())
    h.update(_code_stamp())
    return h.hexdigest()[:16]


def _paths(home: Path, key: str) -> tuple[Path, Path, Path]:
    folder = Path(home) / DIR
    return folder / f"{key}.sock", folder / f"{key}.json", folder / f"{key}.log"


def _alive(pid: int) -> bool:
    from assistant.llm.daemon import pid_alive

    return pid_alive(pid)


def read_records(home: Path) -> list[dict[str, Any]]:
    """Every agent server recorded under ``home`` that is still alive (dead records are removed)."""
    out = []
    folder = Path(home) / DIR
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        if not _alive(pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        out.append({**record, "record": str(path)})
    return out


# -- the client side (``shopassist ask``) ------------------------------------------------------------
def connect(home: Path, key: str, timeout: float = 600.0) -> socket.socket | None:
    """A connection to the ready server for ``key``, or None (no server, still starting, dead)."""
    sock_path, record_path, _ = _paths(home, key)
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not record.get("ready") or not _alive(int(record.get("pid", 0))):
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(str(sock_path))
    except OSError:
        conn.close()
        return None
    return conn


def remote_turn(conn: socket.socket, session_id: str, message: str) -> Iterator[TurnEvent]:
    """Send one turn and yield its events as the server produces them."""
    with conn, conn.makefile("rb") as reader:
        conn.sendall(json.dumps({"session": session_id, "message": message}, ensure_ascii=False).encode() + b"\n")
        done = False
        for raw in reader:
            data = json.loads(raw)
            kind = data.get("type")
            if kind == "error":
                from shopassist.errors import ShopAssistError

                raise ShopAssistError(f"the agent server could not answer: {data.get('message')}")
            if kind == "reply_line" and "delta" in data:
                yield StreamedLineEvent.model_validate(data)
            else:
                yield _EVENTS.validate_python(data)
            done = done or kind == "done"
        if not done:
            raise ServerGone("the agent server closed the connection before the turn's end")


def spawn(settings: Any, llm_settings: Any, key: str, idle: float) -> int | None:
    """Start the server for ``key`` in the background unless one is running or starting; its pid."""
    home = Path(settings.home)
    sock_path, record_path, log_path = _paths(home, key)
    record_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_path = record_path.with_suffix(".lock")
    import fcntl

    with open(lock_path, "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            pid = int(record.get("pid", 0))
            fresh = record.get("ready") or time.time() - float(record.get("started", 0)) < STARTING_GRACE_S
            if _alive(pid) and fresh:
                return None  # running or starting
        except (OSError, ValueError, TypeError):
            pass
        log_file = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
        os.chmod(log_path, 0o600)
        proc = subprocess.Popen(
            [sys.executable, "-m", "ui.agent_server"],
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=log_file,
            cwd=str(_ROOT),
            start_new_session=True,  # not stopped with the command that started it
        )
        log_file.close()
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps((settings, llm_settings, idle, key)))
        proc.stdin.close()
        _write_record(record_path, {"pid": proc.pid, "socket": str(sock_path), "started": time.time(), "ready": False})
        return proc.pid


def stop(home: Path, timeout: float = 10.0) -> list[int]:
    """Stop every agent server of ``home``; the pids stopped."""
    import signal

    stopped = []
    for record in read_records(home):
        pid = int(record["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped.append(pid)
        with contextlib.suppress(OSError):
            Path(record["record"]).unlink()
    return stopped


def _write_record(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# -- the server side ---------------------------------------------------------------------------------
class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        srv = self.server
        srv.active += 1
        try:
            line = self.rfile.readline(1_000_000)
            try:
                request = json.loads(line)
                session_id, message = str(request["session"]), str(request["message"])
            except (ValueError, KeyError, TypeError):
                self._send({"type": "error", "message": "bad request: one JSON line with session and message"})
                return
            with srv.turn_lock:  # one turn at a time: the embedded LLM has one slot
                try:
                    for event in srv.agent.turn(session_id, message):
                        self.wfile.write(event.model_dump_json().encode() + b"\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    log.info("the client left during a turn")
                except Exception as exc:  # a failed turn is the client's error, not the server's end
                    log.exception("turn failed")
                    with contextlib.suppress(OSError):
                        self._send({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            srv.active -= 1
            srv.last_used = time.monotonic()

    def _send(self, data: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(data, ensure_ascii=False).encode() + b"\n")
        self.wfile.flush()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, agent: Any) -> None:
        self.agent = agent
        self.turn_lock = threading.Lock()
        self.active = 0
        self.last_used = time.monotonic()
        super().__init__(path, _Handler)


def serve(settings: Any, llm_settings: Any, idle: float, key: str) -> None:
    from assistant.stack import build_stack

    home = Path(settings.home)
    sock_path, record_path, _ = _paths(home, key)
    started = time.time()
    with build_stack(settings, llm=llm_settings) as stack:
        agent = stack.agent
        if stack.catalog.embedder is not None:  # the first turn should not pay for these either
            stack.catalog.embedder.embed_query("warm up")
            _ = stack.catalog.vectors
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        old = os.umask(0o177)
        try:
            server = _Server(str(sock_path), agent)
        finally:
            os.umask(old)
        _write_record(
            record_path,
            {"pid": os.getpid(), "socket": str(sock_path), "started": started, "ready": True, "key": key},
        )
        log.warning(
            "agent server %s ready in %.1f s on %s (idle stop %.0f s)", key, time.time() - started, sock_path, idle
        )

        def watchdog() -> None:
            while True:
                time.sleep(min(5.0, max(idle / 4, 0.2)))
                if server.active == 0 and time.monotonic() - server.last_used > idle:
                    log.warning("agent server %s idle for %.0f s: stopping", key, idle)
                    server.shutdown()
                    return

        threading.Thread(target=watchdog, name="idle-watchdog", daemon=True).start()
        import signal

        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
            with contextlib.suppress(OSError):
                sock_path.unlink()
            with contextlib.suppress(OSError, ValueError):
                if json.loads(record_path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                    record_path.unlink()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings, llm_settings, idle, key = pickle.loads(sys.stdin.buffer.read())
    serve(settings, llm_settings, float(idle), str(key))


if __name__ == "__main__":
    main()

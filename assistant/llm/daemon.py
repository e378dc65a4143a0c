"""One shared llama.cpp server per home: the first command loads the model, later ones reuse it.

Loading the 1.1 GB model costs seconds on a quiet machine and minutes on a busy one; a
``shopassist ask`` that loaded it in-process paid that on every call and lost llama.cpp's prompt
cache with it. Instead the first process starts this module in the background
(``python -m assistant.llm.daemon``); it loads the model, serves it on 127.0.0.1 (a port the OS
picks) behind a random bearer token, records where it is, and stops itself once no process has
been attached for ``idle_seconds``.

    server = connect(ServerSpec(...), home, progress=True)   # reuse a live, matching server or start one
    client = LLMClient(server.base_url, spec.alias, api_key=server.token, server=server)
    client.close()                                           # detaches; the server keeps running

Files under HOME/llm-servers/, one set per ``ServerSpec.key`` (model sha256 or file identity,
alias, threads, ctx, parallel: a server loaded differently is never reused):

| file           | what                                                                          |
|----------------|-------------------------------------------------------------------------------|
| ``KEY.json``   | the record (pid, url, token, model, settings, load time), 0600, written by the |
|                | server once the model answers, removed when it stops                          |
| ``KEY.lock``   | held exclusively by the one process that checks for and starts a server       |
|                | (two commands racing start one server)                                         |
| ``KEY.users``  | held *shared* by every attached client for its lifetime; the server counts as |
|                | idle only while it can lock it exclusively, so it never stops under a user    |
| ``KEY.log``    | the server's output (llama.cpp's messages): read it when a start fails        |

Robustness: a record whose pid is gone, that does not answer with its token, or that names
another model is stale: it is removed (and a hung server of ours is terminated) and a new one is
started. Locks are ``flock``s, released by the kernel when a process dies, so a crashed client
never pins the server and a crashed starter never blocks the next one.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import http.server
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from shopassist.errors import BackendError, folder_error

SERVERS_DIR = "llm-servers"
TOKEN_ENV = "SHOPASSIST_LLM_SERVER_TOKEN"
MODULE = "assistant.llm.daemon"
START_TIMEOUT_S = 600.0  # loading on a busy 2-core machine has taken minutes
# remembered between runs so the next start can say how long it will take
_DEFAULT_LOAD_ESTIMATE_S = 10.0


@dataclass(frozen=True)
class ServerSpec:
    """What a shared server loads and how; everything but ``idle_seconds`` must match to reuse one."""

    gguf: str
    sha256: str | None
    alias: str
    threads: int
    ctx: int
    parallel: int
    idle_seconds: float

    @property
    def identity(self) -> str:
        """The model's sha256, or for an unverified user GGUF its path, size and mtime."""
        if self.sha256:
            return self.sha256
        try:
            stat = Path(self.gguf).stat()
        except OSError:
            return f"{self.gguf}:missing"
        return f"{Path(self.gguf).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"

    @property
    def key(self) -> str:
        parts = [self.identity, self.alias, str(self.threads), str(self.ctx), str(self.parallel)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def matches(self, record: dict[str, Any]) -> bool:
        return (
            record.get("identity") == self.identity
            and record.get("alias") == self.alias
            and record.get("threads") == self.threads
            and record.get("ctx") == self.ctx
            and record.get("parallel") == self.parallel
        )


@dataclass(frozen=True)
class Paths:
    home: Path
    key: str

    @property
    def folder(self) -> Path:
        return self.home / SERVERS_DIR

    @property
    def record(self) -> Path:
        return self.folder / f"{self.key}.json"

    @property
    def lock(self) -> Path:
        return self.folder / f"{self.key}.lock"

    @property
    def users(self) -> Path:
        return self.folder / f"{self.key}.users"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.key}.log"

    @property
    def load_estimate(self) -> Path:
        return self.folder / "last-load-seconds"


# -- records -----------------------------------------------------------------------------------------
def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None when it is missing, unreadable or malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if not isinstance(data.get("pid"), int) or not isinstance(data.get("url"), str):
        return None
    if not isinstance(data.get("token"), str):
        return None
    return data


def _write_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``, readable by the owner only (it holds the token)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def records(home: Path) -> list[dict[str, Any]]:
    """Every server record under ``home`` (live or stale), each with its ``key``."""
    folder = Path(home) / SERVERS_DIR
    out = []
    for path in sorted(folder.glob("*.json")):
        record = read_record(path)
        if record is not None:
            out.append({**record, "key": path.stem})
    return out


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a dead child its parent has not reaped yet)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to touch
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def is_our_daemon(pid: int) -> bool:
    """The process runs this module (checked before any signal is sent to a recorded pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return MODULE.encode() in cmdline


def answers(record: dict[str, Any], timeout: float = 3.0) -> bool:
    """The recorded server is up, accepts the recorded token and serves the recorded model.

    llama.cpp keeps ``/v1/models`` behind its API key (only ``/health`` is open), so a 200 there
    also proves the token: a stranger that took over the port after a crash does not pass.
    """
    if not pid_alive(int(record["pid"])):
        return False
    headers = {"Authorization": f"Bearer {record['token']}"}
    try:
        with httpx.Client(timeout=timeout, headers=headers) as http:
            models = http.get(record["url"] + "/v1/models")
            if models.status_code != 200:
                return False
            ids = [m.get("id") for m in models.json().get("data") or [] if isinstance(m, dict)]
            return record.get("alias") in ids
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def server_status(home: Path) -> list[dict[str, Any]]:
    """Each recorded server, whether it answers, and whether a process is attached to it now."""
    out = []
    for record in records(home):
        paths = Paths(Path(home), record["key"])
        alive = answers(record)
        out.append(
            {
                "key": record["key"],
                "pid": record["pid"],
                "url": record["url"] + "/v1",
                "alive": alive,
                "in_use": alive and _in_use(paths.users),
                "model": record.get("gguf"),
                "sha256": record.get("sha256"),
                "threads": record.get("threads"),
                "ctx": record.get("ctx"),
                "idle_minutes": round(float(record.get("idle_seconds", 0)) / 60, 2),
                "load_seconds": record.get("load_seconds"),
                "started": record.get("started"),
                "log": str(paths.log),
            }
        )
    return out


# -- locks -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[IO[bytes]]:
    handle = path.open("a+b")
    try:
        fcntl.flock(handle.fileno(), mode)
        yield handle
    finally:
        handle.close()  # closing releases the lock


def _in_use(users: Path) -> bool:
    """Some process holds the users lock (shared): an exclusive try fails."""
    try:
        with _flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB):
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False


# -- the client side ---------------------------------------------------------------------------------
class SharedServer:
    """A client's attachment to a shared server: what ``LLMClient(server=...)`` holds.

    Holds the users lock (shared) until ``stop()``, which detaches; it never stops the server
    (``stop_servers`` does). The attributes mirror ``EmbeddedServer`` for ``LLMClient.info()``.
    """

    shared = True

    def __init__(self, record: dict[str, Any], lease: IO[bytes], *, started: bool) -> None:
        self.record = record
        self.token: str = record["token"]
        self.root_url: str = record["url"]
        self.base_url = self.root_url + "/v1"
        self.model_path = Path(record.get("gguf") or "")
        self.alias = str(record.get("alias"))
        self.threads = int(record.get("threads") or 0)
        self.ctx = int(record.get("ctx") or 0)
        self.load_seconds: float | None = record.get("load_seconds")
        self.pid = int(record["pid"])
        self.started = started  # True: this process started it (the slow path ran)
        self._lease: IO[bytes] | None = lease

    @property
    def running(self) -> bool:
        return self._lease is not None and pid_alive(self.pid)

    def stop(self) -> None:
        """Detach (release the users lock); the server stops itself once nobody is attached."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.close()


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def load_estimate(home: Path) -> float:
    """Seconds the last model load here took (what the next start announces), else a default."""
    try:
        return max(1.0, float(Paths(Path(home), "-").load_estimate.read_text().strip()))
    except (OSError, ValueError):
        return _DEFAULT_LOAD_ESTIMATE_S


def connect(
    spec: ServerSpec,
    home: Path,
    *,
    progress: bool = False,
    command: list[str] | None = None,
    start_timeout: float = START_TIMEOUT_S,
) -> SharedServer:
    """Attach to the live server for ``spec`` under ``home``, starting one if there is none.

    ``command`` replaces the server's command line (tests start a stub server through the same
    path). Raises BackendError, with the tail of the server's log, when a start fails.
    """
    paths = Paths(Path(home).expanduser(), spec.key)
    try:
        paths.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(paths.folder, exc) from exc
    # Attach first: a server that is just deciding it is idle holds the users lock exclusively and
    # removes its record before letting go, so we then see no record rather than a dying server.
    lease = paths.users.open("a+b")
    try:
        fcntl.flock(lease.fileno(), fcntl.LOCK_SH)
        record = read_record(paths.record)
        if record is not None and spec.matches(record) and answers(record):
            return SharedServer(record, lease, started=False)
        with _flock(paths.lock, fcntl.LOCK_EX):
            record = read_record(paths.record)  # another process may have started it meanwhile
            if record is not None and spec.matches(record) and answers(record):
                return SharedServer(record, lease, started=False)
            if record is not None:
                _discard(record, paths)
            record = _start(spec, paths, progress=progress, command=command, timeout=start_timeout)
            return SharedServer(record, lease, started=True)
    except BaseException:
        lease.close()
        raise


def _discard(record: dict[str, Any], paths: Paths) -> None:
    """A stale or mismatched record: remove it, and stop its server if that is one of ours that no
    longer answers (hung). A server that answers but loads something else is left alone: it may
    serve another command, and it stops itself when idle or once it sees its record gone."""
    pid = int(record["pid"])
    if pid != os.getpid() and pid_alive(pid) and is_our_daemon(pid) and not answers(record):
        _terminate(pid)
    with contextlib.suppress(OSError):
        if read_record(paths.record) == record:
            paths.record.unlink()


def _terminate(pid: int, wait_s: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``wait_s``; True once the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    return not pid_alive(pid)


def default_command(spec: ServerSpec, home: Path) -> list[str]:
    args = [sys.executable, "-m", MODULE, "--home", str(home), "--gguf", spec.gguf, "--alias", spec.alias]
    args += ["--threads", str(spec.threads), "--ctx", str(spec.ctx), "--parallel", str(spec.parallel)]
    args += ["--idle-seconds", str(spec.idle_seconds)]
    if spec.sha256:
        args += ["--sha256", spec.sha256]
    return args


# Started servers, kept referenced so the Popen objects are not collected (and warn) while they run.
_STARTED: list[subprocess.Popen[bytes]] = []


def _start(
    spec: ServerSpec, paths: Paths, *, progress: bool, command: list[str] | None, timeout: float
) -> dict[str, Any]:
    estimate = load_estimate(paths.home)
    minutes = spec.idle_seconds / 60
    _say(
        progress,
        f"starting the language model (about {estimate:.0f} s; it then stays loaded in the background "
        f"for later commands until {minutes:g} idle minutes pass: `shopassist model stop` ends it) ...",
    )
    token = secrets.token_urlsafe(24)
    env = {**os.environ, TOKEN_ENV: token}
    started = time.monotonic()
    with paths.log.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.gguf}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            command or default_command(spec, paths.home),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal stops the command, not the shared server
            close_fds=True,  # in particular not our users lock: the server must not hold itself alive
        )
    _STARTED.append(proc)
    end = started + timeout
    while True:
        record = read_record(paths.record)
        if record is not None and record.get("pid") == proc.pid and answers(record):
            seconds = time.monotonic() - started
            with contextlib.suppress(OSError):
                paths.load_estimate.write_text(f"{seconds:.1f}\n")
            _say(progress, f"language model ready in {seconds:.1f} s")
            return record
        code = proc.poll()
        if code is not None:
            raise BackendError(
                f"The model server exited (code {code}) before it was ready. Its log {paths.log} ends with:\n"
                f"{_tail(paths.log)}\nCheck that ~2 GB RAM are free, or set SHOPASSIST_LLM_IDLE_MINUTES=0 "
                "to load the model inside the command instead."
            )
        if time.monotonic() > end:
            _terminate(proc.pid)
            raise BackendError(
                f"The model server did not answer within {timeout:.0f} s (log: {paths.log}); the machine may be "
                "overloaded. Try again, or use a server with --llm-base-url."
            )
        time.sleep(0.1)


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:])


def stop_servers(home: Path) -> list[dict[str, Any]]:
    """Stop every shared server recorded under ``home``; what was stopped or cleaned up."""
    out = []
    for record in records(home):
        paths = Paths(Path(home), record["key"])
        pid = int(record["pid"])
        ours = pid_alive(pid) and is_our_daemon(pid)
        stopped = _terminate(pid) if ours else False
        with contextlib.suppress(OSError):
            if read_record(paths.record) == {k: v for k, v in record.items() if k != "key"}:
                paths.record.unlink()
        out.append({"key": record["key"], "pid": pid, "stopped": stopped, "was_running": ours})
    return out


# -- the server side ---------------------------------------------------------------------------------
class _StubServer:
    """For tests: answers /health, and /v1/models behind the token, like llama.cpp; no model."""

    def __init__(self, alias: str, token: str) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/health":
                    self._send(200, {"status": "ok"})
                elif self.headers.get("Authorization") != f"Bearer {token}":
                    self._send(401, {"error": "invalid api key"})
                elif self.path == "/v1/models":
                    self._send(200, {"data": [{"id": alias}]})
                else:
                    self._send(404, {"error": "not found"})

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.load_seconds = 0.0
        self._stopped = False
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._httpd.shutdown()
            self._httpd.server_close()


def run(spec: ServerSpec, home: Path, token: str, *, stub: bool = False) -> int:
    """Load the model, record the server, serve until idle (or SIGTERM), then clean up."""
    paths = Paths(Path(home), spec.key)
    server: Any
    if stub:
        server = _StubServer(spec.alias, token)
    else:
        from assistant.llm.embedded import EmbeddedServer

        server = EmbeddedServer(
            spec.gguf, threads=spec.threads, ctx=spec.ctx, alias=spec.alias, parallel=spec.parallel, api_key=token
        ).start()

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    pid = os.getpid()
    record = {
        "pid": pid,
        "url": server.root_url,
        "token": token,
        "identity": spec.identity,
        "gguf": spec.gguf,
        "sha256": spec.sha256,
        "alias": spec.alias,
        "threads": spec.threads,
        "ctx": spec.ctx,
        "parallel": spec.parallel,
        "idle_seconds": spec.idle_seconds,
        "load_seconds": round(float(server.load_seconds or 0.0), 2),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_private(paths.record, json.dumps(record, indent=1))
    print(f"serving {spec.gguf} on {server.root_url} (pid {pid})", file=sys.stderr, flush=True)
    poll = min(5.0, max(0.1, spec.idle_seconds / 10))
    last_used = time.monotonic()
    reason = "stopped"
    try:
        while True:
            time.sleep(poll)
            current = read_record(paths.record)
            if current is None or current.get("pid") != pid:
                reason = "its record was removed or replaced"
                return 0
            try:
                users = paths.users.open("a+b")
            except OSError:
                continue
            with users:
                try:
                    fcntl.flock(users.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    last_used = time.monotonic()  # someone is attached
                    continue
                if time.monotonic() - last_used < spec.idle_seconds:
                    continue
                # Idle: remove the record while still holding the users lock exclusively, so a
                # client that attaches next waits, then finds no record and starts a new server.
                with contextlib.suppress(OSError):
                    paths.record.unlink()
                reason = f"idle for {spec.idle_seconds:g} s"
                server.stop()
                return 0
    finally:
        current = read_record(paths.record)
        if current is not None and current.get("pid") == pid:
            with contextlib.suppress(OSError):
                paths.record.unlink()
        server.stop()
        print(f"server {pid} stopped: {reason}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description="A shared llama.cpp server (internal).")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--sha256", default=None)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--ctx", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--idle-seconds", type=float, required=True)
    parser.add_argument("--stub", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    token = os.environ.pop(TOKEN_ENV, "")
    if not token:
        parser.error(f"the token comes in the environment variable {TOKEN_ENV}")
    spec = ServerSpec(args.gguf, args.sha256, args.alias, args.threads, args.ctx, args.parallel, args.idle_seconds)
    return run(spec, args.home, token, stub=args.stub)


if __name__ == "__main__":
    sys.exit(main())

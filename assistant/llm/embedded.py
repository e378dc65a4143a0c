"""llama.cpp's OpenAI-compatible HTTP server, inside this Python process (xllamacpp).

Why in-process: no binary to ship or compile (llama-cpp-python's server compiles for ~6.5 min on
2 cores), and the server dies with the app. Why still over HTTP and not xllamacpp's direct
``handle_chat_completions``: the client then speaks plain OpenAI-compatible HTTP to every backend
(this one, vLLM, anything else), so there is exactly one LLM path to test.

Facts measured with xllamacpp 2026.10.11549 (see benchmarks/bench_llm.py):
- ``xllamacpp.Server(params)`` blocks until the model is loaded and the HTTP listener is up;
  ``port = 0`` lets the OS pick a free port, read back from ``listening_address``.
- Dropping the last reference runs the C++ destructor: it terminates the main loop, stops the
  HTTP listener and joins the thread (~0.1 s). So ``stop()`` just releases the object.
- Python's SIGINT handling still works after start (Ctrl+C raises KeyboardInterrupt).
"""

from __future__ import annotations

import atexit
import gc
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from shopassist.errors import BackendError, UsageError

DEFAULT_ALIAS = "qwen2.5-coder-1.5b-instruct"
# Host-RAM prompt cache (llama.cpp --cache-ram): keeps evaluated prompt prefixes (our fixed system
# prompts) when the single slot switches between the intent prompt and the copy prompt. The
# default is 8 GiB; a 1.5B model's full 4k-token state is ~115 MB, so 1 GiB is plenty.
CACHE_RAM_MIB = 1024


class EmbeddedServer:
    """Start/stop llama.cpp's server on 127.0.0.1 with a local GGUF; a context manager.

    Not started by the constructor, so a caller can build one cheaply and decide when to pay the
    ~3 s load. ``stop()`` is idempotent and also registered with ``atexit``.
    """

    def __init__(
        self,
        model_path: Path | str,
        *,
        threads: int = 2,
        ctx: int = 4096,
        alias: str = DEFAULT_ALIAS,
        parallel: int = 1,
        verbose: bool = False,
        api_key: str | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise UsageError(f"Model file {self.model_path} does not exist: give a local .gguf (--llm-gguf).")
        if threads < 1 or ctx < 512 or parallel < 1:
            raise UsageError(f"threads, ctx and parallel must be positive (got {threads}, {ctx}, {parallel}).")
        self.threads = threads
        self.ctx = ctx
        self.alias = alias
        self.parallel = parallel
        self.verbose = verbose
        self.api_key = api_key  # when set, every endpoint but /health wants "Authorization: Bearer <key>"
        self.load_seconds: float | None = None
        self._server: Any = None
        self._root_url: str | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> EmbeddedServer:
        with self._lock:
            if self._server is not None:
                return self
            try:
                import xllamacpp
            except ImportError as exc:  # pragma: no cover - a broken install
                raise BackendError(
                    f"xllamacpp is not importable ({exc}): pip install xllamacpp==2026.10.11549, "
                    "or use a server with --llm-base-url."
                ) from exc
            params = xllamacpp.CommonParams()
            params.model.path = str(self.model_path)
            params.model_alias = {self.alias}
            params.hostnames = ["127.0.0.1"]
            params.port = 0  # the OS picks a free port
            params.n_ctx = self.ctx
            params.n_parallel = self.parallel
            params.cpuparams.n_threads = self.threads
            params.cpuparams_batch.n_threads = self.threads
            params.cache_prompt = True
            params.cache_ram_mib = CACHE_RAM_MIB
            params.ui = False
            params.offline = True  # never reach for a hub
            if self.api_key:
                params.api_keys = [self.api_key]
            params.verbosity = 3 if self.verbose else 0
            started = time.perf_counter()
            try:
                server = xllamacpp.Server(params)
            except Exception as exc:
                raise BackendError(
                    f"The embedded llama.cpp server failed to load {self.model_path} ({exc}). Check that the file is "
                    f"a complete GGUF, that ~2 GB RAM are free and that ctx={self.ctx} fits; or use a server with "
                    "--llm-base-url."
                ) from exc
            self.load_seconds = time.perf_counter() - started
            self._server = server
            self._root_url = str(server.listening_address).rstrip("/")
            atexit.register(self.stop)
        try:
            self._wait_healthy()
        except BackendError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Release the server; the C++ destructor stops the HTTP listener and joins its thread."""
        with self._lock:
            server, self._server = self._server, None
            self._root_url = None
            if server is None:
                return
            atexit.unregister(self.stop)
            del server
            gc.collect()  # the destructor must run now, not whenever a cycle is next collected

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def root_url(self) -> str:
        if self._root_url is None:
            raise BackendError("The embedded LLM server is not running: start() it (or open_llm()) first.")
        return self._root_url

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (with /v1), what any OpenAI client is pointed at."""
        return self.root_url + "/v1"

    def health(self, timeout: float = 2.0) -> bool:
        try:
            response = httpx.get(self.root_url + "/health", timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json().get("status") == "ok"

    def _wait_healthy(self, deadline_s: float = 30.0) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.health():
                return
            time.sleep(0.1)
        raise BackendError(
            f"The embedded llama.cpp server at {self.root_url} did not report healthy within {deadline_s:.0f} s."
        )

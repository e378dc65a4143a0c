"""The HTTP API: the assistant's tools, an OpenAI-compatible chat endpoint, behaviour events and
catalog writes, for other programs. ``shopassist serve`` runs it with uvicorn on 127.0.0.1.

* ``GET /v1/tools``: the tools as OpenAI function schemas; ``POST /v1/tools/{name}``: call one.
* ``POST /v1/chat/completions``: OpenAI-compatible (``stream: true`` gives server-sent events);
  the session is the ``X-Session-Id`` header or the ``user`` field; the shown products are in
  the response's ``shopassist`` field (ids, cards, intent, expansions).
* ``POST /v1/events``: one event or a list; each invalid one is reported with its index and reason.
  An event is accepted only for a session the server issued: with that session's token (the chat
  response carries it in ``shopassist.session_token`` and the ``X-Session-Token`` header; send
  it back as ``X-Session-Token``), or with the API key (server-to-server, any session). Token
  writes are capped per request and rate-limited per session and per client; an optional
  ``event_id`` makes a retry idempotent (``ranking.ranker.Ranker.record``).
  ``POST /v1/tools/record_feedback`` follows the same rule.
* ``PUT`` / ``DELETE /v1/catalog/products/{id}``, ``POST /v1/catalog/products:bulk``: need the API
  key (``SHOPASSIST_API_KEY``) as ``Authorization: Bearer KEY`` or ``X-API-Key``; without a key
  configured, writes are refused. Reads are open (the server binds 127.0.0.1 by default).
* ``/mcp``: the same tools over the Model Context Protocol (streamable HTTP, stateless, JSON
  answers; ``ui.mcp_server``), under the same key, session-token and rate rules as
  ``POST /v1/tools/{name}``.
* ``DELETE /v1/sessions/{id}`` (API key): forget one shopper: their session, events and profile.
  The server keeps a session id only as its pseudonym (a keyed hash, ``shopassist.privacy``),
  in memory too; ``id`` may be either form, and the session token carries the pseudonym.

Every error is JSON ``{"error": {"type", "message"}}`` with a 4xx that says what is wrong; a
failure inside the server is a 500 with a generic message (the trace goes to the log, never to
the client). Bodies over ``max_body_bytes`` get 413 (counted as read, chunked ones too); each
client (the verified API key, else the address; ``X-Forwarded-For`` only from
``trusted_proxies``) gets ``rate_per_minute`` requests per minute (429 with ``Retry-After``
beyond it). Bound to localhost, the server answers only to a localhost ``Host`` header (or
``allowed_hosts``): see ``ui.api_guard``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from assistant.agent import ShoppingAgent
from assistant.events import DoneEvent, ProductsEvent, ReplyEvent, StreamedLineEvent, final_result
from assistant.llm.bounded import BoundedLLM
from assistant.stack import forget_session
from ranking.ranker import Ranker
from ranking.redis_events import DEFAULT_NAMESPACE, connect, redacted, redis_errors
from retrieval import Catalog
from shopassist.errors import BackendError, ShopAssistError, UsageError
from shopassist.models import SESSION_ID, Product
from ui.api_guard import (
    RateLimiter,
    RequestGate,
    SessionTokens,
    clean_message,
    client_key,
    load_secret,
    lone_surrogate,
    parse_networks,
)
from ui.mcp_server import BACKEND_DOWN, StreamableMcp, ToolReply, build_server

log = logging.getLogger(__name__)
BACKEND_RETRY_AFTER_S = 5  # what a 503 for a failing backend asks the client to wait

API_VERSION = "1"


# -- request / response models ------------------------------------------------------------------
class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens ... are accepted and ignored
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    user: str | None = Field(default=None, max_length=128)


class EventIn(BaseModel):
    """One behaviour event (validated again by the event log, which gives the reasons)."""

    model_config = ConfigDict(extra="allow")
    session_id: str | None = None
    type: str | None = None
    product_id: str | None = None
    query: str | None = None
    ts: float | None = None
    event_id: str | None = Field(default=None, max_length=128, description="client id: a retry counts once")


class BulkProducts(BaseModel):
    products: list[dict[str, Any]] = Field(min_length=1, max_length=5000)


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))


LLM_SLOTS_ENV = "SHOPASSIST_LLM_SLOTS"


TURN_SLOTS_ENV = "SHOPASSIST_TURN_SLOTS"
THREADS = 256


def default_turn_slots(with_llm: bool = False, llm_slots: int = 1) -> int:
    """Chat turns one API process runs at once: SHOPASSIST_TURN_SLOTS, else

    * rules only (no LLM): 1. Such a turn is Python work under one interpreter lock: a second turn
      thread in the process adds no CPU, it only takes the lock from the searches and events
      waiting beside it (the load test, 50 sessions on 2 cores: 52.6 requests/s and events p99
      80 ms with 2 slots, 56.9 requests/s and 41 ms with 1). More turns at once come from more
      worker processes;
    * with an LLM: the CPU count, and at least one more than the LLM's parallel slots (a turn
      mostly waits for the LLM server then, without using CPU)."""
    raw = os.environ.get(TURN_SLOTS_ENV, "").strip()
    if not raw:
        return max(os.cpu_count() or 1, llm_slots + 1) if with_llm else 1
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"{TURN_SLOTS_ENV} must be a whole number of turns at once, at least 1 (got {raw!r}).")
    return int(raw)


class SessionLock:
    """One session's lock from ``SessionLocks``: a thread lock (one stripe of 256), then the
    cross-process part -- an exclusive file lock (other worker processes on the same home) or,
    with ``leases``, a Redis lease on the session (workers on any host) -- released in reverse."""

    def __init__(
        self,
        thread_lock: threading.Lock,
        path: Path | None = None,
        *,
        leases: RedisSessionLeases | None = None,
        session_id: str = "",
    ) -> None:
        if (path is None) == (leases is None):
            raise ValueError("a session lock is either a file lock (path) or a Redis lease (leases)")
        self._thread_lock = thread_lock
        self._path = path
        self._leases = leases
        self._session_id = session_id
        self._handle: Any = None
        self._lease: tuple[str, str] | None = None

    def __enter__(self) -> SessionLock:
        import fcntl

        self._thread_lock.acquire()
        try:
            if self._leases is not None:
                self._lease = self._leases.acquire(self._session_id)
            elif self._path is not None:
                handle = open(self._path, "a+")
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                self._handle = handle
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        handle, self._handle = self._handle, None
        lease, self._lease = self._lease, None
        try:
            if lease is not None and self._leases is not None:
                self._leases.release(*lease)
            if handle is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()
        finally:
            self._thread_lock.release()


# KEYS[1] the lease, ARGV[1] the holder's token (ARGV[2] the new TTL in ms): only the holder may
# renew or delete it, so a turn whose lease expired (and was taken by another worker) never
# renews or releases the new holder's
_RENEW_LEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE_LEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisSessionLeases:
    """The cross-host part of ``SessionLocks`` when the workers share a Redis: one key per session
    (``NAMESPACE:session-lock:`` and a digest of the session id, so no id is stored), taken with
    ``SET NX PX`` and a random token, renewed every ``ttl_s / 3`` while held, and deleted by a
    compare-and-delete script.

    Why a lease and not a plain lock: a worker killed in the middle of a turn (kill -9, a lost
    host) never releases; its lease expires ``ttl_s`` after its last renewal, and the session's
    next turn goes on. The renewal (one thread per process, running only while a lease is held)
    keeps a lease held through a turn of any length, so ``ttl_s`` need only cover a stalled
    renewal, not the longest turn. A waiter polls (20 ms, backing off to 100 ms) for at most
    ``wait_s``, then gets a ``BackendError`` (the API's 503 with Retry-After): a turn that holds
    its session that long is stuck, and the client should come back rather than hold a thread.
    A Redis that cannot be reached while taking the lease is a ``BackendError`` too; one that
    fails while releasing is logged and the lease left to expire (the turn itself succeeded)."""

    def __init__(
        self, url: str, *, namespace: str = DEFAULT_NAMESPACE, ttl_s: float = 30.0, wait_s: float = 300.0
    ) -> None:
        if ttl_s <= 0 or wait_s < 0:
            raise ValueError("a session lease needs ttl_s > 0 and wait_s >= 0")
        self.url = url
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self._redis = connect(url)
        self._renew = self._redis.register_script(_RENEW_LEASE)
        self._release = self._redis.register_script(_RELEASE_LEASE)
        self._held: dict[str, str] = {}  # key -> token, of the leases this process holds
        self._guard = threading.Lock()
        self._renewer: threading.Thread | None = None

    def key(self, session_id: str) -> str:
        import hashlib

        return f"{self.namespace}:session-lock:{hashlib.blake2b(session_id.encode(), digest_size=16).hexdigest()}"

    def acquire(self, session_id: str) -> tuple[str, str]:
        """Take the session's lease, waiting for another holder; returns (key, token) for ``release``."""
        key, token = self.key(session_id), secrets.token_hex(16)
        deadline = time.monotonic() + self.wait_s
        delay = 0.02
        while True:
            with redis_errors(self.url, "taking a session's lock"):
                if self._redis.set(key, token, nx=True, px=max(1, int(self.ttl_s * 1000))):
                    break
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"another turn of this session has held its lock for over {self.wait_s:.0f} s "
                    f"(Redis at {redacted(self.url)}); retry when it has finished"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        with self._guard:
            self._held[key] = token
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_held, name="session-lease-renewal", daemon=True)
                self._renewer.start()
        return key, token

    def release(self, key: str, token: str) -> None:
        with self._guard:
            self._held.pop(key, None)
        try:
            with redis_errors(self.url, "releasing a session's lock"):
                self._release(keys=[key], args=[token])
        except BackendError as exc:
            log.warning("%s; the lock expires by itself within %.0f s", exc, self.ttl_s)

    def _renew_held(self) -> None:
        """Extend every held lease to a full ``ttl_s``, every ``ttl_s / 3``; ends when none is held
        (the next ``acquire`` starts another)."""
        while True:
            time.sleep(self.ttl_s / 3)
            with self._guard:
                held = dict(self._held)
                if not held:
                    self._renewer = None
                    return
            for key, token in held.items():
                try:
                    with redis_errors(self.url, "renewing a session's lock"):
                        renewed = self._renew(keys=[key], args=[token, max(1, int(self.ttl_s * 1000))])
                except BackendError as exc:
                    log.warning("%s; the turn goes on, its lock may expire", exc)
                    continue
                if not renewed:
                    with self._guard:
                        still_held = self._held.get(key) == token
                    if still_held:
                        log.warning(
                            "a session's lock expired while its turn was running (renewal late by over %.0f s): "
                            "another worker may have started a turn of the same session",
                            self.ttl_s,
                        )

    def close(self) -> None:
        """Close the Redis connections (a later ``acquire`` opens new ones)."""
        self._redis.close()


class SessionLocks:
    """Two turns of one session never interleave, in this process or in another worker: on the
    same home (a file lock in ``folder``), or on any host sharing ``redis_url`` (a lease in Redis,
    ``RedisSessionLeases``); turns of different sessions do (256 thread-lock stripes, by a stable
    digest of the id)."""

    STRIPES = 256

    def __init__(self, folder: Path, redis_url: str | None = None, *, lease_ttl_s: float = 30.0) -> None:
        self.folder = folder
        self.leases = RedisSessionLeases(redis_url, ttl_s=lease_ttl_s) if redis_url else None
        if self.leases is None:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._thread_locks = [threading.Lock() for _ in range(self.STRIPES)]

    def lock(self, session_id: str) -> SessionLock:
        import hashlib

        stripe = int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=4).digest(), "big") % self.STRIPES
        if self.leases is not None:
            return SessionLock(self._thread_locks[stripe], leases=self.leases, session_id=session_id)
        return SessionLock(self._thread_locks[stripe], self.folder / f"{stripe:03d}.lock")

    def close(self) -> None:
        if self.leases is not None:
            self.leases.close()


def default_llm_slots() -> int:
    """How many LLM calls the API lets run at once: SHOPASSIST_LLM_SLOTS, else 1 (the embedded
    model's one slot; raise it to the parallel slots of a vLLM server)."""
    raw = os.environ.get(LLM_SLOTS_ENV, "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{LLM_SLOTS_ENV} must be a whole number of parallel LLM calls (got {raw!r}).") from None
    if value < 1:
        raise UsageError(f"{LLM_SLOTS_ENV} must be at least 1 (got {value}).")
    return value


def create_app(
    catalog: Catalog,
    agent: ShoppingAgent,
    ranker: Ranker | None = None,
    *,
    api_key: str | None = None,
    max_body_bytes: int = 2_000_000,
    rate_per_minute: int = 600,
    session_secret: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    trusted_proxies: Sequence[str] | None = None,
    events_per_session_per_minute: int = 120,
    events_per_client_per_minute: int = 1200,
    chats_per_client_per_minute: int = 60,
    max_events_per_request: int = 100,
    llm_slots: int | None = None,
    turn_slots: int | None = None,
) -> FastAPI:
    """The API over one catalog and agent (the agent's tools and ranker are the ones served).

    ``session_secret``, ``allowed_hosts`` and ``trusted_proxies`` default to the catalog's
    settings (``SHOPASSIST_API_SECRET``, ``SHOPASSIST_ALLOWED_HOSTS``,
    ``SHOPASSIST_TRUSTED_PROXIES``); without a configured secret, one is kept in
    ``HOME/api_secret``. Events written with a session token: at most
    ``max_events_per_request`` per request and ``events_per_session_per_minute`` per session,
    ``events_per_client_per_minute`` per client; API-key writes take up to 5000 per request. A
    client without the key gets ``chats_per_client_per_minute`` chat turns (each issues a session
    token, so this also bounds how fast one client can get tokens for new sessions)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # requests waiting for a turn slot hold a worker thread: let them, and keep threads for
        # searches and events (anyio's default is 40 threads for every sync endpoint together)
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        async with mcp_http.running():  # the MCP SDK's session manager lives as long as the app
            yield
        session_locks.close()

    app = FastAPI(
        title="shopassist API",
        version=API_VERSION,
        description="Tools, chat, behaviour events and catalog writes of the shopassist shopping assistant.",
        lifespan=lifespan,
    )
    settings = getattr(catalog, "settings", None)
    home: Path | None = getattr(settings, "home", None)
    if allowed_hosts is None:
        allowed_hosts = getattr(settings, "allowed_hosts", ())
    trusted = parse_networks(
        trusted_proxies if trusted_proxies is not None else getattr(settings, "trusted_proxies", ())
    )
    tokens = SessionTokens(load_secret(home, session_secret or getattr(settings, "api_secret", None)))
    limiter = RateLimiter(rate_per_minute)
    session_events = RateLimiter(events_per_session_per_minute, burst=max(max_events_per_request, 10))
    client_events = RateLimiter(events_per_client_per_minute, burst=max(events_per_client_per_minute // 2, 10))
    chats = RateLimiter(chats_per_client_per_minute, burst=max(chats_per_client_per_minute // 3, 10))
    app.state.limiters = {
        "requests": limiter,
        "session_events": session_events,
        "client_events": client_events,
        "chats": chats,
    }
    app.state.session_tokens = tokens
    app.state.trusted = trusted
    # No global lock: searches, tool calls, events and catalog reads and writes run concurrently
    # (the catalog, the ranker and the event log guard their own state). Two turns of the same
    # session never interleave (a lock per session, striped over 256 locks); only LLM calls wait,
    # for one of the LLM server's ``llm_slots``.
    # with a shared Redis the cross-process part is a lease there, so workers on other hosts wait too
    session_locks = SessionLocks(catalog.settings.home / ".locks" / "sessions", getattr(settings, "redis_url", None))

    def session_lock(session_id: Any) -> SessionLock:
        return session_locks.lock(str(session_id))

    # Admission control for CPU: a chat turn costs 10-500 ms of CPU (rules, several searches when
    # nothing matches); more turns at once than cores only slows every request down, searches
    # and events included. Turns beyond ``turn_slots`` wait their turn; nothing else does.
    slots_for_llm = llm_slots if llm_slots is not None else default_llm_slots()
    if turn_slots is None:
        turn_slots = default_turn_slots(agent.llm is not None, slots_for_llm)
    turns = threading.BoundedSemaphore(turn_slots)
    if agent.llm is not None and not isinstance(agent.llm, BoundedLLM):
        agent.llm = BoundedLLM(agent.llm, slots_for_llm)
    ranker = ranker or agent.ranker

    # -- who is asking: the verified API key, or a session token (checked before any body) ------
    def key_given(request: Request) -> str:
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return given

    def key_valid(request: Request) -> bool:
        given = key_given(request)
        return bool(api_key and given and secrets.compare_digest(given.encode(), api_key.encode()))

    def needs(method: str, path: str) -> str | None:
        """What a route needs before its body is even parsed: the API key, or a writer (the key
        or a session token)."""
        if (method in ("PUT", "DELETE") and path.startswith("/v1/catalog/products/")) or (
            method == "POST" and path == "/v1/catalog/products:bulk"
        ):
            return "key"
        if method == "POST" and path in ("/v1/events", "/v1/tools/record_feedback"):
            return "writer"
        return None

    def too_many(wait: float, what: str = "requests") -> JSONResponse:
        return _error(
            429, "rate_limited", f"too many {what}; retry in {wait:.1f} s", {"Retry-After": str(int(wait) + 1)}
        )

    # -- cross-cutting: rate limit, who is asking, bad text, errors (size and Host: RequestGate)
    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        keyed = key_valid(request)
        peer = request.client.host if request.client else None
        client = "key" if keyed else client_key(peer, request.headers.get("x-forwarded-for"), trusted)
        ok, wait = limiter.allow(client)
        if not ok:
            return too_many(wait)
        request.state.client = client
        request.state.keyed = keyed
        request.state.session = None  # the session a valid session token is for
        need = needs(request.method, request.scope["path"])
        if need == "key" and (denied := require_key(request)) is not None:
            return denied
        if need == "writer" and not keyed and (denied := writer_refused(request)) is not None:
            return denied
        try:
            if request.method in ("POST", "PUT", "PATCH"):
                where = lone_surrogate(await request.body())
                if where is not None:
                    return _error(
                        422,
                        "invalid_request",
                        f"{where}: the text holds an unpaired UTF-16 surrogate escape (like \\ud800), "
                        "which is not valid Unicode; send the text as valid UTF-8 or escape both halves of the pair",
                    )
            return await call_next(request)
        except ClientDisconnect:  # the client went, or RequestGate cut an oversized body (and answered 413)
            return _error(400, "invalid_request", "the request body was not received in full")
        except Exception:
            log.exception("request failed: %s %s", request.method, request.url.path)
            return _error(500, "server_error", "the server failed to handle this request; it has been logged")

    def writer_refused(request: Request) -> JSONResponse | None:
        """Without the API key, a write needs a valid session token (X-Session-Token): the 401
        that says so, or None with the token's session in ``request.state.session``."""
        token = request.headers.get("x-session-token")
        if not token:
            return _error(
                401,
                "unauthorized",
                "recording events needs the session token the chat endpoint issued for that session "
                "(send it as X-Session-Token; POST /v1/chat/completions returns it in shopassist.session_token "
                "and the X-Session-Token header) or the API key (Authorization: Bearer KEY or X-API-Key)",
            )
        session = tokens.verify(token)
        if session is None:
            return _error(
                401,
                "unauthorized",
                "the session token is not valid or has expired: take the fresh one from the last "
                "POST /v1/chat/completions of this session (X-Session-Token)",
            )
        request.state.session = session
        return None

    # added last, so it runs first: Host check and body limit before anything reads the request
    app.add_middleware(RequestGate, max_body_bytes=max_body_bytes, allowed_hosts=tuple(allowed_hosts))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()[:10]
        )
        return _error(422, "invalid_request", clean_message(problems))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        return _error(exc.status_code, kind.get(exc.status_code, "error"), str(exc.detail))

    @app.exception_handler(UsageError)
    async def usage(_: Request, exc: UsageError) -> JSONResponse:
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(ShopAssistError)
    async def backend(_: Request, exc: ShopAssistError) -> JSONResponse:
        log.warning("backend error: %s", exc)
        # a store that is down for a moment (Redis, PostgreSQL, Chroma, the LLM server) is answered
        # with a clear 503 the client may retry; nothing was half-written (each write is one
        # transaction or one script), and the next request reconnects by itself
        return _error(
            503,
            "backend_unavailable",
            BACKEND_DOWN,
            {"Retry-After": str(BACKEND_RETRY_AFTER_S)},
        )

    def require_key(request: Request) -> JSONResponse | None:
        if not api_key:
            what = (
                "forgetting a session is" if request.scope["path"].startswith("/v1/sessions/") else "catalog writes are"
            )
            return _error(403, "forbidden", f"{what} disabled: start the server with SHOPASSIST_API_KEY set")
        if not key_valid(request):
            return _error(401, "unauthorized", "a valid API key is required (Authorization: Bearer KEY or X-API-Key)")
        return None

    def wrong_session(index: int, given: Any, session: str) -> str:
        return (
            f"event {index} is for session {str(given)[:128]!r}, but the session token is for {session!r}: "
            "a session token records events for its own session only"
        )

    def event_budget(request: Request, session: str, n: int) -> JSONResponse | None:
        """Token writes: ``n`` events against this session's and this client's event rates."""
        ok, wait = session_events.allow(session, n)
        if not ok:
            return too_many(wait, f"events for session {session!r}")
        ok, wait = client_events.allow(request.state.client, n)
        return None if ok else too_many(wait, "events from this client")

    # -- tools ----------------------------------------------------------------------------------
    @app.get("/v1/tools", summary="The tools as OpenAI function schemas")
    def list_tools() -> dict[str, Any]:
        return {"object": "list", "data": agent.tools.schemas()}

    def private_id(session_id: Any) -> Any:
        """A valid session id's pseudonym (all the server keeps, in memory too); an invalid one
        is passed on for the validation to refuse with its reason."""
        if isinstance(session_id, str) and SESSION_ID.match(session_id):
            return agent.sessions.key(session_id)
        return session_id

    @app.post("/v1/tools/{name}", summary="Call one tool with its JSON arguments")
    def call_tool(name: str, arguments: dict[str, Any], request: Request) -> JSONResponse:
        if "session_id" in arguments:
            arguments = {**arguments, "session_id": private_id(arguments["session_id"])}
        session = request.state.session
        if name == "record_feedback" and session is not None:  # a session token: its own session only
            arguments.setdefault("session_id", session)
            if arguments["session_id"] != session:
                return _error(403, "forbidden", wrong_session(0, arguments["session_id"], session))
            if (denied := event_budget(request, session, 1)) is not None:
                return denied
        result = agent.tools.call(name, arguments)
        if result.ok:
            return JSONResponse({"tool": name, "ok": True, "data": json.loads(json.dumps(result.data, default=str))})
        status = {"unknown_tool": 404, "invalid_arguments": 422, "not_found": 404}.get(result.error_kind or "", 409)
        return _error(status, result.error_kind or "failed", clean_message(result.error or "the tool failed"))

    # -- MCP: the same tools over streamable HTTP at /mcp (ui.mcp_server) -------------------------
    def mcp_call(name: str, arguments: dict[str, Any], request: Request | None) -> ToolReply:
        """One MCP tool call under ``POST /v1/tools/{name}``'s rules: the guard has already counted
        the request against the client's rate and checked the key; a write needs the key or a
        session token, as on the REST path; then the REST endpoint's own code answers."""
        if request is None:  # pragma: no cover - the HTTP transport always passes its request
            raise RuntimeError("an MCP tool call over HTTP without its request")
        request.state.session = None
        writer = needs("POST", f"/v1/tools/{name}") == "writer" and not request.state.keyed
        if writer and (denied := writer_refused(request)) is not None:
            return ToolReply.of_response(denied)
        return ToolReply.of_response(call_tool(name, arguments, request))

    mcp_http = StreamableMcp(build_server(agent.tools, mcp_call))
    app.router.routes.append(Route("/mcp", mcp_http, include_in_schema=False))

    # -- chat -----------------------------------------------------------------------------------
    def session_of(request: Request, body: ChatRequest) -> str:
        sid = request.headers.get("x-session-id") or body.user or f"api-{uuid.uuid4().hex[:12]}"
        if not SESSION_ID.match(sid):
            raise UsageError("session id (X-Session-Id or user) must be 1-128 letters, digits or . _ : @ -")
        return str(private_id(sid))

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat: one shopping turn", response_model=None)
    def chat(request: Request, body: ChatRequest, response: Response) -> Any:
        users = [m for m in body.messages if m.role == "user"]
        if not users or not _text(users[-1].content).strip():
            raise UsageError("messages must contain a user message with text")
        message = _text(users[-1].content)
        session_id = session_of(request, body)
        if not request.state.keyed:
            ok, wait = chats.allow(request.state.client)
            if not ok:
                return too_many(wait, "chat turns from this client")
        token = tokens.issue(session_id)  # what lets this session's client record its events
        created = int(time.time())
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"

        def run() -> Any:
            with session_lock(session_id), turns:
                yield from agent.turn(session_id, message)

        if not body.stream:
            result = final_result(run())
            response.headers["X-Session-Token"] = token
            return {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": "shopassist",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": result.reply}, "finish_reason": "stop"}
                ],
                "shopassist": {**_turn_payload(result), "session_token": token},
            }

        def sse() -> Iterator[str]:
            def chunk(delta: dict[str, Any], finish: str | None = None, extra: Any = None) -> str:
                payload: dict[str, Any] = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": "shopassist",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                if extra is not None:
                    payload["shopassist"] = extra
                return f"data: {json.dumps(payload, ensure_ascii=False, default=str)}\n\n"

            yield chunk({"role": "assistant", "content": ""})
            sent = ""  # the reply streamed so far: the deltas joined are the final reply
            try:
                for event in run():
                    if isinstance(event, ProductsEvent):
                        if event.refined and sent:
                            # the lines sent were about the products the LLM's reading replaced:
                            # the reply starts over after a blank line
                            yield chunk({"content": "\n\n"})
                            sent = ""
                        extra = {"event": "products", "cards": event.cards, "refined": event.refined}
                        yield chunk({}, extra=extra)
                    elif isinstance(event, StreamedLineEvent):
                        # a copy line that passed the grounding check, as the reply will read
                        # (raw model deltas are never sent: they could still be replaced)
                        sent += event.delta
                        yield chunk({"content": event.delta}, extra={"event": "line", "position": event.position})
                    elif isinstance(event, ReplyEvent):
                        rest = event.text[len(sent) :]
                        if event.text.startswith(sent):  # the rest of the grounded reply
                            if rest or not sent:
                                yield chunk({"content": rest})
                        else:  # pragma: no cover - the agent streams a prefix of its reply
                            log.warning("streamed lines are not the start of the reply; sending it whole")
                            yield chunk({}, extra={"event": "reply", "replace": True, "text": event.text})
                    elif isinstance(event, DoneEvent):
                        yield chunk({}, "stop", {**_turn_payload(event.result), "session_token": token})
            except ShopAssistError as exc:
                err = {"error": {"type": "backend_unavailable", "message": str(exc)}}
                yield f"data: {json.dumps(err)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"X-Session-Token": token})

    # -- events ---------------------------------------------------------------------------------
    @app.post("/v1/events", summary="Behaviour events: one object or a list")
    def events(payload: EventIn | list[EventIn], request: Request) -> JSONResponse:
        items = payload if isinstance(payload, list) else [payload]
        session = request.state.session  # None: written with the API key
        cap = 5000 if session is None else max_events_per_request
        if len(items) > cap:
            how = "with the API key" if session is None else "with a session token"
            raise UsageError(f"at most {cap} events per request {how} (got {len(items)}); send them in smaller lists")
        if ranker is None:
            return _error(503, "backend_unavailable", "this server records no events (no ranker)")
        raw = [e.model_dump(exclude_none=True) for e in items]
        for event in raw:
            if "session_id" in event:
                event["session_id"] = private_id(event["session_id"])
        if session is not None:
            for i, event in enumerate(raw):
                event.setdefault("session_id", session)
                if event["session_id"] != session:
                    return _error(403, "forbidden", wrong_session(i, event["session_id"], session))
            if (denied := event_budget(request, session, len(raw))) is not None:
                return denied
        for event in raw:
            # the arm of an online experiment is the server's to say (the session's assignment),
            # never the client's: a client could otherwise move its clicks to the arm it likes
            event.pop("variant", None)
            arm = agent.variant(event.get("session_id"))
            if arm is not None and agent.experiment is not None:
                event["variant"] = f"{agent.experiment.name}:{arm}"
        named = {e["product_id"] for e in raw if isinstance(e.get("product_id"), str)}
        known = {pid for pid in named if catalog.get(pid) is not None}  # each product looked up once
        result = ranker.record(raw, known_product=known.__contains__)
        body = result.summary()
        if not result.accepted and not result.duplicates:
            reason = "; ".join(f"event {i}: {r}" for i, r in result.rejected[:5])
            return _error(422, "invalid_request", reason)
        return JSONResponse(body, status_code=200)

    # -- privacy ----------------------------------------------------------------------------------
    @app.delete("/v1/sessions/{session_id}", summary="Forget one shopper: session, events, profile (API key)")
    def forget(session_id: str, request: Request) -> JSONResponse:
        if (denied := require_key(request)) is not None:
            return denied
        if not SESSION_ID.match(session_id):
            raise UsageError("session id must be 1-128 letters, digits or . _ : @ -")
        with session_lock(private_id(session_id)):
            gone = forget_session(session_id, sessions=agent.sessions, ranker=ranker, behaviour=agent.behaviour)
        if not gone.anything:
            return _error(404, "not_found", "nothing is stored for this session id")
        return JSONResponse(gone.public())

    # -- catalog ----------------------------------------------------------------------------------
    @app.get("/v1/catalog/products/{product_id}", summary="One product record")
    def get_product(product_id: str) -> JSONResponse:
        product = catalog.get(product_id)
        if product is None:
            return _error(404, "not_found", f"no product with id {product_id!r}")
        return JSONResponse(product.record())

    @app.put("/v1/catalog/products/{product_id}", summary="Create or replace a product (API key)")
    def put_product(product_id: str, record: dict[str, Any], request: Request) -> JSONResponse:
        if (denied := require_key(request)) is not None:
            return denied
        if "id" in record and str(record["id"]) != product_id:
            raise UsageError(f"the body's id {record['id']!r} differs from the path's {product_id!r}")
        try:
            product = Product.model_validate({**record, "id": product_id})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'product'}: {e['msg']}" for e in exc.errors()[:10])
            return _error(422, "invalid_request", problems)
        result = catalog.upsert([product])
        status = "added" if result.added else "updated" if result.updated else "unchanged"
        return JSONResponse({"id": product_id, "status": status, "seq": result.seq})

    @app.delete("/v1/catalog/products/{product_id}", summary="Delete a product (API key)")
    def delete_product(product_id: str, request: Request) -> JSONResponse:
        if (denied := require_key(request)) is not None:
            return denied
        deleted = catalog.delete([product_id])
        if not deleted:
            return _error(404, "not_found", f"no product with id {product_id!r}")
        return JSONResponse({"id": product_id, "status": "deleted"})

    @app.post("/v1/catalog/products:bulk", summary="Upsert many products; bad rows reported (API key)")
    def bulk(body: BulkProducts, request: Request) -> JSONResponse:
        if (denied := require_key(request)) is not None:
            return denied
        good: list[Product] = []
        rejected = []
        for i, record in enumerate(body.products):
            try:
                good.append(Product.model_validate(record))
            except ValidationError as exc:
                rejected.append({"index": i, "reason": "; ".join(e["msg"] for e in exc.errors()[:3])})
        added = updated = unchanged = 0
        if good:
            result = catalog.upsert(good)
            added, updated, unchanged = len(result.added), len(result.updated), len(result.unchanged)
        status = 200 if good else 422
        return JSONResponse(
            {"added": added, "updated": updated, "unchanged": unchanged, "rejected": rejected}, status_code=status
        )

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, Any]:
        from retrieval.upgrade import read_status, upgrade_summary

        answer: dict[str, Any] = {"ok": True, "products": len(catalog), "embedder": catalog.embedder_backend}
        upgrade = upgrade_summary(read_status(catalog.settings.home))
        if upgrade is not None and upgrade["state"] != "done":  # an embedder upgrade under way (or failed)
            answer["embedder_upgrade"] = upgrade
        return answer

    return app


def _turn_payload(result: Any) -> dict[str, Any]:
    return {
        "session": result.session_id,
        "products": result.products,
        "cards": result.cards,
        "intent": result.intent,
        "expansions": [f.model_dump() for f in result.expansions],
        "timings": result.timings,
    }

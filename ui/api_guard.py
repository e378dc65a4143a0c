"""The HTTP API's defences, kept apart from the routes (``ui.api`` wires them in).

* ``RequestGate`` (pure ASGI, outermost): refuses an unexpected ``Host`` header when the server
  is bound to a loopback address (DNS rebinding: a web page on ``evil.example`` whose name now
  points at 127.0.0.1 must not reach a local server), and enforces the body limit on the bytes
  actually read -- ``Content-Length`` when given, and a running count of every ``http.request``
  message otherwise (chunked bodies): 413 as soon as the count passes the limit.
* ``RateLimiter``: token buckets keyed by who the caller provably is (the verified API key, else
  the client address; ``X-Forwarded-For`` only from configured trusted proxies), with idle buckets
  evicted, so neither random keys nor many addresses grow it without bound.
* ``SessionTokens``: HMAC-signed session tokens. The chat endpoint issues one per turn for its
  session; recording behaviour events for a session needs that session's token (or the API key),
  so events cannot be forged for sessions the server never ran.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopassist.errors import UsageError
from shopassist.models import SESSION_ID

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOCAL_HOST_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SECRET_FILE = "api_secret"


# -- rate limiting --------------------------------------------------------------------------------
class RateLimiter:
    """A token bucket per key: ``rate_per_minute`` sustained, bursts up to ``burst``; a request
    may cost more than one token (e.g. one per event).

    Memory is bounded: a bucket idle long enough to have refilled completely is the same as no
    bucket, so it is dropped (the least recently used are checked on every call), and beyond
    ``max_keys`` buckets the least recently used go regardless."""

    def __init__(self, rate_per_minute: float, burst: float | None = None, max_keys: int = 100_000) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst or max(10, rate_per_minute // 6))
        self.max_keys = max_keys
        self.refill_s = self.burst / self.rate if self.rate > 0 else float("inf")
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str, cost: float = 1.0) -> tuple[bool, float]:
        """(allowed, seconds to wait before ``cost`` tokens are there)."""
        now = time.monotonic()
        with self._lock:
            self._evict(now)
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            need = min(cost, self.burst)  # a cost above the burst is allowed from a full bucket
            if tokens >= need:
                self._buckets[key] = (tokens - need, now)
                return True, 0.0
            self._buckets[key] = (tokens, now)
            return False, (need - tokens) / self.rate if self.rate > 0 else 60.0

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            _, at = next(iter(buckets.values()))
            if now - at < self.refill_s and len(buckets) < self.max_keys:
                return
            buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


def parse_networks(values: Iterable[str], what: str = "trusted proxy") -> list[Network]:
    """Addresses or CIDR networks (``10.0.0.1``, ``10.0.0.0/8``, ``::1``); a bad one is a UsageError."""
    out = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise UsageError(
                f"{what} {value!r} is not an IP address or network (e.g. 10.0.0.1 or 10.0.0.0/8)"
            ) from None
    return out


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def _in(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[Network]) -> bool:
    return any(addr.version == n.version and addr in n for n in networks)


def client_key(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network] = ()) -> str:
    """Who is asking, for rate limits: the peer address, or -- only when the peer is a trusted
    proxy -- the nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy.
    An IPv6 client is keyed by its /64 (one host usually holds a whole /64)."""
    addr = _address(peer or "")
    if addr is not None and trusted and forwarded_for and _in(addr, trusted):
        for hop in reversed(forwarded_for.split(",")):
            hop_addr = _address(hop)
            if hop_addr is None:
                break  # a garbled list: trust nothing beyond the proxy
            addr = hop_addr
            if not _in(hop_addr, trusted):
                break
    if addr is None:
        return f"peer:{peer or 'unknown'}"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is None:
        return "ip:" + str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return f"ip:{addr.ipv4_mapped or addr}" if isinstance(addr, ipaddress.IPv6Address) else f"ip:{addr}"


# -- session tokens ------------------------------------------------------------------------------
def load_secret(home: Path | None, configured: str | None = None) -> bytes:
    """The server secret for session tokens: the configured one (``SHOPASSIST_API_SECRET``), else
    ``HOME/api_secret`` (created with mode 0600 on first use, so tokens survive a restart), else
    -- no writable home -- a random one for this process only."""
    if configured:
        return configured.encode()
    if home is not None:
        path = Path(home) / SECRET_FILE
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32) + "\n")
            value = path.read_text(encoding="utf-8").strip()
            if len(value) >= 32:
                return value.encode()
            log.warning("%s holds no usable secret (under 32 characters); using a per-process one", path)
        except OSError as exc:
            log.warning("cannot keep the session-token secret in %s (%s); using a per-process one", path, exc)
    return secrets.token_bytes(32)


class SessionTokens:
    """``SESSION.ISSUED.MAC``: the session id, when it was issued (epoch seconds) and an HMAC-SHA256
    of both under the server secret; valid for ``ttl_s`` seconds. The chat endpoint issues a fresh
    one with every turn."""

    def __init__(self, secret: bytes, ttl_s: float = 7 * 86_400.0) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _mac(self, session_id: str, issued: int) -> str:
        digest = hmac.new(self._secret, f"shopassist-session-v1\n{session_id}\n{issued}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    def issue(self, session_id: str, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        return f"{session_id}.{issued}.{self._mac(session_id, issued)}"

    def verify(self, token: str, now: float | None = None) -> str | None:
        """The token's session id if it is genuine and not expired, else None."""
        if len(token) > 300:
            return None
        parts = token.rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not SESSION_ID.match(parts[0]):
            return None
        session_id, issued_text, mac = parts
        issued = int(issued_text)
        if not hmac.compare_digest(mac.encode(), self._mac(session_id, issued).encode()):
            return None
        age = (time.time() if now is None else now) - issued
        return session_id if -300 <= age <= self.ttl_s else None


# -- input checks --------------------------------------------------------------------------------
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(body: bytes) -> str | None:
    """Where a JSON body holds an unpaired UTF-16 surrogate escape (``"\\ud800"``), which no
    UTF-8 text can carry: ``messages.0.content``, or None. Paired escapes (an emoji written as
    ``\\ud83d\\ude00``) are fine."""
    if not _SURROGATE_ESCAPE.search(body):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None  # not JSON: the route's own parsing reports it

    def walk(v: Any, path: str) -> str | None:
        if isinstance(v, str):
            return path or "body" if _SURROGATE.search(v) else None
        items: Iterable[tuple[Any, Any]] = (
            v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
        )
        for k, child in items:
            if isinstance(k, str) and _SURROGATE.search(k):
                return f"{path}.{k!r}".lstrip(".")
            if (found := walk(child, f"{path}.{k}".lstrip("."))) is not None:
                return found
        return None

    return walk(value, "")


def clean_message(message: str) -> str:
    """A validation message without pydantic's plumbing: ``Value error, min_price (50.0) is above
    max_price (10.0)`` reads ``min_price (50) is above max_price (10)``."""
    message = message.replace("Value error, ", "").replace("Assertion failed, ", "")
    message = message.replace("invalid arguments: arguments: ", "invalid arguments: ")
    return re.sub(r"\((-?\d+)\.0\)", r"(\1)", message)


# -- the ASGI gate ---------------------------------------------------------------------------------
def host_name(host: str) -> str:
    """The host a Host header names, without its port: "127.0.0.1:7860" -> "127.0.0.1",
    "[::1]:7860" -> "::1", "Evil.Example." -> "evil.example"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback(name: str | None) -> bool:
    if not name:
        return False
    if name.lower() == "localhost":
        return True
    addr = _address(name)
    return addr is not None and addr.is_loopback


async def send_error(send: Send, status: int, kind: str, message: str) -> None:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGate:
    """Host check and the body limit, before anything else reads the request.

    ``allowed_hosts`` (names, or ``*`` for any): extra ``Host`` names to accept. The check runs
    when the server is bound to a loopback address (then only localhost, 127.0.0.1, [::1], the
    bound address and ``allowed_hosts`` pass), and always once ``allowed_hosts`` is configured."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, allowed_hosts: Sequence[str] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.allowed = frozenset(host_name(h) for h in allowed_hosts if h.strip())

    def host_refused(self, scope: Scope, host: str | None) -> bool:
        if "*" in self.allowed:
            return False
        server = scope.get("server")
        bound = str(server[0]) if server else None
        if not self.allowed and not is_loopback(bound):
            return False
        if host is None:
            return False  # HTTP/1.0 without Host: no browser sends that
        name = host_name(host)
        return name not in LOCAL_HOST_NAMES and name not in self.allowed and name != (bound or "").lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.host_refused(scope, headers.get("host")):
            await send_error(
                send,
                400,
                "invalid_request",
                "unexpected Host header: this server answers only to localhost, 127.0.0.1 or [::1] "
                "(set SHOPASSIST_ALLOWED_HOSTS to serve another name)",
            )
            return
        limit = self.max_body_bytes
        too_large = f"request body over {limit} bytes"
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                await send_error(send, 400, "invalid_request", "Content-Length is not a number")
                return
            if int(length) > limit:
                await send_error(send, 413, "too_large", too_large)
                return
        received = 0
        started = False
        replied = False

        async def counted_receive() -> Message:
            nonlocal received, replied
            if replied:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        await send_error(send, 413, "too_large", too_large)
                    replied = True
                    return {"type": "http.disconnect"}  # the app stops reading; its answer is dropped
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if replied and not started:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)

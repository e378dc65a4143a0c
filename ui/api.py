"""The HTTP API: the assistant's tools, an OpenAI-compatible chat endpoint, behaviour events and
catalog writes, for other programs. ``shopassist serve`` runs it with uvicorn on 127.0.0.1.

* ``GET /v1/tools``: the tools as OpenAI function schemas; ``POST /v1/tools/{name}``: call one.
* ``POST /v1/chat/completions``: OpenAI-compatible (``stream: true`` gives server-sent events);
  the session is the ``X-Session-Id`` header or the ``user`` field; the shown products are in
  the response's ``shopassist`` field (ids, cards, intent, expansions).
* ``POST /v1/events``: one event or a list; each invalid one is reported with its index and reason.
* ``PUT`` / ``DELETE /v1/catalog/products/{id}``, ``POST /v1/catalog/products:bulk``: need the API
  key (``SHOPASSIST_API_KEY``) as ``Authorization: Bearer KEY`` or ``X-API-Key``; without a key
  configured, writes are refused. Reads are open (the server binds 127.0.0.1 by default).

Every error is JSON ``{"error": {"type", "message"}}`` with a 4xx that says what is wrong; a
failure inside the server is a 500 with a generic message (the trace goes to the log, never to
the client). Bodies over ``max_body_bytes`` get 413; each client gets ``rate_per_minute``
requests per minute (429 with ``Retry-After`` beyond it).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.agent import ShoppingAgent
from assistant.events import DoneEvent, ProductsEvent, ReplyEvent, final_result
from ranking.ranker import Ranker
from retrieval import Catalog
from shopassist.errors import ShopAssistError, UsageError
from shopassist.models import SESSION_ID, Product

log = logging.getLogger(__name__)

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


class RateLimiter:
    """A token bucket per client: ``rate_per_minute`` sustained, bursts up to ``burst``."""

    def __init__(self, rate_per_minute: int, burst: int | None = None) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst or max(10, rate_per_minute // 6))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> tuple[bool, float]:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                return True, 0.0
            self._buckets[client] = (tokens, now)
            return False, (1.0 - tokens) / self.rate if self.rate > 0 else 60.0


def create_app(
    catalog: Catalog,
    agent: ShoppingAgent,
    ranker: Ranker | None = None,
    *,
    api_key: str | None = None,
    max_body_bytes: int = 2_000_000,
    rate_per_minute: int = 600,
) -> FastAPI:
    """The API over one catalog and agent (the agent's tools and ranker are the ones served)."""
    app = FastAPI(
        title="shopassist API",
        version=API_VERSION,
        description="Tools, chat, behaviour events and catalog writes of the shopassist shopping assistant.",
    )
    limiter = RateLimiter(rate_per_minute)
    turn_lock = threading.Lock()  # one agent turn at a time: the embedded LLM has 2 cores anyway
    ranker = ranker or agent.ranker

    # -- cross-cutting: body size, rate limit, errors ---------------------------------------------
    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > max_body_bytes
            except ValueError:
                return _error(400, "invalid_request", "Content-Length is not a number")
            if too_big:
                return _error(413, "too_large", f"request body over {max_body_bytes} bytes")
        client = request.client.host if request.client else "unknown"
        client = request.headers.get("x-api-key", "")[:8] + "@" + client
        ok, wait = limiter.allow(client)
        if not ok:
            return _error(
                429, "rate_limited", f"too many requests; retry in {wait:.1f} s", {"Retry-After": str(int(wait) + 1)}
            )
        try:
            return await call_next(request)
        except Exception:
            log.exception("request failed: %s %s", request.method, request.url.path)
            return _error(500, "server_error", "the server failed to handle this request; it has been logged")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()[:10]
        )
        return _error(422, "invalid_request", problems)

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
        return _error(503, "backend_unavailable", "a backend (LLM, vector store) failed; try again")

    def require_key(request: Request) -> JSONResponse | None:
        if not api_key:
            return _error(403, "forbidden", "catalog writes are disabled: start the server with SHOPASSIST_API_KEY set")
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given or not secrets.compare_digest(given.encode(), api_key.encode()):
            return _error(401, "unauthorized", "a valid API key is required (Authorization: Bearer KEY or X-API-Key)")
        return None

    # -- tools ----------------------------------------------------------------------------------
    @app.get("/v1/tools", summary="The tools as OpenAI function schemas")
    def list_tools() -> dict[str, Any]:
        return {"object": "list", "data": agent.tools.schemas()}

    @app.post("/v1/tools/{name}", summary="Call one tool with its JSON arguments")
    def call_tool(name: str, arguments: dict[str, Any]) -> JSONResponse:
        with turn_lock:
            result = agent.tools.call(name, arguments)
        if result.ok:
            return JSONResponse({"tool": name, "ok": True, "data": json.loads(json.dumps(result.data, default=str))})
        status = {"unknown_tool": 404, "invalid_arguments": 422, "not_found": 404}.get(result.error_kind or "", 409)
        return _error(status, result.error_kind or "failed", result.error or "the tool failed")

    # -- chat -----------------------------------------------------------------------------------
    def session_of(request: Request, body: ChatRequest) -> str:
        sid = request.headers.get("x-session-id") or body.user or f"api-{uuid.uuid4().hex[:12]}"
        if not SESSION_ID.match(sid):
            raise UsageError("session id (X-Session-Id or user) must be 1-128 letters, digits or . _ : @ -")
        return sid

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat: one shopping turn", response_model=None)
    def chat(request: Request, body: ChatRequest) -> Any:
        users = [m for m in body.messages if m.role == "user"]
        if not users or not _text(users[-1].content).strip():
            raise UsageError("messages must contain a user message with text")
        message = _text(users[-1].content)
        session_id = session_of(request, body)
        created = int(time.time())
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"

        def run() -> Any:
            with turn_lock:
                yield from agent.turn(session_id, message)

        if not body.stream:
            result = final_result(run())
            return {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": "shopassist",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": result.reply}, "finish_reason": "stop"}
                ],
                "shopassist": _turn_payload(result),
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
            try:
                for event in run():
                    if isinstance(event, ProductsEvent):
                        yield chunk({}, extra={"event": "products", "cards": event.cards})
                    elif isinstance(event, ReplyEvent):
                        # the grounded reply only (raw model deltas could still be replaced)
                        yield chunk({"content": event.text})
                    elif isinstance(event, DoneEvent):
                        yield chunk({}, "stop", _turn_payload(event.result))
            except ShopAssistError as exc:
                err = {"error": {"type": "backend_unavailable", "message": str(exc)}}
                yield f"data: {json.dumps(err)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    # -- events ---------------------------------------------------------------------------------
    @app.post("/v1/events", summary="Behaviour events: one object or a list")
    def events(payload: EventIn | list[EventIn]) -> JSONResponse:
        items = payload if isinstance(payload, list) else [payload]
        if len(items) > 5000:
            raise UsageError("at most 5000 events per request")
        if ranker is None:
            return _error(503, "backend_unavailable", "this server records no events (no ranker)")
        raw = [e.model_dump(exclude_none=True) for e in items]
        result = ranker.record(raw)
        body = result.summary()
        if not result.accepted:
            reason = "; ".join(f"event {i}: {r}" for i, r in result.rejected[:5])
            return _error(422, "invalid_request", reason)
        return JSONResponse(body, status_code=200)

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
        with turn_lock:
            result = catalog.upsert([product])
        status = "added" if result.added else "updated" if result.updated else "unchanged"
        return JSONResponse({"id": product_id, "status": status, "seq": result.seq})

    @app.delete("/v1/catalog/products/{product_id}", summary="Delete a product (API key)")
    def delete_product(product_id: str, request: Request) -> JSONResponse:
        if (denied := require_key(request)) is not None:
            return denied
        with turn_lock:
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
            with turn_lock:
                result = catalog.upsert(good)
            added, updated, unchanged = len(result.added), len(result.updated), len(result.unchanged)
        status = 200 if good else 422
        return JSONResponse(
            {"added": added, "updated": updated, "unchanged": unchanged, "rejected": rejected}, status_code=status
        )

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, Any]:
        return {"ok": True, "products": len(catalog)}

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

"""The assistant's tools over the Model Context Protocol (the official ``mcp`` SDK's low-level server).

The same five tools as ``GET /v1/tools`` / ``POST /v1/tools/{name}`` of ``ui.api``, with the same
names, the same JSON-schema parameters (``ToolRegistry.schemas``) and the same results: every call
goes to the one dispatcher, ``ToolRegistry.call``, nothing is re-implemented here.

* stdio: ``shopassist mcp`` (``ui.cli.mcp``) runs ``serve_stdio(build_server(tools,
  local_tool_call(agent)))`` for a desktop agent that starts it as a subprocess. That agent runs as
  the user who owns the home, so it is trusted like the command line (``shopassist event`` records
  events without a key): ``record_feedback`` needs no token.
* streamable HTTP: ``ui.api`` mounts ``StreamableMcp`` at ``/mcp`` and passes a ``ToolCall`` that
  runs each call through ``POST /v1/tools/{name}``'s own code, so the API key, session tokens and
  rate limits are the REST endpoint's.

A result is the REST endpoint's JSON body: ``{"tool", "ok", "data"}``, as JSON text content and as
structured content. A failure (bad arguments, an unknown product or tool, a refused write) is an MCP
tool error (``isError``) whose text is the message the REST endpoint gives, and whose structured
content is the REST error body ``{"error": {"type", "message"}}``: an agent reads why and retries,
and the server never fails the protocol request for a bad call.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shopassist.errors import BackendError
from shopassist.models import SESSION_ID
from ui.api_guard import clean_message, send_error

if TYPE_CHECKING:
    from assistant.agent import ShoppingAgent
    from assistant.tools import ToolRegistry, ToolResult

log = logging.getLogger(__name__)

SERVER_NAME = "shopassist"
# the one tool that writes (a behaviour event); every other tool only reads the catalog
WRITING_TOOLS = frozenset({"record_feedback"})
INSTRUCTIONS = (
    "Product search over a shop's catalog (Chinese and English). search_products finds products by words "
    "and hard filters (price, brand, category, terms); get_product, compare_products and similar_products "
    "look at specific product ids from its results; record_feedback tells the shop what the shopper did "
    "with a product, which changes that session's next answers."
)


BACKEND_DOWN = "a backend (database, event store, vector store or LLM) is unavailable; retry shortly"


@dataclass(frozen=True)
class ToolReply:
    """One tool call's answer in the REST endpoint's terms: the HTTP status and the JSON body
    (``{"tool", "ok", "data"}`` or ``{"error": {"type", "message"}}``)."""

    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def message(self) -> str:
        error = self.body.get("error")
        return str(error.get("message", "the tool failed")) if isinstance(error, dict) else "the tool failed"

    @classmethod
    def of_response(cls, response: Response) -> ToolReply:
        """The reply a REST response carries (``ui.api`` answers MCP calls with its own endpoint)."""
        return cls(response.status_code, json.loads(bytes(response.body)))

    @classmethod
    def of_result(cls, result: ToolResult) -> ToolReply:
        """The reply ``POST /v1/tools/{name}`` gives for this result (same statuses, same bodies)."""
        if result.ok:
            data = json.loads(json.dumps(result.data, default=str))
            return cls(200, {"tool": result.tool, "ok": True, "data": data})
        kind = result.error_kind or "failed"
        status = {"unknown_tool": 404, "invalid_arguments": 422, "not_found": 404}.get(kind, 409)
        return cls(status, {"error": {"type": kind, "message": clean_message(result.error or "the tool failed")}})

    def to_mcp(self) -> types.CallToolResult:
        if self.ok:
            text = json.dumps(self.body, ensure_ascii=False)
            return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=self.body)
        return types.CallToolResult(
            content=[types.TextContent(text=self.message)], structured_content=self.body, is_error=True
        )


ToolCall = Callable[[str, dict[str, Any], Request | None], ToolReply]
"""Runs one tool call: (name, arguments, the HTTP request it came in, None over stdio)."""


def local_tool_call(agent: ShoppingAgent) -> ToolCall:
    """Tool calls for the local user (stdio): straight to the agent's tools, with a session id
    replaced by its pseudonym first, as the HTTP API does (sessions are kept only by pseudonym)."""

    def call(name: str, arguments: dict[str, Any], _request: Request | None) -> ToolReply:
        session_id = arguments.get("session_id")
        if isinstance(session_id, str) and SESSION_ID.match(session_id):
            arguments = {**arguments, "session_id": agent.sessions.key(session_id)}
        return ToolReply.of_result(agent.tools.call(name, arguments))

    return call


def tool_definitions(tools: ToolRegistry) -> list[types.Tool]:
    """The registry's OpenAI function schemas as MCP tools: same names, descriptions, parameters."""
    out = []
    for schema in tools.schemas():
        function = schema["function"]
        name = function["name"]
        out.append(
            types.Tool(
                name=name,
                description=function.get("description") or None,
                input_schema=function["parameters"],
                annotations=types.ToolAnnotations(
                    read_only_hint=name not in WRITING_TOOLS,
                    destructive_hint=False,
                    open_world_hint=False,
                ),
            )
        )
    return out


def _version() -> str:
    try:
        return metadata.version("shopassist")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without the install
        return ""


def build_server(tools: ToolRegistry, call: ToolCall) -> Server[Any]:
    """An MCP server that lists ``tools`` and answers each call with ``call``.

    ``call`` is blocking (a search embeds the query and reads the index): it runs in a worker
    thread, as FastAPI runs the REST endpoint, so one slow search never stalls the others."""
    definitions = tool_definitions(tools)

    async def list_tools(
        _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=definitions)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        request = ctx.request if isinstance(ctx.request, Request) else None
        arguments = dict(params.arguments or {})
        try:
            reply = await anyio.to_thread.run_sync(functools.partial(call, params.name, arguments, request))
        except BackendError as exc:  # as the REST endpoint's 503: say it is temporary, name no host
            log.warning("tool %s: backend unavailable: %s", params.name, exc)
            reply = ToolReply(503, {"error": {"type": "backend_unavailable", "message": BACKEND_DOWN}})
        if not reply.ok:
            log.info("tool %s refused: %s", params.name, reply.message)
        return reply.to_mcp()

    return Server(
        SERVER_NAME,
        version=_version(),
        title="shopassist",
        description="Conversational shopping search: the assistant's catalog tools.",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def serve_stdio(server: Server[Any]) -> None:
    """Serve ``server`` on stdin/stdout until the client closes stdin. The SDK points file
    descriptor 1 at stderr while it serves, so a stray print cannot corrupt the protocol."""

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


class StreamableMcp:
    """``server`` over streamable HTTP, as one ASGI app to mount beside other routes.

    Stateless, with JSON answers: every POST stands alone (no ``Mcp-Session-Id``, no session table
    in memory), so several API worker processes can answer one client in turn, and nothing a
    client opens has to be expired. The tools never call back to the client (no sampling, no
    elicitation), so a JSON answer per request loses nothing.

    The SDK's session manager runs once per ``running()`` (the host app's lifespan); a fresh one
    each time, since a manager cannot be restarted (a test client may run the lifespan twice).
    Outside it, requests get 503."""

    def __init__(self, server: Server[Any]) -> None:
        self.server = server
        self._manager: StreamableHTTPSessionManager | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        # Host and body-size checks are the host app's (ui.api_guard.RequestGate), for every route
        manager = StreamableHTTPSessionManager(app=self.server, json_response=True, stateless=True)
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self._manager
        if manager is None:
            await send_error(send, 503, "unavailable", "the MCP endpoint is served only while the app runs")
            return
        await manager.handle_request(scope, receive, send)

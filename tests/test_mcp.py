"""The tools over the Model Context Protocol, as an MCP client uses them: the official SDK's own
client against `shopassist mcp` (a real subprocess on stdio) and against /mcp of the HTTP API
(a real uvicorn server on a free port), compared with the REST endpoint they mirror."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from fastapi.testclient import TestClient
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from assistant.agent import ShoppingAgent
from assistant.state import SessionStore
from ranking.events import SQLiteEventLog
from ranking.ranker import Ranker
from ui.api import create_app

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
KEY = "mcp-test-key"
TOOLS = {"search_products", "get_product", "compare_products", "similar_products", "record_feedback"}
TIMEOUT_S = 90
JEANS_UNDER_200 = {"query": "牛仔裤", "require_terms": ["牛仔裤"], "max_price": 200}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(fn: Any, *args: Any) -> Any:
    """Run one async client scenario, bounded: a hung transport fails the test instead of the suite."""

    async def bounded() -> Any:
        with anyio.fail_after(TIMEOUT_S):
            return await fn(*args)

    return anyio.run(bounded)


def mcp_text(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


# -- stdio: `shopassist mcp` as a desktop agent starts it -----------------------------------------
def test_stdio_lists_the_tools_and_searches_the_catalog(loaded_catalog, settings):
    from assistant.tools import ToolRegistry

    rest_schemas = {s["function"]["name"]: s["function"] for s in ToolRegistry(loaded_catalog).schemas()}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ui.cli", "mcp", "--home", str(settings.home)],
        env=dict(os.environ),
        cwd=str(REPO),
    )
    stray: list[Any] = []  # anything on stdout that is not a protocol message arrives here

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):
            stray.append(message)

    async def scenario() -> dict[str, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write, message_handler=on_message) as s:
            init = await s.initialize()
            listed = await s.list_tools()
            found = await s.call_tool("search_products", JEANS_UNDER_200)
            bad = await s.call_tool("search_products", {"query": "牛仔裤", "max_price": "cheap"})
            missing = await s.call_tool("get_product", {"product_id": "nope"})
            feedback = await s.call_tool(
                "record_feedback", {"session_id": "desk1", "product_id": "j2", "event": "click"}
            )
            return {"init": init, "tools": listed.tools, "found": found, "bad": bad, "missing": missing, "fb": feedback}

    out = run(scenario)
    assert out["init"].server_info.name == "shopassist"
    assert {t.name for t in out["tools"]} == TOOLS
    for tool in out["tools"]:  # the same parameters and descriptions as GET /v1/tools
        assert tool.input_schema == rest_schemas[tool.name]["parameters"]
        assert tool.description == rest_schemas[tool.name]["description"]

    found = out["found"]
    assert not found.is_error
    body = json.loads(mcp_text(found))
    assert body == found.structured_content and body["ok"] is True and body["tool"] == "search_products"
    cards = body["data"]
    assert {c["id"] for c in cards} == {"j2", "j3", "j4"}  # the catalog's jeans under 200, no others
    assert all(c["price"] <= 200 and "牛仔裤" in c["title"] for c in cards)

    bad = out["bad"]  # a bad argument is a tool error naming the field, never a crash
    assert bad.is_error and "max_price" in mcp_text(bad)
    assert bad.structured_content["error"]["type"] == "invalid_arguments"
    assert out["missing"].is_error and "nope" in mcp_text(out["missing"])
    # the local user records feedback without a key, like `shopassist event`
    assert not out["fb"].is_error and out["fb"].structured_content["data"]["recorded"] is True
    assert not stray, f"stdout carried something other than protocol: {stray}"


# -- streamable HTTP: /mcp beside the REST API ----------------------------------------------------
def make_app(catalog: Any, settings: Any, **options: Any) -> Any:
    ranker = Ranker(catalog, SQLiteEventLog(settings.home / "events.sqlite"))
    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"), ranker=ranker)
    return create_app(catalog, agent, ranker, api_key=KEY, **options)


@pytest.fixture()
def server(loaded_catalog, settings) -> Iterator[str]:
    """The API under uvicorn on 127.0.0.1 (a real server: lifespan, Host check, middleware)."""
    app = make_app(loaded_catalog, settings, rate_per_minute=6000)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


async def mcp_calls(
    url: str, headers: dict[str, str], calls: list[tuple[str, dict[str, Any]]], mode: str = "legacy"
) -> list[Any]:
    """List the tools, then make ``calls`` over one client (``headers`` on every request).

    ``mode``: "legacy" is the initialize handshake (``ClientSession``, what clients speak today);
    "auto" is the SDK's ``Client``, which probes ``server/discover`` and speaks the 2026-07-28
    per-request protocol when the server offers it (this one does: the SDK's server speaks both)."""
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        if mode == "legacy":
            async with transport as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                out: list[Any] = [(await session.list_tools()).tools]
                for name, arguments in calls:
                    out.append(await session.call_tool(name, arguments))
                return out
        async with Client(transport, mode=mode) as client:
            assert client.session.discover_result is not None, "the per-request era was not negotiated"
            out = [(await client.list_tools()).tools]
            for name, arguments in calls:
                out.append(await client.call_tool(name, arguments))
            return out


ERAS = pytest.mark.parametrize("mode", ["legacy", "auto"])


@ERAS
def test_http_serves_the_rest_tools_with_the_rest_results(server, mode):
    rest = httpx.Client(base_url=server, timeout=60)
    search = JEANS_UNDER_200
    bad = {"query": "牛仔裤", "max_price": "cheap"}
    tools, found, refused, unknown = run(
        mcp_calls, server, {}, [("search_products", search), ("search_products", bad), ("buy_now", {})], mode
    )
    rest_tools = {t["function"]["name"]: t["function"] for t in rest.get("/v1/tools").json()["data"]}
    assert {t.name for t in tools} == set(rest_tools) == TOOLS
    assert all(t.input_schema == rest_tools[t.name]["parameters"] for t in tools)

    assert not found.is_error
    assert found.structured_content == rest.post("/v1/tools/search_products", json=search).json()
    assert json.loads(mcp_text(found)) == found.structured_content
    assert {c["id"] for c in found.structured_content["data"]} == {"j2", "j3", "j4"}

    # a bad argument: an MCP tool error with the REST endpoint's message (not a crash)
    rest_bad = rest.post("/v1/tools/search_products", json=bad)
    assert rest_bad.status_code == 422
    assert refused.is_error and mcp_text(refused) == rest_bad.json()["error"]["message"]
    assert "max_price" in mcp_text(refused) and refused.structured_content == rest_bad.json()
    assert unknown.is_error and "unknown tool 'buy_now'" in mcp_text(unknown)


@ERAS
def test_http_feedback_needs_the_key_or_a_session_token_as_on_rest(server, mode):
    rest = httpx.Client(base_url=server, timeout=60)
    click = {"session_id": "web1", "product_id": "j2", "event": "click"}
    rest_refused = rest.post("/v1/tools/record_feedback", json=click)
    assert rest_refused.status_code == 401

    _, without = run(mcp_calls, server, {}, [("record_feedback", click)], mode)
    assert without.is_error and mcp_text(without) == rest_refused.json()["error"]["message"]
    assert without.structured_content["error"]["type"] == "unauthorized"

    _, wrong_key = run(mcp_calls, server, {"Authorization": "Bearer not-the-key"}, [("record_feedback", click)], mode)
    assert wrong_key.is_error and mcp_text(wrong_key) == rest_refused.json()["error"]["message"]

    _, keyed = run(mcp_calls, server, {"Authorization": f"Bearer {KEY}"}, [("record_feedback", click)], mode)
    assert not keyed.is_error and keyed.structured_content["data"]["recorded"] is True

    # a session token (from a chat turn) records for its own session only, as on REST
    turn = rest.post("/v1/chat/completions", json={"user": "web2", "messages": [{"role": "user", "content": "牛仔裤"}]})
    token = turn.json()["shopassist"]["session_token"]
    own = {"product_id": "j1", "event": "view"}
    other = {"session_id": "someone-else", "product_id": "j1", "event": "view"}
    _, mine, theirs = run(
        mcp_calls, server, {"X-Session-Token": token}, [("record_feedback", own), ("record_feedback", other)], mode
    )
    assert not mine.is_error and mine.structured_content["data"]["recorded"] is True
    rest_theirs = rest.post("/v1/tools/record_feedback", json=other, headers={"X-Session-Token": token})
    assert rest_theirs.status_code == 403
    assert theirs.is_error and mcp_text(theirs) == rest_theirs.json()["error"]["message"]

    _, forged = run(mcp_calls, server, {"X-Session-Token": "web2.1.forged"}, [("record_feedback", own)], mode)
    assert forged.is_error and "not valid or has expired" in mcp_text(forged)


def test_http_mcp_requests_pass_the_same_host_check_and_rate_limit(server, loaded_catalog, settings):
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    rebound = httpx.post(f"{server}/mcp", json=listing, headers={**accept, "Host": "evil.example"}, timeout=30)
    assert rebound.status_code == 400 and "Host" in rebound.json()["error"]["message"]

    # a client gets rate_per_minute requests a minute (burst 10) on /mcp as everywhere: then 429
    app = make_app(loaded_catalog, settings, rate_per_minute=6)
    with TestClient(app) as client:
        answers = [client.post("/mcp", json=listing, headers=accept) for _ in range(10)]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert {t["name"] for t in answers[0].json()["result"]["tools"]} == TOOLS
        limited = client.post("/mcp", json=listing, headers=accept)
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        assert "too many requests" in limited.json()["error"]["message"]
        rest_limited = client.get("/v1/tools")  # one bucket per client for both
        assert rest_limited.status_code == 429
        # the key is its own client: it is not limited by the anonymous client's spending
        keyed = client.post("/mcp", json=listing, headers={**accept, "X-API-Key": KEY})
        assert keyed.status_code == 200


def test_mcp_outside_the_app_lifespan_says_so(loaded_catalog, settings):
    client = TestClient(make_app(loaded_catalog, settings))  # no `with`: the lifespan never ran
    res = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert res.status_code == 503 and "MCP" in res.json()["error"]["message"]

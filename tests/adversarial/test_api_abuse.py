"""The HTTP API under abuse: forged behaviour events, floods, retries, oversized and chunked
bodies, rate-limit evasion, bad text and DNS rebinding -- each against the real app (catalog,
agent, ranker, SQLite event log) through its ASGI interface, and once through real uvicorn."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient

from assistant.agent import ShoppingAgent
from assistant.state import SessionStore
from ranking.events import SQLiteEventLog
from ranking.knowledge import KnowledgeLimits, SharedKnowledge
from ranking.ranker import Ranker
from ranking.session import MAX_INTEREST, SessionProfile
from shopassist.models import Event, EventType
from ui.api import create_app
from ui.api_guard import RateLimiter, RequestGate, SessionTokens, client_key

pytestmark = pytest.mark.integration

KEY = "abuse-key-123"


@pytest.fixture()
def stack(loaded_catalog, settings):
    log = SQLiteEventLog(settings.home / "events.sqlite")
    ranker = Ranker(loaded_catalog, log)
    agent = ShoppingAgent(loaded_catalog, SessionStore(settings.home / "sessions"), ranker=ranker)
    return loaded_catalog, agent, ranker, log


def make_client(stack, **kwargs):
    catalog, agent, ranker, _ = stack
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("rate_per_minute", 100_000)
    base_url = kwargs.pop("base_url", "http://testserver")
    peer = kwargs.pop("peer", ("testclient", 50000))
    return TestClient(create_app(catalog, agent, ranker, **kwargs), base_url=base_url, client=peer)


def chat(client, session, text="jeans"):
    res = client.post(
        "/v1/chat/completions",
        headers={"X-Session-Id": session},
        json={"messages": [{"role": "user", "content": text}]},
    )
    assert res.status_code == 200, res.text
    return res


# -- 1. events only for sessions the server issued -------------------------------------------------
def test_events_need_the_sessions_token_or_the_api_key(stack):
    client = make_client(stack)
    click = {"session_id": "shopper1", "type": "click", "product_id": "j1"}
    res = client.post("/v1/events", json=click)
    assert res.status_code == 401 and "X-Session-Token" in res.json()["error"]["message"]
    assert client.post("/v1/events", json=click, headers={"X-Session-Token": "shopper1.123.forged"}).status_code == 401
    other_secret = SessionTokens(b"not-the-server-secret" * 2).issue("shopper1")
    assert client.post("/v1/events", json=click, headers={"X-Session-Token": other_secret}).status_code == 401
    # the same forged path through the tool endpoint
    fb = {"session_id": "shopper1", "product_id": "j1", "event": "click"}
    assert client.post("/v1/tools/record_feedback", json=fb).status_code == 401

    answer = chat(client, "shopper1")
    token = answer.json()["shopassist"]["session_token"]
    assert answer.headers["X-Session-Token"] == token
    ok = client.post("/v1/events", json=click, headers={"X-Session-Token": token})
    assert ok.status_code == 200 and ok.json()["accepted"] == 1
    # no session_id: the token's session
    ok = client.post("/v1/events", json={"type": "click", "product_id": "j2"}, headers={"X-Session-Token": token})
    assert ok.status_code == 200 and stack[2].profile("shopper1").interest.get("j2")
    # a token writes only its own session
    other = client.post("/v1/events", json={**click, "session_id": "victim"}, headers={"X-Session-Token": token}).json()
    assert "session token is for 'shopper1'" in other["error"]["message"]
    assert client.post("/v1/tools/record_feedback", json=fb, headers={"X-Session-Token": token}).status_code == 200
    bad_fb = {**fb, "session_id": "victim"}
    assert client.post("/v1/tools/record_feedback", json=bad_fb, headers={"X-Session-Token": token}).status_code == 403
    # server-to-server with the key: any session
    keyed = client.post("/v1/events", json={**click, "session_id": "s2s"}, headers={"X-API-Key": KEY})
    assert keyed.status_code == 200
    # an event about a product the catalog does not have is refused with the reason
    ghost = client.post(
        "/v1/events", json={**click, "product_id": "ghost-99"}, headers={"X-Session-Token": token}
    ).json()
    assert "no product with id 'ghost-99'" in ghost["error"]["message"]


def test_streamed_chat_carries_the_session_token_too(stack):
    client = make_client(stack)
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"stream": True, "user": "sse1", "messages": [{"role": "user", "content": "boots"}]},
    ) as res:
        header = res.headers["X-Session-Token"]
        chunks = [json.loads(line[6:]) for line in res.iter_lines() if line.startswith("data: {")]
    assert chunks[-1]["shopassist"]["session_token"] == header
    ok = client.post("/v1/events", json={"type": "click", "product_id": "b1"}, headers={"X-Session-Token": header})
    assert ok.status_code == 200


def test_token_writes_are_capped_per_request_and_rate_limited_per_session(stack):
    client = make_client(stack, events_per_session_per_minute=120, max_events_per_request=100)
    token = chat(client, "flood").json()["shopassist"]["session_token"]
    many = [{"type": "purchase", "product_id": "b4"}] * 101
    res = client.post("/v1/events", json=many, headers={"X-Session-Token": token})
    assert res.status_code == 422 and "at most 100 events per request" in res.json()["error"]["message"]
    assert client.post("/v1/events", json=many[:100], headers={"X-Session-Token": token}).status_code == 200
    again = client.post("/v1/events", json=many[:100], headers={"X-Session-Token": token})
    assert again.status_code == 429 and "session 'flood'" in again.json()["error"]["message"]
    assert int(again.headers["Retry-After"]) >= 1


def test_one_session_flooding_events_moves_shared_knowledge_only_once():
    """The reported attack: thousands of purchases of one item after one search, and a click loop
    between two items, from one session. Each counts as one purchase / one pair."""
    kn = SharedKnowledge()
    events = [Event(session_id="bot", type=EventType.search, query="boots", ts=1.0)]
    events += [Event(session_id="bot", type=EventType.purchase, product_id="x", ts=2.0) for _ in range(5000)]
    events += [Event(session_id="bot", type=EventType.click, product_id=p, ts=3.0) for _ in range(500) for p in "ab"]
    kn.observe_all(events)
    assert kn.popularity("x", now=2.0) == pytest.approx(5.0)  # one purchase's weight, not 25,000
    assert kn.query_items["boots"] == {"x": 5.0, "a": 1.0, "b": 1.0}  # each (query, item) once
    assert kn.transitions["a"]["b"] == 1.0 and kn.transitions["b"]["a"] == 1.0
    assert kn.cooc["a"]["b"] == 1.0
    # ten honest shoppers outweigh the bot
    for k in range(10):
        kn.observe(Event(session_id=f"h{k}", type=EventType.search, query="boots", ts=4.0))
        kn.observe(Event(session_id=f"h{k}", type=EventType.add_to_cart, product_id="y", ts=4.0))
    assert kn.query_scores("boots")["y"] > kn.query_scores("boots")["x"]


def test_shared_knowledge_and_session_profiles_stay_bounded_under_a_flood():
    limits = KnowledgeLimits(max_sessions=100, max_queries=50, max_row=10, max_items=400, session_items=8)
    kn = SharedKnowledge(limits=limits)
    for k in range(20_000):
        sid = f"s{k % 3000}"
        if k % 5 == 0:
            kn.observe(Event(session_id=sid, type=EventType.search, query=f"q{k}", ts=float(k)))
        kn.observe(Event(session_id=sid, type=EventType.click, product_id=f"p{k % 2500}", ts=float(k)))
    assert len(kn._sessions) <= 100
    assert len(kn.query_items) <= 50
    assert all(len(row) < 20 for table in (kn.transitions, kn.cooc) for row in table.values())
    assert all(len(row) < 20 for row in kn.query_items.values())
    assert len(kn.popular.value) <= 500 and len(kn.transitions) <= 500
    assert kn.stats()["sessions"] <= 100
    profile = SessionProfile("long")
    for k in range(2000):
        profile.observe(Event(session_id="long", type=EventType.click, product_id=f"p{k}"))
        profile.observe(Event(session_id="long", type=EventType.dislike, product_id=f"d{k}"))
    assert len(profile.interest) < 2 * MAX_INTEREST and "p1999" in profile.interest
    assert len(profile.disliked) <= 200 and profile.disliked[-1] == "d1999"


# -- 2. idempotent events ----------------------------------------------------------------------------
def test_a_retried_event_with_the_same_event_id_counts_once(stack):
    client = make_client(stack)
    log = stack[3]
    event = {"session_id": "retry", "type": "add_to_cart", "product_id": "j4", "event_id": "evt-0001"}
    first = client.post("/v1/events", json=event, headers={"X-API-Key": KEY})
    assert first.status_code == 200 and first.json()["accepted"] == 1
    seq = first.json()["last_seq"]
    again = client.post("/v1/events", json=[event, {**event, "event_id": "evt-0002"}], headers={"X-API-Key": KEY})
    assert again.status_code == 200
    assert again.json()["accepted"] == 1 and again.json()["duplicates"] == [{"index": 0, "seq": seq}]
    alone = client.post("/v1/events", json=event, headers={"X-API-Key": KEY})
    assert alone.status_code == 200 and alone.json()["accepted"] == 0  # a pure retry is not an error
    assert len(log) == 2
    assert stack[2].profile("retry").interest["j4"] == pytest.approx(3.0 * 0.8 + 3.0)  # two carts, not three
    # the same id in another session is another event
    assert (
        client.post("/v1/events", json={**event, "session_id": "other"}, headers={"X-API-Key": KEY}).json()["accepted"]
        == 1
    )
    bad = client.post("/v1/events", json={**event, "event_id": "has space"}, headers={"X-API-Key": KEY})
    assert bad.status_code == 422 and "event_id" in bad.json()["error"]["message"]


# -- 3. the body limit counts the bytes read -----------------------------------------------------------
def test_a_chunked_body_over_the_limit_gets_413(stack):
    client = make_client(stack, max_body_bytes=1000)

    def chunks():
        yield b'{"query": "'
        for _ in range(50):
            yield b"x" * 100
        yield b'"}'

    res = client.post("/v1/tools/search_products", content=chunks(), headers={"content-type": "application/json"})
    assert res.status_code == 413 and "over 1000 bytes" in res.json()["error"]["message"]
    small = client.post(
        "/v1/tools/search_products", content=iter([b'{"query": "jeans"}']), headers={"content-type": "application/json"}
    )
    assert small.status_code == 200


def test_the_gate_stops_reading_a_stream_at_the_limit():
    """Pure ASGI: a body sent as many ``http.request`` messages without Content-Length is cut off
    once over the limit; the app's own answer is replaced by the 413."""
    pulled = 0
    sent: list[dict] = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    async def receive():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"y" * 1024, "more_body": pulled < 150_000}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "server": ("127.0.0.1", 8000)}
    asyncio.run(RequestGate(app, max_body_bytes=2_000_000)(scope, receive, send))
    assert sent[0]["status"] == 413 and len(sent) == 2
    assert pulled < 2000  # stopped at ~2 MB, not 150 MB


def test_real_uvicorn_refuses_a_chunked_body_over_the_limit(stack):
    import uvicorn

    catalog, agent, ranker, _ = stack
    app = create_app(catalog, agent, ranker, api_key=KEY, max_body_bytes=100_000)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(
            b"POST /v1/tools/search_products HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        reply = b""
        try:  # up to 16 MB in 8 KB chunks, reading the answer as soon as there is one
            while sent < 16_000_000 and b"\r\n\r\n" not in reply:
                conn.sendall(b"2000\r\n" + b"z" * 0x2000 + b"\r\n")
                sent += 0x2000
                while select.select([conn], [], [], 0)[0]:
                    part = conn.recv(65536)
                    if not part:
                        break
                    reply += part
        except OSError:
            pass  # the server answered and closed
        conn.close()
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert sent < 4_000_000  # it answered after about the limit, not after reading everything
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- 4. the rate limit is keyed on who the caller provably is -------------------------------------------
def test_random_api_keys_and_forwarded_for_headers_do_not_bypass_the_rate_limit(stack):
    client = make_client(stack, rate_per_minute=60)
    codes = [
        client.get(
            "/v1/tools", headers={"X-API-Key": f"{k:04d}-random-key", "X-Forwarded-For": f"10.1.{k}.1"}
        ).status_code
        for k in range(30)
    ]
    assert 429 in codes
    # the valid key is its own bucket, apart from the address's
    assert client.get("/v1/tools", headers={"X-API-Key": KEY}).status_code == 200
    # behind a configured trusted proxy, X-Forwarded-For names the client
    proxied = make_client(stack, rate_per_minute=60, trusted_proxies=["10.0.0.0/8"], peer=("10.0.0.7", 4000))
    codes = [proxied.get("/v1/tools", headers={"X-Forwarded-For": f"203.0.113.{k}"}).status_code for k in range(30)]
    assert 429 not in codes
    assert client_key("10.0.0.7", "198.51.100.9, 10.0.0.8", []) == "ip:10.0.0.7"  # no trusted proxies: the peer
    assert client_key("10.0.0.7", "198.51.100.9, 10.0.0.8", proxied.app.state.trusted) == "ip:198.51.100.9"
    assert client_key("2001:db8::1", None) == client_key("2001:db8::ffff", None)  # one /64


def test_the_rate_limiter_forgets_idle_clients():
    limiter = RateLimiter(6000, burst=5, max_keys=1000)  # refills in 0.05 s
    for k in range(5000):
        limiter.allow(f"client{k}")
    assert len(limiter) <= 1000
    time.sleep(0.1)
    limiter.allow("late")
    assert len(limiter) == 1
    assert [limiter.allow("burst")[0] for _ in range(7)].count(False) >= 1


# -- 5. bad text, clear messages, key first, Host header ---------------------------------------------------
def test_an_unpaired_surrogate_is_a_clear_4xx_not_a_500(stack):
    client = make_client(stack)
    raw = b'{"messages": [{"role": "user", "content": "jeans \\ud800"}]}'
    res = client.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert res.status_code == 422
    assert "messages.0.content" in res.json()["error"]["message"] and "surrogate" in res.json()["error"]["message"]
    emoji = b'{"messages": [{"role": "user", "content": "jeans \\ud83d\\ude00"}]}'
    assert (
        client.post("/v1/chat/completions", content=emoji, headers={"content-type": "application/json"}).status_code
        == 200
    )
    raw_event = b'{"session_id": "s", "type": "search", "query": "\\udfff"}'
    res = client.post("/v1/events", content=raw_event, headers={"content-type": "application/json", "X-API-Key": KEY})
    assert res.status_code == 422 and "query" in res.json()["error"]["message"]


def test_min_price_above_max_price_says_so_plainly(stack):
    client = make_client(stack)
    res = client.post("/v1/tools/search_products", json={"query": "jeans", "min_price": 50, "max_price": 10})
    message = res.json()["error"]["message"]
    assert res.status_code == 422 and "min_price (50) is above max_price (10)" in message
    assert "Value error" not in message


def test_the_key_is_checked_before_the_body(stack):
    client = make_client(stack)
    junk = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    assert client.put("/v1/catalog/products/x", **junk).status_code == 401
    assert client.post("/v1/catalog/products:bulk", json={"nothing": 1}).status_code == 401
    assert client.post("/v1/events", **junk).status_code == 401
    assert (
        client.put("/v1/catalog/products/x", headers={"X-API-Key": KEY, **junk["headers"]}, content=b"{x").status_code
        == 422
    )


def test_a_localhost_server_refuses_other_host_headers(stack):
    local = make_client(stack, base_url="http://127.0.0.1:8000")
    assert local.get("/healthz").status_code == 200
    for host in ("localhost:8000", "[::1]:8000", "127.0.0.1", "LOCALHOST."):
        assert local.get("/healthz", headers={"Host": host}).status_code == 200, host
    res = local.get("/healthz", headers={"Host": "evil.example:8000"})
    assert res.status_code == 400 and "unexpected Host header" in res.json()["error"]["message"]
    assert (
        local.post(
            "/v1/tools/search_products", json={"query": "x"}, headers={"Host": "127.0.0.1.evil.example"}
        ).status_code
        == 400
    )
    allowed = make_client(stack, base_url="http://127.0.0.1:8000", allowed_hosts=["shop.internal"])
    assert allowed.get("/healthz", headers={"Host": "shop.internal:8000"}).status_code == 200
    assert allowed.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    public = make_client(stack, base_url="http://203.0.113.5:8000")  # bound publicly: the operator's proxy decides
    assert public.get("/healthz", headers={"Host": "shop.example"}).status_code == 200


def test_one_client_gets_session_tokens_only_as_fast_as_it_may_chat(stack):
    """A token costs a chat turn, and chat turns per client are limited: forging many sessions is slow."""
    client = make_client(stack, chats_per_client_per_minute=6)
    codes = [
        client.post(
            "/v1/chat/completions", json={"user": f"bot{k}", "messages": [{"role": "user", "content": "boots"}]}
        ).status_code
        for k in range(12)
    ]
    assert codes[:10] == [200] * 10 and codes[-1] == 429
    refused = client.post(
        "/v1/chat/completions", json={"user": "bot99", "messages": [{"role": "user", "content": "x"}]}
    )
    assert (
        "chat turns from this client" in refused.json()["error"]["message"] and "X-Session-Token" not in refused.headers
    )
    keyed = client.post(
        "/v1/chat/completions", headers={"X-API-Key": KEY}, json={"messages": [{"role": "user", "content": "boots"}]}
    )
    assert keyed.status_code == 200  # a server holding the key is not held to a shopper's pace

"""The HTTP API as another program uses it: real catalog, agent and ranker behind FastAPI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.agent import ShoppingAgent
from assistant.state import SessionStore
from evals.dialogues import default_suite
from ranking.events import SQLiteEventLog
from ranking.ranker import Ranker
from retrieval import Catalog, ingest_file
from ui.api import create_app

pytestmark = pytest.mark.integration

KEY = "test-key-123"
APPAREL = Path(default_suite()).parent / "catalogs" / "apparel_zh.jsonl"


@pytest.fixture()
def client(settings, use_embedder):
    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, APPAREL)
    ranker = Ranker(catalog, SQLiteEventLog(settings.home / "events.sqlite"))
    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"), ranker=ranker)
    return TestClient(create_app(catalog, agent, ranker, api_key=KEY, rate_per_minute=6000))


def test_tools_are_listed_as_openai_functions_and_callable(client):
    tools = client.get("/v1/tools").json()["data"]
    assert {t["function"]["name"] for t in tools} == {
        "search_products",
        "get_product",
        "compare_products",
        "similar_products",
        "record_feedback",
    }
    res = client.post("/v1/tools/search_products", json={"query": "羽绒服", "max_price": 800})
    assert res.status_code == 200 and res.json()["data"]
    assert all(card["price"] <= 800 for card in res.json()["data"])


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/tools/buy_now", {}, 404, "unknown tool"),
        ("/v1/tools/search_products", {"query": "x", "max_price": "cheap"}, 422, "max_price"),
        ("/v1/tools/get_product", {"product_id": "nope"}, 404, "nope"),
        ("/v1/chat/completions", {"messages": []}, 422, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "system", "content": "hi"}]}, 422, "user message"),
        ("/v1/events", {"session_id": "s", "type": "click"}, 422, "product_id"),
    ],
)
def test_requests_that_do_not_validate_get_a_4xx_that_says_why(client, path, body, status, words):
    headers = {"X-API-Key": KEY} if path == "/v1/events" else {}  # events need the key or a session token
    res = client.post(path, json=body, headers=headers)
    assert res.status_code == status
    assert words in res.json()["error"]["message"]


def test_chat_is_openai_compatible_with_the_shown_products(client):
    res = client.post(
        "/v1/chat/completions",
        headers={"X-Session-Id": "api1"},
        json={"model": "shopassist", "messages": [{"role": "user", "content": "女士牛仔裤 200以内"}]},
    )
    body = res.json()
    assert res.status_code == 200 and body["object"] == "chat.completion"
    assert (
        body["choices"][0]["message"]["role"] == "assistant" and "为你找到" in body["choices"][0]["message"]["content"]
    )
    shown = body["shopassist"]["products"]
    assert shown and all(card["price"] <= 200 for card in body["shopassist"]["cards"])
    # the session carries over: the next message refines the same need
    follow = client.post(
        "/v1/chat/completions", json={"user": "api1", "messages": [{"role": "user", "content": "不要黑色的"}]}
    ).json()
    assert all("黑色" not in card["title"] for card in follow["shopassist"]["cards"])


def test_streamed_chat_sends_products_then_the_reply_as_server_sent_events(client):
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"stream": True, "user": "sse", "messages": [{"role": "user", "content": "羽绒服"}]},
    ) as res:
        lines = [line for line in res.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    kinds = [c.get("shopassist", {}).get("event") for c in chunks]
    assert "products" in kinds
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "为你找到" in content and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_events_change_the_next_answer_and_bad_ones_are_reported(client):
    first = client.post(
        "/v1/chat/completions", json={"user": "ev", "messages": [{"role": "user", "content": "羽绒服"}]}
    )
    shown = first.json()["shopassist"]["products"]
    token = first.json()["shopassist"]["session_token"]  # the chat issued this session's token
    assert first.headers["X-Session-Token"] == token
    res = client.post(
        "/v1/events",
        json=[
            {"session_id": "ev", "type": "dislike", "product_id": shown[0]},
            {"session_id": "ev", "type": "teleport", "product_id": shown[1]},
        ],
        headers={"X-Session-Token": token},
    )
    assert res.status_code == 200 and res.json()["accepted"] == 1
    assert res.json()["rejected"][0]["index"] == 1
    again = client.post(
        "/v1/chat/completions", json={"user": "ev", "messages": [{"role": "user", "content": "羽绒服"}]}
    )
    assert shown[0] not in again.json()["shopassist"]["products"]


def test_catalog_writes_need_the_key_and_are_searchable_at_once(client):
    product = {
        "title": "极光 女士长款羽绒服 极寒加厚",
        "price": 999,
        "currency": "CNY",
        "category": "服饰 > 女装 > 羽绒服",
    }
    assert client.put("/v1/catalog/products/new1", json=product).status_code == 401
    assert client.put("/v1/catalog/products/new1", json=product, headers={"X-API-Key": "wrong"}).status_code == 401
    res = client.put("/v1/catalog/products/new1", json=product, headers={"Authorization": f"Bearer {KEY}"})
    assert res.status_code == 200 and res.json()["status"] == "added"
    found = client.post("/v1/tools/search_products", json={"query": "极光 羽绒服"}).json()["data"]
    assert found[0]["id"] == "new1"
    bad = client.put("/v1/catalog/products/new2", json={"title": "x", "price": -1}, headers={"X-API-Key": KEY})
    assert bad.status_code == 422 and "price" in bad.json()["error"]["message"]
    bulk = client.post(
        "/v1/catalog/products:bulk",
        json={"products": [{"id": "n3", "title": "羊绒围巾"}, {"id": "n4"}]},
        headers={"X-API-Key": KEY},
    )
    assert bulk.status_code == 200 and bulk.json()["added"] == 1 and bulk.json()["rejected"][0]["index"] == 1
    assert client.delete("/v1/catalog/products/new1", headers={"X-API-Key": KEY}).status_code == 200
    assert client.get("/v1/catalog/products/new1").status_code == 404


def test_limits_size_and_rate_and_hide_server_errors(settings, use_embedder):
    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, APPAREL)
    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"))
    app = create_app(catalog, agent, api_key=None, max_body_bytes=1000, rate_per_minute=60)
    client = TestClient(app, raise_server_exceptions=False)
    big = client.post(
        "/v1/tools/search_products", content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"}
    )
    assert big.status_code == 413
    assert client.put("/v1/catalog/products/x", json={"title": "t"}).status_code == 403  # no key configured

    def boom(*_a, **_k):
        raise RuntimeError("secret internal detail")

    agent.tools.call = boom
    res = client.post("/v1/tools/search_products", json={"query": "x"})
    assert res.status_code == 500 and "secret" not in res.text and "Traceback" not in res.text
    codes = [client.get("/v1/tools").status_code for _ in range(30)]
    assert 429 in codes


# -- streaming: each grounded copy line as its own chunk, as it comes ---------------------------------
COPY = ["[1] 这条牛仔裤版型修身，日常好搭。\n", "[2] 这条牛仔裤颜色百搭，上身舒服。\n", "多余的一句"]


def scripted_client(settings, use_embedder, *copies):
    from assistant.llm.testing import ScriptedLLM

    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, APPAREL)
    llm = ScriptedLLM(stream=list(copies))
    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"), llm=llm)
    return TestClient(create_app(catalog, agent, api_key=KEY, rate_per_minute=6000))


def sse_chunks(res):
    lines = [line for line in res.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_streamed_reply_sends_each_grounded_line_as_it_comes_and_adds_up_to_the_reply(settings, use_embedder):
    client = scripted_client(settings, use_embedder, *COPY[:2], *COPY[:2])  # a call per product, two turns
    body = {"stream": True, "user": "s1", "messages": [{"role": "user", "content": "女士牛仔裤"}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as res:
        chunks = sse_chunks(res)
    kinds = [c.get("shopassist", {}).get("event") for c in chunks]
    contents = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
    # the two copy lines come as their own chunks, after the products and before the rest
    line_at = [i for i, k in enumerate(kinds) if k == "line"]
    assert len(line_at) == 2 and kinds.index("products") < line_at[0]
    assert not "".join(contents[: line_at[0]])  # the first line's chunk opens the reply (its header)
    assert "\n1. " in contents[line_at[0]] and contents[line_at[1]].startswith("\n2. ")
    rest = [i for i, c in enumerate(contents) if c and i > line_at[1]]
    assert rest and contents[rest[0]].startswith("\n3. ")  # the template lines, once, after the copy
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["shopassist"]["timings"]["first_line_ms"] >= 0  # products -> first copy line
    # the cards say why in the shopper's language, in a few plain words
    cards = chunks[kinds.index("products")]["shopassist"]["cards"]
    reasons = [r for card in cards for r in card.get("reasons", [])]
    assert reasons and all(len(card.get("reasons", [])) <= 3 for card in cards)
    assert all(re.search(r"[\u4e00-\u9fff]", r) and "#" not in r and "女士牛仔裤" not in r for r in reasons)
    # the deltas joined are exactly the reply (the same turn, not streamed, in a fresh session)
    plain = client.post("/v1/chat/completions", json={**body, "stream": False, "user": "s2"}).json()
    reply = plain["choices"][0]["message"]["content"]
    assert "".join(contents) == reply and reply.count("1. ") == 1 and "多余" not in reply


def test_the_first_line_reaches_the_client_while_the_model_is_still_writing(settings, use_embedder):
    import threading

    go_on = threading.Event()
    waited: list[bool] = []

    def second():  # the second product's line is asked for only once the client has the first
        waited.append(go_on.wait(timeout=20))
        yield COPY[1]

    client = scripted_client(settings, use_embedder, COPY[0], second())
    body = {"stream": True, "user": "s3", "messages": [{"role": "user", "content": "女士牛仔裤"}]}
    received = []
    with client.stream("POST", "/v1/chat/completions", json=body) as res:
        for line in res.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                received.append(chunk)
                if chunk.get("shopassist", {}).get("event") == "line":
                    go_on.set()
    assert waited == [True]  # the line came before the model finished, not at the end
    lines = [c for c in received if c.get("shopassist", {}).get("event") == "line"]
    assert [c["shopassist"]["position"] for c in lines] == [1, 2]


def test_a_refinement_after_the_first_lines_is_sent_as_one_and_the_reply_starts_over(settings, use_embedder):
    from assistant.llm.testing import ScriptedLLM

    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, APPAREL)
    reading = {"query": "夏天 连衣裙 雪纺 裙子", "category": None, "required": [], "excluded": []}
    llm = ScriptedLLM(
        structured=[reading], stream=["[1] 先写的一条", "[2] 先写的二条", "[1] 后写的一条", "[2] 后写的二条"]
    )
    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"), llm=llm)
    client = TestClient(create_app(catalog, agent, api_key=KEY, rate_per_minute=6000))
    body = {"stream": True, "user": "r1", "messages": [{"role": "user", "content": "想买点夏天穿的"}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as res:
        chunks = sse_chunks(res)
    events = [c.get("shopassist", {}) for c in chunks]
    contents = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
    products = [i for i, e in enumerate(events) if e.get("event") == "products"]
    assert len(products) == 2 and not events[products[0]]["refined"] and events[products[1]]["refined"]
    assert contents[products[1] - 1] == "\n\n"  # what was sent is closed off before the new reply
    assert [e["position"] for e in events if e.get("event") == "line"] == [1, 2, 1, 2]
    assert not any(e.get("replace") for e in events)  # the new reply streams as a continuation
    after = "".join(contents[products[1] :])
    assert "后写的一条" in after and "先写的" not in after


def test_the_experiment_arm_of_an_event_is_the_servers_not_the_clients(settings, use_embedder):
    from ranking.experiments import Experiment

    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, APPAREL)
    log = SQLiteEventLog(settings.home / "events.sqlite")
    ranker = Ranker(catalog, log)
    experiment = Experiment("rank1", (("fusion", 50.0), ("no-behaviour", 50.0)))
    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"), ranker=ranker, experiment=experiment)
    client = TestClient(create_app(catalog, agent, ranker, api_key=KEY, rate_per_minute=6000))
    pid = next(iter(catalog.products())).id
    for sid in ("s-a", "s-b", "s-c", "s-d"):
        res = client.post(
            "/v1/events",
            json={"session_id": sid, "type": "click", "product_id": pid, "variant": "rank1:made-up"},
            headers={"X-API-Key": KEY},
        )
        assert res.status_code == 200, res.text
    stored = {e.variant for e in log.replay()}
    assert stored and all(v in ("rank1:fusion", "rank1:no-behaviour") for v in stored)

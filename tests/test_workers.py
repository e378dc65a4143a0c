"""Two API workers on one home (the embedded backends: SQLite catalog and event log, session
files): what one accepts, the other serves next: an event changes its next ranking, a catalog
write is found by its next search. Each worker has its own catalog mirror, ranker and agent,
exactly as two `shopassist serve` processes would."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.agent import ShoppingAgent
from assistant.state import SessionStore
from evals.dialogues import default_suite
from ranking.events import SQLiteEventLog
from ranking.ranker import CATCH_UP_S, Ranker
from retrieval import Catalog, ingest_file
from ui.api import create_app

pytestmark = pytest.mark.integration

KEY = "test-key-123"
APPAREL = Path(default_suite()).parent / "catalogs" / "apparel_zh.jsonl"
H = {"X-API-Key": KEY}


def worker(settings, embedder, rankers=None):
    catalog = Catalog(settings, embedder=embedder)
    ranker = Ranker(catalog, SQLiteEventLog(settings.home / "events.sqlite"))
    if rankers is not None:
        rankers.append(ranker)
    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"), ranker=ranker)
    return TestClient(create_app(catalog, agent, ranker, api_key=KEY, rate_per_minute=60000))


def shown(client, session, message="女士牛仔裤"):
    body = {"user": session, "messages": [{"role": "user", "content": message}]}
    res = client.post("/v1/chat/completions", json=body, headers=H)
    assert res.status_code == 200, res.text
    return res.json()["shopassist"]["products"]


def test_an_event_through_one_worker_changes_the_next_answer_of_the_other(settings, use_embedder):
    ingest_file(Catalog(settings, embedder=use_embedder), APPAREL)
    a, b = worker(settings, use_embedder), worker(settings, use_embedder)
    first = shown(b, "w1")
    assert first
    res = a.post("/v1/events", json={"session_id": "w1", "type": "dislike", "product_id": first[0]}, headers=H)
    assert res.status_code == 200 and res.json()["accepted"] == 1
    again = shown(b, "w1")  # worker b never saw the event: it reads it from the shared log
    assert first[0] not in again and again


def test_a_catalog_write_through_one_worker_is_found_by_the_other(settings, use_embedder):
    import time

    ingest_file(Catalog(settings, embedder=use_embedder), APPAREL)
    rankers: list[Ranker] = []
    a, b = worker(settings, use_embedder, rankers), worker(settings, use_embedder, rankers)
    assert b.post("/v1/tools/search_products", json={"query": "牛仔裤"}, headers=H).status_code == 200
    record = {"title": "极光紫阔腿牛仔裤 女", "price": 129.0, "currency": "CNY", "category": "女装 > 牛仔裤"}
    assert a.put("/v1/catalog/products/new-aurora", json=record, headers=H).status_code == 200
    hits = b.post("/v1/tools/search_products", json={"query": "极光紫阔腿牛仔裤"}, headers=H).json()["data"]
    assert hits and hits[0]["id"] == "new-aurora"
    # and shoppers' clicks through one worker reach the other's shared knowledge (popularity)
    for k in range(3):
        a.post("/v1/events", json={"session_id": f"c{k}", "type": "click", "product_id": "new-aurora"}, headers=H)
    knowledge_b = rankers[1].knowledge
    before = knowledge_b.popularity("new-aurora")
    time.sleep(CATCH_UP_S + 0.1)
    shown(b, "someone")  # a ranking in b takes in what a recorded
    assert knowledge_b.popularity("new-aurora") > before

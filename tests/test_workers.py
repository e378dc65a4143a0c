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


def test_a_sessions_turns_exclude_each_other_across_workers(tmp_path):
    """Two workers' lock tables on one home (as two processes have): the same session waits,
    another session does not."""
    import threading

    from ui.api import SessionLocks

    one, two = SessionLocks(tmp_path / "locks"), SessionLocks(tmp_path / "locks")
    got: list[str] = []

    def turn(session: str) -> None:
        with two.lock(session):
            got.append(session)

    with one.lock("shopper-1"):
        same = threading.Thread(target=turn, args=("shopper-1",))
        other = threading.Thread(target=turn, args=("shopper-2x",))
        same.start()
        other.start()
        other.join(5)
        same.join(0.5)
        assert got == ["shopper-2x"] and same.is_alive()  # the same session waits for the first worker
    same.join(5)
    assert got == ["shopper-2x", "shopper-1"]


def test_serve_with_two_workers_answers_over_one_home(tmp_path, sample_file):
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    home = tmp_path / "home"
    env = {**os.environ, "SHOPASSIST_HOME": str(home)}
    ingest = subprocess.run(
        [sys.executable, "-m", "ui.cli", "catalog", "ingest", str(sample_file)], env=env, capture_output=True
    )
    assert ingest.returncode == 0, ingest.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "ui.cli", "serve", "--workers", "2", "--port", str(port), "--no-llm"]
    server = subprocess.Popen([*cmd, "--api-key", KEY], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("serve --workers 2 did not start")
        with httpx.Client(base_url=base, headers=H, timeout=60) as client:
            turns = [
                client.post(
                    "/v1/chat/completions", json={"user": f"s{k}", "messages": [{"role": "user", "content": "牛仔裤"}]}
                )
                for k in range(6)
            ]
            assert all(t.status_code == 200 for t in turns)
            pid = turns[0].json()["shopassist"]["products"][0]
            ev = client.post("/v1/events", json={"session_id": "s0", "type": "dislike", "product_id": pid})
            assert ev.status_code == 200
            again = client.post(
                "/v1/chat/completions", json={"user": "s0", "messages": [{"role": "user", "content": "牛仔裤"}]}
            )
            assert pid not in again.json()["shopassist"]["products"]  # whichever worker answered
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not list(home.glob(".serve-*.pickle"))  # the workers' settings file goes with the server

"""No global lock in the API: a search or an event is served while another session's turn waits
on the LLM; two turns of one session never interleave; LLM calls are bounded by the slots."""

from __future__ import annotations

import threading
import time
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


class HeldLLM:
    """Copy lines that wait until released; counts how many calls are in flight at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.in_flight = 0
        self.most = 0
        self._lock = threading.Lock()

    def stream(self, messages, *, max_tokens, temperature=0.3):
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        self.entered.release()
        try:
            assert self.release.wait(30), "never released"
            yield "[1] 上身舒服，日常好搭。\n"
        finally:
            with self._lock:
                self.in_flight -= 1

    def structured(self, messages, schema, *, max_tokens, temperature=0):
        raise RuntimeError("not used")

    def chat_with_tools(self, messages, tools, **kw):
        raise RuntimeError("not used")

    def info(self):
        return {"backend": "held"}


def app_with(settings, use_embedder, llm, slots):
    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, APPAREL)
    ranker = Ranker(catalog, SQLiteEventLog(settings.home / "events.sqlite"))
    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"), llm=llm, ranker=ranker)
    return TestClient(create_app(catalog, agent, ranker, api_key=KEY, rate_per_minute=60000, llm_slots=slots))


def chat(client, session):
    body = {"user": session, "messages": [{"role": "user", "content": "女士牛仔裤"}]}
    return client.post("/v1/chat/completions", json=body, headers={"X-API-Key": KEY})


def test_searches_and_events_do_not_wait_for_another_sessions_turn(settings, use_embedder):
    llm = HeldLLM()
    client = app_with(settings, use_embedder, llm, slots=1)
    turn = threading.Thread(target=chat, args=(client, "slow"))
    turn.start()
    assert llm.entered.acquire(timeout=30)  # the turn now waits inside the LLM
    try:
        started = time.perf_counter()
        res = client.post("/v1/tools/search_products", json={"query": "牛仔裤", "top_k": 3}, headers={"X-API-Key": KEY})
        assert res.status_code == 200 and res.json()["data"]
        pid = res.json()["data"][0]["id"]
        ev = client.post(
            "/v1/events", json={"session_id": "other", "type": "click", "product_id": pid}, headers={"X-API-Key": KEY}
        )
        assert ev.status_code == 200
        assert time.perf_counter() - started < 10  # served while the turn is still held
        assert turn.is_alive()
    finally:
        llm.release.set()
        turn.join(30)


@pytest.mark.parametrize(("sessions", "slots", "most"), [(("a", "a"), 4, 1), (("a", "b"), 4, 2), (("a", "b"), 1, 1)])
def test_one_session_never_interleaves_and_llm_calls_are_bounded(settings, use_embedder, sessions, slots, most):
    llm = HeldLLM()
    client = app_with(settings, use_embedder, llm, slots=slots)
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(chat(client, s))) for s in sessions]
    for t in threads:
        t.start()
    assert llm.entered.acquire(timeout=30)
    time.sleep(1.0)  # time for a second call to enter, if anything lets it
    assert llm.most == most
    llm.release.set()
    for t in threads:
        t.join(60)
    assert [r.status_code for r in results] == [200, 200]


def test_concurrent_first_searches_open_one_vector_index(settings, use_embedder):
    """Without a global lock the first requests arrive together: the Chroma index is opened once
    (two clients opened at once on one path failed with "could not connect to tenant")."""
    from concurrent.futures import ThreadPoolExecutor

    from retrieval import HybridRetriever

    ingest_file(Catalog(settings, embedder=use_embedder), APPAREL)
    fresh = Catalog(settings, embedder=use_embedder)
    retriever = HybridRetriever(fresh)
    barrier = threading.Barrier(8)

    def search(q):
        barrier.wait()
        return fresh.vectors, retriever.search(q, top_k=3)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(search, ["牛仔裤", "连衣裙", "羽绒服", "衬衫", "T恤", "外套", "裙子", "毛衣"]))
    assert len({id(index) for index, _ in results}) == 1 and all(hits for _, hits in results)


def test_turn_slots_default_to_one_rules_turn_per_process_and_more_than_the_llm_slots(monkeypatch):
    import os

    from ui.api import TURN_SLOTS_ENV, default_turn_slots

    monkeypatch.delenv(TURN_SLOTS_ENV, raising=False)
    assert default_turn_slots() == 1  # rules only: a second turn thread only takes the GIL from searches
    assert default_turn_slots(True, 1) == max(os.cpu_count() or 1, 2)
    assert default_turn_slots(True, 8) >= 9  # a turn mostly waits for the LLM: room for all its slots
    monkeypatch.setenv(TURN_SLOTS_ENV, "3")
    assert default_turn_slots() == 3 and default_turn_slots(True, 8) == 3

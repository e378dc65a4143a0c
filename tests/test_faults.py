"""Faults on the shared backends as the API's clients see them: a Redis that stops for a moment is
a clear 503 with Retry-After, nothing acknowledged is lost, and service resumes by itself."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from assistant.agent import ShoppingAgent
from ranking.ranker import Ranker
from ranking.redis_events import RedisEventLog
from retrieval import Catalog
from shopassist.config import Settings
from ui.api import BACKEND_RETRY_AFTER_S, create_app

pytest_plugins = ["redis_server"]
pytestmark = pytest.mark.integration
KEY = "fault-key"


def test_a_redis_that_stops_gives_503_with_retry_after_and_the_api_resumes_by_itself(
    settings: Settings, loaded_catalog: Catalog, use_embedder: object, own_redis_server: object
) -> None:
    from assistant.redis_state import RedisSessionStore

    url = own_redis_server.url  # type: ignore[attr-defined]
    events = RedisEventLog(url)
    ranker = Ranker(loaded_catalog, events)
    agent = ShoppingAgent(loaded_catalog, RedisSessionStore(url), ranker=ranker)
    client = TestClient(create_app(loaded_catalog, agent, ranker, api_key=KEY, rate_per_minute=6000))
    headers = {"Authorization": f"Bearer {KEY}"}
    event = {"session_id": "s1", "type": "click", "product_id": "j1"}
    assert client.post("/v1/events", json=event, headers=headers).status_code == 200

    own_redis_server.stop()  # type: ignore[attr-defined]
    down = client.post("/v1/events", json=event, headers=headers)
    assert down.status_code == 503, down.text
    assert down.headers["Retry-After"] == str(BACKEND_RETRY_AFTER_S)
    assert down.json()["error"]["type"] == "backend_unavailable"
    assert "retry" in down.json()["error"]["message"]
    # a search needs no Redis and keeps being served
    assert client.post("/v1/tools/search_products", json={"query": "牛仔裤"}).status_code == 200

    own_redis_server.start()  # type: ignore[attr-defined]
    again = client.post("/v1/events", json=event, headers=headers)
    assert again.status_code == 200, again.text
    # what was acknowledged before the outage is still there, the refused one was not half-written
    assert [e.product_id for e in events.session("s1")] == ["j1", "j1"]

"""Schemathesis against the API's own OpenAPI document: generated requests (valid and invalid)
for every operation, and none may get a 5xx. Runs in-process (ASGI) on a real catalog, agent and
ranker; catalog writes are exercised with the API key."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from assistant.agent import ShoppingAgent
from assistant.state import SessionStore
from evals.dialogues import default_suite
from ranking.events import SQLiteEventLog
from ranking.ranker import Ranker
from retrieval import Catalog, ingest_file
from ui.api import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "fuzz-key"
APPAREL = Path(default_suite()).parent / "catalogs" / "apparel_zh.jsonl"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, use_embedder):
    from shopassist.config import Settings

    home = tmp_path_factory.mktemp("fuzz") / "home"
    catalog = Catalog(Settings(home=home), embedder=use_embedder)
    ingest_file(catalog, APPAREL)
    ranker = Ranker(catalog, SQLiteEventLog(home / "events.sqlite"))
    agent = ShoppingAgent(catalog, SessionStore(home / "sessions"), ranker=ranker)
    app = create_app(catalog, agent, ranker, api_key=KEY, rate_per_minute=1_000_000)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_generated_request_gets_a_server_error(api_schema):
    """Every operation, ~25 generated requests each (schemathesis' pytest plugin does not load
    under this pytest, so the operations are driven with hypothesis directly)."""
    seen: list[str] = []
    errors: list[str] = []
    statuses: list[int] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        seen.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            response = case.call(headers={"X-API-Key": KEY})
            statuses.append(response.status_code)
            if response.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        run()
    assert {
        "GET /v1/tools",
        "POST /v1/chat/completions",
        "POST /v1/events",
        "PUT /v1/catalog/products/{product_id}",
    } <= set(seen)
    assert errors == []
    assert len(statuses) >= 5 * len(seen)  # the generator really ran every operation
    assert any(200 <= c < 300 for c in statuses) and any(400 <= c < 500 for c in statuses)

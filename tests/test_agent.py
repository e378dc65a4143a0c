"""The agent end to end on real components (catalog, Chroma, USE, rules), without the LLM:
every step of a turn still happens, and follow-ups edit what the shopper sees."""

import json
from pathlib import Path

import pytest

from assistant.agent import ShoppingAgent
from assistant.state import SessionStore
from evals.dialogues import default_suite, run_dialogues
from retrieval import Catalog, ingest_file

pytestmark = pytest.mark.integration

APPAREL = Path(default_suite()).parent / "catalogs" / "apparel_zh.jsonl"


@pytest.fixture()
def agent(settings, use_embedder):
    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, APPAREL)
    return ShoppingAgent(catalog, SessionStore(settings.home / "sessions"))


def test_a_conversation_edits_constraints_and_the_shown_products(agent):
    first = agent.ask("s1", "女士牛仔裤 200以内 不要破洞")
    products = [agent.catalog.get(i) for i in first.products]
    assert products and {"first_products_ms", "total_ms"} <= first.timings.keys()  # read by the API and the evals
    assert all("女装 > 牛仔裤" in p.category and p.price <= 200 and "破洞" not in p.title for p in products)
    assert first.intent_source == "rules" and first.reply.startswith("为你找到")
    assert all(str(f"{p.price:.2f}") in first.reply for p in products)  # template copy, record prices

    men = agent.ask("s1", "换成男款")
    assert men.products and all("男装" in agent.catalog.get(i).category for i in men.products)
    assert men.constraints["max_price"] == 200.0 and men.constraints["excluded"] == ["破洞"]

    pick = agent.ask("s1", "第二个详细说说")
    # picking one keeps the list on screen and puts the chosen one in focus
    assert pick.products == men.products and pick.focus == men.products[1:2] and pick.act == "pick"


def test_events_stream_products_before_the_reply_and_not_this_removes_a_product(agent):
    events = [e.type for e in agent.turn("s2", "羽绒服")]
    assert events.index("products") < events.index("reply") < events.index("done")
    shown = agent.ask("s2", "羽绒服").products
    result = agent.tools.call("record_feedback", {"session_id": "s2", "product_id": shown[0], "event": "dislike"})
    assert result.ok
    assert shown[0] not in agent.ask("s2", "羽绒服").products


def test_nothing_matching_is_said_honestly_with_the_nearest_relaxation(agent):
    result = agent.ask("s3", "女士大衣 100元以内")
    assert result.products == []
    assert "没有找到" in result.reply and "最低" in result.reply


def test_editing_the_parsed_need_searches_again_without_parsing(agent):
    from assistant.state import ConstraintEdit

    first = agent.ask("s4", "女士牛仔裤 200以内 不要破洞")
    assert first.constraints["excluded"] == ["破洞"]
    events = list(agent.edit("s4", ConstraintEdit(remove=["破洞"], max_price=160)))
    assert [e.type for e in events][:3] == ["intent", "products", "expansions"]
    edited = events[-1].result
    assert edited.intent_source == "edit" and edited.message.startswith("[edit]")
    assert "破洞" not in edited.constraints.get("excluded", []) and edited.constraints["max_price"] == 160
    assert edited.products and all(agent.catalog.get(i).price <= 160 for i in edited.products)
    assert any("破洞" in agent.catalog.get(i).title for i in edited.products)  # the removed exclusion is gone
    # the edit persists: the next message refines the edited need
    follow = agent.ask("s4", "不要黑色的")
    assert follow.constraints["max_price"] == 160 and follow.constraints["excluded"] == ["黑色"]


@pytest.mark.slow
def test_the_dialogue_suite_passes_without_the_llm(settings):
    """The rules-only floor: the LLM may add understanding, the product must not need it."""
    result = run_dialogues(default_suite(), settings=settings)
    assert result["turns_passed_share"] >= 0.9, json.dumps(result["failures"][:5], ensure_ascii=False)
    assert result["grounding"]["ungrounded_products_shown"] == 0
    assert result["grounding"]["ungrounded_prices_shown"] == 0
    assert result["grounding"]["ungrounded_lines_shown"] == 0


def test_with_the_ranker_not_this_and_asking_about_a_product_are_behaviour(settings, use_embedder):
    from ranking.events import SQLiteEventLog
    from ranking.ranker import Ranker

    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, APPAREL)
    ranker = Ranker(catalog, SQLiteEventLog(settings.home / "events.sqlite"))
    agent = ShoppingAgent(catalog, SessionStore(settings.home / "sessions"), ranker=ranker)
    shown = agent.ask("r1", "羽绒服").products
    assert agent.tools.call("record_feedback", {"session_id": "r1", "product_id": shown[0], "event": "dislike"}).ok
    assert ranker.profile("r1").disliked == [shown[0]]
    again = agent.ask("r1", "羽绒服")
    assert shown[0] not in again.products
    agent.ask("r1", "第二个详细说说")
    assert again.products[1] in ranker.profile("r1").interest  # asking about it counts as a click
    assert [e.type.value for e in ranker.log.session("r1")][:2] == ["search", "dislike"]

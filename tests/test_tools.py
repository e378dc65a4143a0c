"""The five tools: typed, validated, and never raising into the agent loop."""

import pytest

from assistant.tools import ToolRegistry

pytestmark = pytest.mark.integration


@pytest.fixture()
def tools(loaded_catalog):
    events = []
    registry = ToolRegistry(loaded_catalog, feedback=lambda s, p, e: events.append((s, p, e)))
    registry.events = events
    return registry


def test_exactly_five_tools_with_openai_function_schemas(tools):
    schemas = tools.schemas()
    assert [s["function"]["name"] for s in schemas] == [
        "search_products",
        "get_product",
        "compare_products",
        "similar_products",
        "record_feedback",
    ]
    search = schemas[0]["function"]
    assert search["parameters"]["type"] == "object" and "max_price" in search["parameters"]["properties"]
    assert schemas[0]["type"] == "function" and search["description"]


def test_search_tool_applies_filters_and_returns_cards(tools):
    result = tools.call(
        "search_products", {"query": "牛仔裤", "require_terms": ["高腰"], "exclude_terms": ["加绒"], "in_stock": True}
    )
    assert result.ok and [c["id"] for c in result.data] == ["j1"]
    card = result.data[0]
    assert card["price"] == 299 and card["currency"] == "CNY" and card["rank"] == 1
    cheap_first = tools.call("search_products", {"query": "boots", "sort": "price_asc", "currency": "USD"})
    prices = [c["price"] for c in cheap_first.data]
    assert prices == sorted(prices)


def test_bad_calls_come_back_as_messages(tools):
    assert "unknown tool" in tools.call("delete_catalog", {}).error
    bad = tools.call("search_products", {"max_price": -5, "colour": "red"})
    assert not bad.ok and "max_price" in bad.error and "colour" in bad.error
    assert "not valid JSON" in tools.call("get_product", "{oops").error
    missing = tools.call("get_product", {"product_id": "nope"})
    assert not missing.ok and "no product" in missing.error
    assert '"ok": false' in missing.as_message()


def test_get_compare_similar_and_feedback(tools):
    assert tools.call("get_product", {"product_id": "s1"}).data["brand"] == "CHANDO/自然堂"
    cmp = tools.call("compare_products", {"product_ids": ["b1", "b2"]}).data
    assert cmp["cheapest"] == "b2" and "color" in cmp["shared_attributes"]
    similar = tools.call("similar_products", {"product_id": "b1", "top_k": 3}).data
    assert similar and "b1" not in [c["id"] for c in similar]
    assert similar[0]["category"].startswith("Shoes")  # the nearest category with other products
    ok = tools.call("record_feedback", {"session_id": "s1", "product_id": "b1", "event": "dislike"})
    assert ok.ok and tools.events == [("s1", "b1", "dislike")]
    assert not tools.call("record_feedback", {"session_id": "s1", "product_id": "b1", "event": "teleport"}).ok

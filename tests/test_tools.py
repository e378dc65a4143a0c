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


# -- why a product is shown, in the shopper's words --------------------------------------------------
def plain(phrases):
    """No ranks, no scores, no internal names, at most three."""
    assert phrases and len(phrases) <= 3
    for phrase in phrases:
        assert "#" not in phrase and "_" not in phrase and "match #" not in phrase


def test_search_cards_say_why_in_the_shoppers_language(tools):
    zh = tools.call("search_products", {"query": "牛仔裤", "require_terms": ["高腰"], "max_price": 300})
    card = next(c for c in zh.data if c["id"] == "j1")
    plain(card["reasons"])
    assert card["reasons"][0] == "高腰、300元以内，符合你的要求"
    assert card["reason_codes"] and "高腰 牛仔裤" not in "".join(card["reasons"])  # no query echo
    en = tools.call(
        "search_products",
        {"query": "hiking boots", "require_terms": ["waterproof"], "max_price": 100, "currency": "USD"},
    )
    card = en.data[0]
    plain(card["reasons"])
    assert card["reasons"][0] == "waterproof and under $100, as you asked"


def test_reason_phrases_follow_the_features_in_both_languages(loaded_catalog):
    from assistant.tools import product_card, reason_phrases
    from shopassist.models import SearchFilters

    j4 = loaded_catalog.get("j4")
    codes = ["keyword", "meaning", "search", "similar_to:j1", "after_search", "popular", "out_of_stock"]
    zh = reason_phrases(j4, codes, "zh", lookup=loaded_catalog.get)
    assert zh == ["和你看过的牛仔裤相似", "搜索这个的人常选它", "最近很多人在看"]
    b1 = loaded_catalog.get("b1")
    en = reason_phrases(b1, ["all_words", "similar_to:b2", "new"], "en", lookup=loaded_catalog.get)
    assert en == ["similar to the boots you looked at", "new: few shoppers have seen it yet"]
    # only what is true of this product: a price it keeps, a brand and terms its record has
    asked = SearchFilters(require_terms=["防水|waterproof", "红色"], max_price=50, brands=["TrailCo"])
    assert reason_phrases(b1, ["meaning"], "en", asked) == ["TrailCo and waterproof, as you asked"]
    assert reason_phrases(b1, ["meaning"], "zh", asked) == ["TrailCo、waterproof，符合你的要求"]
    # nothing more telling: how the search found it; out of stock alone says nothing (the card shows stock)
    assert reason_phrases(b1, ["meaning"], "zh") == ["和你描述的很接近"]
    assert reason_phrases(b1, ["all_words", "search"], "en") == ["matches what you searched for"]
    assert reason_phrases(b1, ["out_of_stock", "listed"], "en") == []
    card = product_card(j4, 1, codes, language="zh", lookup=loaded_catalog.get)
    plain(card["reasons"])
    assert card["reason_codes"] == codes
    assert "reasons" not in product_card(b1, 1, ["listed"]) and product_card(b1, 1, ["listed"])["reason_codes"]

"""Search planning is a pure function of the need and the catalog's vocabulary: tested with a
hand-made vocabulary, no catalog, no index."""

import pytest

from assistant.intent import Need, ShoppingIntent
from assistant.planner import Probe, Vocabulary, advice, category_filter, plan_search, required_terms, search_args
from shopassist.models import SearchFilters, Sort

pytestmark = pytest.mark.unit

VOCAB = Vocabulary(
    levels=frozenset({"服饰", "女装", "男装", "牛仔裤", "boots"}),
    best_category=lambda text: "服饰 > 女装 > 牛仔裤" if "仔" in text else None,
    audience_words={"女士": "f", "men's": "m"},
    tokenize=lambda text: text.split(),
)


def test_a_need_becomes_strict_attempts_then_drops_only_the_soft_in_stock_preference():
    need = Need(query="牛仔裤 高腰", category="牛仔裤", required=["女士", "黑色"], excluded=["破洞"], max_price=200)
    plan = plan_search(need, VOCAB, disliked=["p9"], show=5)
    strict, relaxed = plan.attempts
    assert strict.args.in_stock and not relaxed.args.in_stock and relaxed.relaxed == ("in_stock",)
    args = relaxed.args
    assert args.category == "牛仔裤" and args.max_price == 200 and args.exclude_ids == ["p9"]
    # audiences in the short form titles use, every must-have with its other-language spelling
    assert args.require_terms == ["女|women|woman|ladies", "黑色|black"]
    assert "破洞" in args.exclude_terms
    assert plan.words == frozenset({"高腰"})  # the category word is not a ranking word
    assert [p.kind for p in plan.probes] == ["required", "price", "excluded"]


def test_the_filters_the_plan_produces_are_valid_search_filters():
    need = Need(query="boots", min_price=10, max_price=100, brands=["Acme"], sort=Sort.price_asc)
    args = search_args(need, disliked=[], top_k=5)
    assert isinstance(args.filters(), SearchFilters)
    assert args.filters().min_price == 10 and args.filters().brands == ["Acme"] and args.sort == Sort.price_asc


def test_unknown_category_words_are_not_a_filter_and_close_words_map_to_a_level():
    assert category_filter("牛仔裤", VOCAB) == "牛仔裤"
    assert category_filter("小脚仔裤", VOCAB) == "牛仔裤"
    assert category_filter("spaceship", VOCAB) is None


def test_a_category_path_that_names_an_audience_adds_it_unless_the_shopper_named_one():
    assert required_terms(Need(category="服饰 > 女装 > 牛仔裤"), VOCAB) == ["女|women|woman|ladies"]
    assert required_terms(Need(category="服饰 > 女装 > 牛仔裤", required=["men's"]), VOCAB)[0].startswith("男|")
    assert required_terms(Need(category="服饰 > 牛仔裤"), VOCAB) == []


def test_advice_names_the_relaxation_that_would_find_something():
    need = Need(language="en", required=["waterproof"], max_price=20)
    base = search_args(need, [], 5)
    assert (
        advice(Probe("price", base), need, 3, [35.0, 19.5 + 30]) == "without the price limit there are matches from 35"
    )
    assert advice(Probe("price", base), need, 3, []) is None  # nothing priced: nothing to promise
    assert "waterproof" in (advice(Probe("required", base), need, 2, []) or "")


def test_a_message_reading_restates_a_need_and_back():
    need = Need(query="羽绒服", required=["黑色"], max_price=500)
    intent = ShoppingIntent.from_need(need, references=[2])
    assert intent.references == [2] and intent.need() == need


def test_excluding_a_compound_keeps_out_its_modifier_too():
    from assistant.planner import exclusion_spellings

    assert "机械" in exclusion_spellings("机械表")  # titles say 全自动机械男士手表, not 机械表
    assert exclusion_spellings("破洞") == ["破洞"]

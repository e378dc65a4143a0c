"""The rule parser: what a shopper types, and what the first answer is searched with.

Table-driven, Chinese and English side by side. A small catalog (FacetIndex) supplies the
vocabulary; some cases run without one, on built-in words and the shipped lexicons only.
"""

from __future__ import annotations

import random

import pytest

from assistant.facets import FacetIndex
from assistant.intent import PriceChange, Relation, ShoppingIntent
from assistant.rules import parse_rules
from shopassist.models import Product, Sort

pytestmark = pytest.mark.unit


def _p(pid: str, title: str, category: str, brand: str | None = None, **attributes: str) -> Product:
    return Product(id=pid, title=title, category=category, brand=brand, attributes=attributes)


CATALOG = [
    _p("j1", "高腰修身牛仔裤女 黑色", "服饰 > 女装 > 牛仔裤", "Levi's/李维斯", 颜色="黑色", 腰型="高腰", 版型="修身"),
    _p("j2", "破洞牛仔裤女 浅蓝色", "服饰 > 女装 > 牛仔裤", "优衣库", 颜色="浅蓝色", 风格="破洞"),
    _p("j3", "加绒牛仔裤女 高腰", "服饰 > 女装 > 牛仔裤", "森马", 颜色="蓝色", 腰型="高腰", 厚度="加绒"),
    _p("j4", "男士直筒牛仔裤 深蓝", "服饰 > 男装 > 牛仔裤", "森马", 颜色="深蓝色"),
    _p("c1", "女士羊毛大衣 驼色", "服饰 > 女装 > 大衣", "例牌A", 颜色="驼色", 面料="羊毛"),
    _p("s1", "自然堂雪域精粹保湿面霜", "美妆 > 面部护理 > 面霜", "CHANDO/自然堂", 功效="保湿"),
    _p("s2", "爽肤水 清爽型", "美妆 > 面部护理 > 爽肤水", "CHANDO/自然堂"),
    _p("b1", "Waterproof Leather Hiking Boots", "Clothing > Men > Boots", "Timberland", features="waterproof"),
    _p("b2", "Trail Hiking Boots, Black", "Clothing > Men > Boots", "Merrell", features="waterproof", color="black"),
    _p("e1", "Men's Wool Overcoat, Navy", "Clothing > Men > Coats", "Example Co", color="navy", material="wool"),
    _p("k1", "儿童益智积木", "母婴玩具 > 儿童", "乐高"),
]

JEANS = ShoppingIntent(query="牛仔裤", category="服饰 > 女装 > 牛仔裤")
BOOTS = ShoppingIntent(query="hiking boots", category="Clothing > Men > Boots", language="en")


@pytest.fixture(scope="module")
def facets() -> FacetIndex:
    return FacetIndex.from_products(CATALOG)


# -- the two examples of the README ---------------------------------------------------------------
def test_jeans_for_women_cheaper_without_rips(facets: FacetIndex):
    r = parse_rules("牛仔裤女 便宜点的 不要破洞", facets)
    assert "牛仔裤" in r.query and "牛仔裤" in (r.category or "")
    assert r.category == "服饰 > 女装 > 牛仔裤"
    assert r.required == ["女"]
    assert r.excluded == ["破洞"]
    assert r.price_change is PriceChange.cheaper
    assert r.language == "zh" and r.relation is Relation.new


def test_waterproof_hiking_boots_under_100_not_brown(facets: FacetIndex):
    r = parse_rules("waterproof hiking boots under $100, not brown", facets)
    assert (r.max_price, r.currency) == (100, "USD")
    assert r.excluded == ["brown"]
    assert r.required == ["waterproof"]
    assert "hiking boots" in r.query and "100" not in r.query and "brown" not in r.query
    assert r.category == "Clothing > Men > Boots"
    assert r.language == "en"


@pytest.mark.parametrize(("message", "excluded"), [("not brown either", ["brown"]), ("no leather too", ["leather"])])
def test_a_trailing_either_or_too_is_not_part_of_the_exclusion(message, excluded):
    assert parse_rules(message).excluded == excluded


def test_the_same_messages_without_a_catalog():
    zh = parse_rules("牛仔裤女 便宜点的 不要破洞")
    assert (zh.category, zh.required, zh.excluded, zh.price_change) == ("牛仔裤", ["女"], ["破洞"], PriceChange.cheaper)
    en = parse_rules("waterproof hiking boots under $100, not brown")
    assert (en.max_price, en.currency, en.excluded) == (100, "USD", ["brown"])
    assert en.query == "waterproof hiking boots"


# -- prices ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "min_price", "max_price", "currency"),
    [
        ("牛仔裤 200以内", None, 200, None),
        ("200元以下的牛仔裤", None, 200, "CNY"),
        ("不超过300", None, 300, None),
        ("100-200元", 100, 200, "CNY"),
        ("100到200", 100, 200, None),
        ("价格在100到200之间", 100, 200, None),
        ("200左右", 160, 240, None),
        ("预算1千左右", 800, 1200, None),
        ("两百块以内", None, 200, "CNY"),
        ("¥300以内", None, 300, "CNY"),
        ("RMB 500 以下", None, 500, "CNY"),
        ("100以上", 100, None, None),
        ("500元起", 500, None, "CNY"),
        ("最多1.5k", None, 1500, None),
        ("under $100", None, 100, "USD"),
        ("below 50", None, 50, None),
        ("less than 30 dollars", None, 30, "USD"),
        ("between 20 and 50", 20, 50, None),
        ("$20-$50", 20, 50, "USD"),
        ("20 to 50 bucks", 20, 50, "USD"),
        ("over 100", 100, None, None),
        ("at least 40 usd", 40, None, "USD"),
        ("around $50", 40, 60, "USD"),
        ("50 or less", None, 50, None),
        ("no more than 80", None, 80, None),
        ("$35 headphones", None, 35, "USD"),
    ],
)
def test_prices(message: str, min_price: float | None, max_price: float | None, currency: str | None):
    r = parse_rules(message)
    assert (r.min_price, r.max_price, r.currency) == (min_price, max_price, currency)
    assert not any(ch.isdigit() for ch in r.query)  # the price is a filter, not search text


@pytest.mark.parametrize(
    "message",
    [
        "3天以内发货",
        "under 5 kg",
        "50ml以下的小样",
        "38码以上",
        "2个以内",
        "iphone 13 case",
        "第2个",
        "compare 1 and 3",
    ],
)
def test_numbers_that_are_not_prices(message: str):
    r = parse_rules(message)
    assert (r.min_price, r.max_price) == (None, None)


# -- relative price and sort ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "change"),
    [
        ("便宜点", PriceChange.cheaper),
        ("便宜一些的", PriceChange.cheaper),
        ("再便宜", PriceChange.cheaper),
        ("有没有更便宜的", PriceChange.cheaper),
        ("不要太贵的", PriceChange.cheaper),
        ("cheaper", PriceChange.cheaper),
        ("something less expensive", PriceChange.cheaper),
        ("not too expensive please", PriceChange.cheaper),
        ("贵一点的", PriceChange.pricier),
        ("好一点的", PriceChange.pricier),
        ("质量好一点的", PriceChange.pricier),
        ("something more premium", PriceChange.pricier),
        ("higher end ones", PriceChange.pricier),
    ],
)
def test_relative_price(message: str, change: PriceChange):
    r = parse_rules(message, previous=JEANS, shown_count=5)
    assert r.price_change is change
    assert r.relation is Relation.refine
    assert (r.min_price, r.max_price) == (None, None)


@pytest.mark.parametrize(
    ("message", "sort"),
    [
        ("最便宜的牛仔裤", Sort.price_asc),
        ("牛仔裤 价格从低到高", Sort.price_asc),
        ("cheapest hiking boots", Sort.price_asc),
        ("lowest price first", Sort.price_asc),
        ("最贵的面霜", Sort.price_desc),
        ("highest price", Sort.price_desc),
        ("好评多的面霜", Sort.rating),
        ("评分高的", Sort.rating),
        ("best rated boots", Sort.rating),
        ("销量最高的", Sort.sales),
        ("最畅销的面霜", Sort.sales),
        ("best selling boots", Sort.sales),
        ("牛仔裤", Sort.relevance),
    ],
)
def test_sort(message: str, sort: Sort):
    r = parse_rules(message)
    assert r.sort is sort
    assert r.price_change is None  # 最便宜 is an order, not "cheaper than before"


# -- negations ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "excluded", "exclude_brands"),
    [
        ("不要破洞", ["破洞"], []),
        ("不要黑色的", ["黑色"], []),
        ("别要黑色和白色", ["黑色", "白色"], []),
        ("不含酒精的爽肤水", ["酒精"], []),
        ("不想要加绒的", ["加绒"], []),
        ("非转基因大豆油", ["转基因"], []),
        ("除了黑色还有别的颜色吗", ["黑色"], []),
        ("没有破洞的牛仔裤", ["破洞"], []),
        ("不要李维斯", [], ["李维斯"]),
        ("别给我推荐自然堂", [], ["自然堂"]),
        ("not brown", ["brown"], []),
        ("not brown or black", ["brown", "black"], []),
        ("no leather please", ["leather"], []),
        ("a jacket without a hood", ["hood"], []),
        ("boots except Timberland", [], ["Timberland"]),
        ("anything but red", ["red"], []),
        ("don't want suede", ["suede"], []),
        ("red rather than black", ["black"], []),
    ],
)
def test_negations(facets: FacetIndex, message: str, excluded: list[str], exclude_brands: list[str]):
    r = parse_rules(message, facets)
    assert r.excluded == excluded
    assert r.exclude_brands == exclude_brands
    for word in excluded + exclude_brands:
        assert word.casefold() not in r.query.casefold()
        assert word not in r.required and word not in r.brands


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("不要破洞牛仔裤", "牛仔裤"),
        ("不要破洞的牛仔裤", "牛仔裤"),
        ("没有破洞的牛仔裤", "牛仔裤"),
        ("非转基因大豆油", "大豆油"),
    ],
)
def test_a_product_word_after_a_negation_is_still_searched(facets: FacetIndex, message: str, kept: str):
    r = parse_rules(message, facets)
    assert kept in r.query
    assert kept not in r.excluded


@pytest.mark.parametrize(
    "message", ["有没有别的", "特别便宜的", "非常好看的大衣", "No, show me cheaper ones", "区别大吗"]
)
def test_words_that_only_look_like_negations(message: str):
    assert parse_rules(message, previous=JEANS).excluded == []


# -- brands, required attributes, category --------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "brands"),
    [
        ("有没有自然堂的面霜", ["自然堂"]),
        ("CHANDO 爽肤水", ["CHANDO"]),
        ("levi's jeans", ["Levi's"]),
        ("Timberland boots", ["Timberland"]),
        ("加绒牛仔裤", []),  # an attribute, though the NER brand lexicon lists it
        ("200左右的牛仔裤", []),
    ],
)
def test_catalog_brands(facets: FacetIndex, message: str, brands: list[str]):
    assert parse_rules(message, facets).brands == brands


def test_lexicon_brands_without_a_catalog_and_their_exclusion():
    assert parse_rules("欧莱雅的面霜").brands == ["欧莱雅"]
    assert parse_rules("不要雅诗兰黛").exclude_brands == ["雅诗兰黛"]
    assert parse_rules("加绒牛仔裤").brands == []  # two-character lexicon "brands" are often plain words
    assert parse_rules("买个泡沫板").brands == []  # named like a product, not a maker


@pytest.mark.parametrize(
    ("message", "required"),
    [
        ("高腰修身加绒牛仔裤", ["高腰", "修身", "加绒"]),
        ("女士羊毛大衣", ["女士", "羊毛"]),
        ("牛仔裤男", ["男"]),
        ("waterproof boots for kids", ["waterproof", "kids"]),
        ("navy wool coat", ["navy", "wool"]),
        ("xl码 大衣", ["xl"]),
    ],
)
def test_required_attributes(facets: FacetIndex, message: str, required: list[str]):
    r = parse_rules(message, facets)
    assert r.required == required
    assert all(v in r.query for v in required)  # the must-haves stay in the search text


@pytest.mark.parametrize(
    ("message", "category"),
    [
        ("牛仔裤女", "服饰 > 女装 > 牛仔裤"),
        ("男士牛仔裤", "服饰 > 男装 > 牛仔裤"),
        ("牛仔裤", "牛仔裤"),  # both paths fit: the level name, which the filter matches in either
        ("女装大衣", "服饰 > 女装 > 大衣"),
        ("men's coat under $150", "Clothing > Men > Coats"),
        ("保湿面霜", "美妆 > 面部护理 > 面霜"),
        ("羽绒服", "羽绒服"),  # not in this catalog: the product word of the shipped lexicon
        ("便宜点", None),
    ],
)
def test_category(facets: FacetIndex, message: str, category: str | None):
    assert parse_rules(message, facets).category == category


def test_a_modifier_that_is_also_a_category_stays_a_modifier(facets: FacetIndex):
    r = parse_rules("儿童牛仔裤", facets)
    assert (r.category, r.required) == ("牛仔裤", ["儿童"])
    r = parse_rules("儿童的鞋子", facets)
    assert r.category != "母婴玩具 > 儿童" and r.required == ["儿童"]


def test_category_word_without_a_catalog():
    assert parse_rules("我想要一件羽绒服").category == "羽绒服"
    assert parse_rules("帮我找牛仔裤").category == "牛仔裤"


# -- language and query ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "language"),
    [("牛仔裤", "zh"), ("iPhone 手机壳", "zh"), ("hiking boots", "en"), ("", "zh"), ("123", "en")],
)
def test_language(message: str, language: str):
    assert parse_rules(message).language == (language if message else "en")


@pytest.mark.parametrize(
    ("message", "query"),
    [
        ("我想要一件女士羊毛大衣，200以内", "女士羊毛大衣"),
        ("帮我找一下高腰的牛仔裤", "高腰 牛仔裤"),
        ("有没有自然堂的面霜", "自然堂 面霜"),
        ("推荐一下适合油皮的洗面奶吧", "洗面奶"),  # the skin type is a must-have (油皮|油性|控油), not query text
        ("please show me waterproof hiking boots", "waterproof hiking boots"),
        ("I'm looking for a men's coat", "men's coat"),
        ("find me some running shoes under 50", "running shoes"),
        ("美的空调 3000以内", "美的空调"),
    ],
)
def test_query_keeps_product_words_and_drops_the_rest(facets: FacetIndex, message: str, query: str):
    assert parse_rules(message, facets).query == query


def test_query_is_never_empty_when_a_product_is_named(facets: FacetIndex):
    for message in ("牛仔裤", "大衣?", "有没有面霜", "the boots", "羽绒服吧"):
        r = parse_rules(message, facets)
        assert r.query, message


# -- relation to the conversation -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("message", "shown", "relation", "references"),
    [
        ("第二个", 5, Relation.pick, [2]),
        ("第2个详细说说", 5, Relation.pick, [2]),
        ("第二款怎么样", 5, Relation.pick, [2]),
        ("the second one", 5, Relation.pick, [2]),
        ("tell me more about the 3rd", 5, Relation.pick, [3]),
        ("#2", 5, Relation.pick, [2]),
        ("number 4 please", 5, Relation.pick, [4]),
        ("最后一个", 4, Relation.pick, [4]),
        ("the last one", 3, Relation.pick, [3]),
        ("倒数第二个", 5, Relation.pick, [4]),
        ("那个详细说说", 3, Relation.pick, []),
        ("这款怎么样", 1, Relation.pick, [1]),
        ("tell me more", 1, Relation.pick, [1]),
        ("第九个", 5, Relation.pick, []),  # past the end: nothing to pick, the caller says so
        ("比较1和3", 5, Relation.compare, [1, 3]),
        ("对比第一个和第三个", 5, Relation.compare, [1, 3]),
        ("第一个和第二个哪个好", 5, Relation.compare, [1, 2]),
        ("前两个对比一下", 5, Relation.compare, [1, 2]),
        ("compare 1 and 3", 5, Relation.compare, [1, 3]),
        ("1 vs 3", 5, Relation.compare, [1, 3]),
        ("which is better, 1 or 2", 5, Relation.compare, [1, 2]),
        ("compare the first and the third", 5, Relation.compare, [1, 3]),
    ],
)
def test_references_to_shown_products(message: str, shown: int, relation: Relation, references: list[int]):
    r = parse_rules(message, previous=JEANS, shown_count=shown)
    assert r.relation is relation
    assert r.references == references
    assert not any(ch.isdigit() for ch in r.query)


@pytest.mark.parametrize(
    ("message", "previous", "relation"),
    [
        ("不要黑色的", JEANS, Relation.refine),
        ("200以内", JEANS, Relation.refine),
        ("高腰的", JEANS, Relation.refine),
        ("牛仔裤要高腰的", JEANS, Relation.refine),  # same product, more constraints
        ("换成男款", JEANS, Relation.replace),
        ("改成黑色", JEANS, Relation.replace),
        ("换个浅蓝色的", JEANS, Relation.replace),
        ("那蓝色的呢", JEANS, Relation.replace),
        ("大衣", JEANS, Relation.new),
        ("有没有面霜", JEANS, Relation.new),
        ("under $80", BOOTS, Relation.refine),
        ("in black", BOOTS, Relation.refine),
        ("something cheaper", BOOTS, Relation.refine),
        ("bigger ones", BOOTS, Relation.refine),
        ("red instead", BOOTS, Relation.replace),
        ("switch to black", BOOTS, Relation.replace),
        ("change to women", BOOTS, Relation.replace),
        ("what about navy?", BOOTS, Relation.replace),
        ("show me wool coats", BOOTS, Relation.new),
        ("tents", BOOTS, Relation.new),
        ("牛仔裤", None, Relation.new),
        ("不要黑色的", None, Relation.new),  # nothing to refine yet
    ],
)
def test_follow_ups(facets: FacetIndex, message: str, previous: ShoppingIntent | None, relation: Relation):
    assert parse_rules(message, facets, previous=previous, shown_count=5).relation is relation


@pytest.mark.parametrize("message", ["ipad第9代", "first time buyer here, any boots?", "2个装的面膜"])
def test_numbers_in_product_talk_are_no_references(message: str):
    r = parse_rules(message, previous=JEANS, shown_count=5)
    assert r.relation is not Relation.pick and r.references == []


def test_a_replace_carries_the_new_value(facets: FacetIndex):
    r = parse_rules("换成男款", facets, previous=JEANS)
    assert r.required == ["男款"]
    assert facets.facet_group(r.required[0]) == "适用对象"
    r = parse_rules("red instead", facets, previous=BOOTS)
    assert r.required == ["red"] and facets.facet_group("red") == "颜色"


def test_follow_up_in_the_dialogue_example_catalog_shape(facets: FacetIndex):
    first = parse_rules("men's coat under $150", facets)
    assert (first.category, first.max_price, first.currency) == ("Clothing > Men > Coats", 150, "USD")
    second = parse_rules("wool only, budget doesn't matter", facets, previous=first, shown_count=1)
    assert second.relation is Relation.refine
    assert second.required == ["wool"]
    assert second.excluded == [] and second.query == "wool"


# -- robustness -----------------------------------------------------------------------------------
def test_never_raises_on_random_input(facets: FacetIndex):
    rng = random.Random(20261124)
    pieces = [
        "不要", "别", "非", "除了", "没有", "的", "第", "个", "比较", "和", "换成", "200", "以内", "-", "到", "$", "¥",
        "元", "under", "not", "no", "between", "and", "compare", "#", "最后", "the", "second", "牛仔裤", "女",
        "黑色", "自然堂", " ", ",", "，", "左右", "以上", "k", "万", "两百", "倒数", "前", "vs", "?", "instead",
        "\x00", "'s", "便宜", "最", "🙂", "\u200b", "①", "１２３", "ｔｈｅ", "ß", "İ", "\n", "\\", "(", "[",
    ]  # fmt: skip
    alphabet = [chr(c) for c in [*range(32, 127), *range(0x4E00, 0x4E40), 0x3000, 0xFF01, 0xFFE5, 0x1F600, 0xFB01]]
    for _ in range(1500):
        if rng.random() < 0.6:
            message = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        else:
            message = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for index in (None, facets):
            shown = rng.randint(0, 6)
            r = parse_rules(message, index, previous=rng.choice([None, JEANS, BOOTS]), shown_count=shown)
            assert isinstance(r, ShoppingIntent)
            assert r.min_price is None or r.min_price >= 0
            assert all(1 <= n <= (shown or 50) for n in r.references)


@pytest.mark.parametrize("message", [None, 42, "", "   ", "x" * 20000, "不要" * 400, "第" * 300, "$" * 100 + "9" * 400])
def test_odd_inputs_give_an_intent(message):  # type: ignore[no-untyped-def]
    r = parse_rules(message, shown_count=-3)
    assert isinstance(r, ShoppingIntent)
    assert r.max_price is None or r.max_price <= 1e9


@pytest.mark.unit
@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("不限品牌了，500以内的精华", {"clear_brands": True, "max_price": 500.0}),
        ("太贵了，换个牌子，1000以内", {"avoid_shown_brands": True, "max_price": 1000.0}),
        ("预算放宽到2000", {"max_price": 2000.0}),
        ("budget up to 150", {"max_price": 150.0}),
        ("budget doesn't matter", {"clear_price": True}),
        ("non-leather hiking boots", {"excluded": ["leather"]}),
    ],
)
def test_constraint_edits_said_in_words(message, expected):
    from assistant.intent import ShoppingIntent
    from assistant.rules import parse_rules

    got = parse_rules(message, previous=ShoppingIntent(query="x"), shown_count=3).model_dump()
    for key, value in expected.items():
        if key == "excluded":
            assert got[key][:1] == value or value[0] in got[key][0], (message, got[key])
        else:
            assert got[key] == value, (message, key, got[key])


@pytest.mark.unit
def test_a_follow_up_that_only_adds_a_property_refines():
    from assistant.intent import Relation, ShoppingIntent
    from assistant.rules import parse_rules

    got = parse_rules("with noise cancelling", previous=ShoppingIntent(query="wireless earbuds"), shown_count=3)
    assert got.relation == Relation.refine


@pytest.mark.parametrize(
    ("message", "occasion", "query", "required"),
    [
        ("给我妈买个生日礼物 300左右", "妈 生日 礼物", "", []),
        ("她皮肤比较干，平时喜欢护肤", "", "护肤品", ["干皮"]),
        ("送男朋友的生日礼物 500以内", "男朋友 生日 礼物", "", []),
        ("a bag for my girlfriend under $100", "girlfriend", "bag", []),
        ("looking for a dress for a summer wedding", "summer wedding", "dress", []),
        ("my mom loves cooking, looking for a gift for her under $40", "mom gift", "kitchen", []),
        ("waterproof boots for kids", "", "waterproof boots kids", ["kids"]),
    ],
)
def test_recipient_occasion_and_interest_leave_the_query(message: str, occasion: str, query: str, required: list[str]):
    """Who it is for is context (Need.occasion), never search text; an interest names the
    product ("loves cooking" -> kitchen); a skin type is a must-have."""
    intent = parse_rules(message)
    assert intent.occasion == occasion
    assert intent.query == query
    for r in required:
        assert r in intent.required

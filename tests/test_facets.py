"""FacetIndex: the catalog's own facet vocabulary, counted from real products.

Small catalogs are built from a handful of Products per test; one module-scoped test reads the
bundled demo catalog and checks that every expansion it suggests really exists there with the
count it reports.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from assistant.facets import FacetIndex, PhraseMatcher, builtin_group, phrase_key, says, scan_builtins
from shopassist.models import Product

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[1] / "shopassist" / "resources" / "demo_catalog.jsonl"


def _p(pid: str, title: str, category: str, brand: str | None = None, **attributes: str | list[str]) -> Product:
    return Product(id=pid, title=title, category=category, brand=brand, attributes=attributes)


JEANS = [
    _p(
        "j1",
        "高腰修身牛仔裤女 黑色 弹力小脚裤",
        "服饰 > 女装 > 牛仔裤",
        "Levi's/李维斯",
        颜色="黑色",
        腰型="高腰",
        版型="修身",
    ),
    _p("j2", "破洞牛仔裤女 浅蓝色 宽松直筒", "服饰 > 女装 > 牛仔裤", "优衣库", 颜色="浅蓝色", 风格="破洞"),
    _p("j3", "加绒加厚牛仔裤女 冬季保暖 高腰", "服饰 > 女装 > 牛仔裤", "森马", 颜色="蓝色", 腰型="高腰", 厚度="加绒"),
    _p("j4", "男士直筒牛仔裤 深蓝 宽松", "服饰 > 男装 > 牛仔裤", "森马", 颜色="深蓝色"),
    _p("c1", "女士羊毛大衣 中长款 驼色", "服饰 > 女装 > 大衣", "例牌A", 颜色="驼色", 面料="羊毛"),
    _p("c2", "女士羊毛大衣 短款 黑色", "服饰 > 女装 > 大衣", "例牌B", 颜色="黑色", 面料="羊毛"),
    _p("s1", "自然堂雪域精粹保湿面霜 50g", "美妆 > 面部护理 > 面霜", "CHANDO/自然堂", 功效="保湿"),
    _p("s2", "护肤套装 保湿 水乳", "美妆 > 护肤/彩妆套装", "CHANDO/自然堂", 功效="保湿"),
    _p("e1", "Men's Wool Overcoat, Navy", "Clothing > Men > Coats", "Example Co", color="navy", material="wool"),
    _p("e2", "Men's Puffer Jacket, Black", "Clothing > Men > Coats", "Example Co", color="black", material="polyester"),
]


@pytest.fixture(scope="module")
def index() -> FacetIndex:
    return FacetIndex.from_products(JEANS)


def _values(facets) -> list[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    return [(f.name, f.value, f.count) for f in facets]


# -- matching -------------------------------------------------------------------------------------
def test_phrase_keys_fold_case_width_possessives_and_plurals():
    assert phrase_key("Men's Coats") == phrase_key("men coat")
    assert phrase_key("ＢＯＯＴＳ") == phrase_key("boot")
    assert phrase_key("Dresses") == phrase_key("dress")
    assert phrase_key("牛仔 裤") == phrase_key("牛仔裤")
    assert says("men's coat under $150", "Coats")
    assert not says("shredded cheese", "red")


def test_phrase_matcher_prefers_the_longest_phrase_and_counts_references():
    m = PhraseMatcher(["牛仔", "牛仔裤", "高腰"])
    tokens = [t for t, _, _ in (("高", 0, 1), ("腰", 1, 2), ("牛", 2, 3), ("仔", 3, 4), ("裤", 4, 5))]
    assert m.find(tokens) == [(0, 2), (2, 5)]
    m.add("牛仔裤")
    m.discard("牛仔裤")
    assert m.find(tokens) == [(0, 2), (2, 5)]  # still one reference left
    m.discard("牛仔裤")
    assert m.find(tokens) == [(0, 2), (2, 4)]


# -- expansions -----------------------------------------------------------------------------------
def test_expansions_list_attribute_values_of_the_category_with_counts(index: FacetIndex):
    facets = index.expansions("牛仔裤", "牛仔裤", set())
    values = _values(facets)
    assert values[0] == ("腰型", "高腰", 2)  # the most common refinement comes first
    assert ("厚度", "加绒", 1) in values
    assert all(f.name != "title" for f in facets[:5])  # attributes before title words
    # the jeans of both audiences are counted under the level name
    assert index.category_size("牛仔裤") == 4
    assert index.category_size("服饰 > 女装 > 牛仔裤") == 3


def test_expansions_skip_what_the_query_says_and_what_is_excluded(index: FacetIndex):
    values = [f.value for f in index.expansions("牛仔裤", "高腰牛仔裤", {"破洞"})]
    assert "高腰" not in values
    assert "破洞" not in values
    assert "修身" in values


def test_expansions_accept_a_path_a_level_or_only_the_query(index: FacetIndex):
    by_path = _values(index.expansions("服饰 > 女装 > 牛仔裤", "", set()))
    assert ("腰型", "高腰", 2) in by_path
    assert all(v != "深蓝色" for _, v, _ in by_path)  # men's jeans are not in the women's path
    from_query = _values(index.expansions(None, "女士大衣", set()))
    assert ("面料", "羊毛", 2) in from_query
    assert index.expansions("帐篷", "帐篷", set()) == []  # no such category: no noise from elsewhere


def test_title_words_fill_in_for_sparse_attributes_and_need_two_products(index: FacetIndex):
    words = {f.value: f.count for f in index.expansions("牛仔裤", "牛仔裤", set(), limit=30) if f.name == "title"}
    assert words.get("宽松") == 2  # in two titles, in no attribute
    assert "冬季" not in words  # one product only
    assert "牛仔裤" not in words and "牛仔" not in words  # the category word itself is no refinement


def test_expansions_respect_the_limit_and_cap_one_attribute(index: FacetIndex):
    facets = index.expansions("牛仔裤", "", set(), limit=30)
    colours = [f for f in facets if f.name == "颜色"]
    assert len(colours) == 3  # four colours exist; a list of only colours helps nobody
    assert len(index.expansions("牛仔裤", "", set(), limit=2)) == 2


def test_rare_attribute_values_come_after_frequent_title_words():
    creams = [_p(str(i), f"保湿面霜 {i}号", "美妆 > 面霜", 容量="50ml") for i in range(68)]
    creams += [_p(f"s{i}", "面霜 防晒", "美妆 > 面霜", SPF="SPF15") for i in range(2)]
    facets = _values(FacetIndex.from_products(creams).expansions("面霜", "", set()))
    assert [v for _, v, _ in facets] == ["50ml", "保湿", "防晒", "SPF15"]


def test_an_audience_that_contradicts_the_query_is_not_suggested():
    products = [
        _p("a", "女士大衣 长款", "服饰 > 大衣"),
        _p("b", "女士大衣 短款 修身", "服饰 > 大衣"),
        _p("c", "男大衣 修身", "服饰 > 大衣", 适用对象="男"),
        _p("d", "男大衣 长款", "服饰 > 大衣", 适用对象="男"),
    ]
    idx = FacetIndex.from_products(products)
    assert "男" not in [f.value for f in idx.expansions("大衣", "女士大衣", set())]
    assert "男" in [f.value for f in idx.expansions("大衣", "大衣", set())]


def test_identifiers_logistics_and_placeholders_are_not_facets():
    products = [
        _p(str(i), f"Phone case model {i}", "Electronics > Cases", sku=f"SKU-{i}", warranty="1 year", finish="matte")
        for i in range(10)
    ] + [_p("x", "Phone case clear", "Electronics > Cases", finish="其他")]
    idx = FacetIndex.from_products(products)
    values = _values(idx.expansions("Cases", "", set()))
    assert values[0] == ("finish", "matte", 10)
    assert all(name not in ("sku", "warranty") for name, _, _ in values)
    assert all(v != "其他" for _, v, _ in values)


def test_yes_no_attributes_become_their_name():
    idx = FacetIndex.from_products(
        [
            _p("a", "牛仔裤 A", "服饰 > 牛仔裤", 加绒="是", 是否弹力="是"),
            _p("b", "牛仔裤 B", "服饰 > 牛仔裤", 加绒="否"),
        ]
    )
    values = _values(idx.expansions("牛仔裤", "", set()))
    assert ("加绒", "加绒", 1) in values
    assert ("是否弹力", "弹力", 1) in values


# -- live changes ---------------------------------------------------------------------------------
def test_update_and_remove_change_the_counts_at_once():
    idx = FacetIndex.from_products(JEANS[:3])
    assert ("腰型", "高腰", 2) in _values(idx.expansions("牛仔裤", "", set()))
    idx.update(_p("j9", "高腰牛仔裤 新款", "服饰 > 女装 > 牛仔裤", "新牌子", 腰型="高腰"))
    assert ("腰型", "高腰", 3) in _values(idx.expansions("牛仔裤", "", set()))
    assert idx.is_brand("新牌子")
    idx.remove("j9")
    assert ("腰型", "高腰", 2) in _values(idx.expansions("牛仔裤", "", set()))
    assert not idx.is_brand("新牌子")
    # an update of an existing id replaces it rather than counting it twice
    idx.update(_p("j1", "低腰牛仔裤", "服饰 > 女装 > 牛仔裤", 腰型="低腰"))
    values = _values(idx.expansions("牛仔裤", "", set()))
    assert ("腰型", "高腰", 1) in values and ("腰型", "低腰", 1) in values
    assert len(idx) == 3
    assert idx.remove("nope") is False


def test_removing_the_last_product_of_a_category_forgets_it():
    idx = FacetIndex.from_products(JEANS)
    for p in JEANS:
        if "大衣" in p.category:
            idx.remove(p)
    assert idx.categories_for("女士大衣") == []
    assert idx.expansions("大衣", "", set()) == []
    assert "服饰 > 女装 > 大衣" not in idx.category_paths()


# -- categories -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("牛仔裤女", "服饰 > 女装 > 牛仔裤"),  # the audience word picks the women's path
        ("男士牛仔裤", "服饰 > 男装 > 牛仔裤"),
        ("女装大衣", "服饰 > 女装 > 大衣"),  # deeper path naming more of the text wins
        ("men's coat under $150", "Clothing > Men > Coats"),
        ("护肤套装", "美妆 > 护肤/彩妆套装"),  # '/'-separated level names are names too
        ("服饰 > 男装 > 牛仔裤", "服饰 > 男装 > 牛仔裤"),  # a path is its own answer
    ],
)
def test_categories_for_ranks_paths_named_in_the_text(index: FacetIndex, text: str, first: str):
    assert index.categories_for(text)[0] == first


def test_best_category_falls_back_to_the_level_when_paths_tie_or_contradict(index: FacetIndex):
    assert index.best_category("牛仔裤") == "牛仔裤"  # 女装 and 男装 jeans tie
    assert index.best_category("women coats") == "Coats"  # only the men's path exists
    assert index.best_category("帐篷") is None


# -- vocabularies and groups ----------------------------------------------------------------------
def test_vocabularies_come_from_the_catalog(index: FacetIndex):
    names = index.brand_names()
    assert {"CHANDO", "自然堂", "Levi's", "李维斯", "森马"} <= set(names)
    assert index.brands()["森马"] == 2
    assert {"牛仔裤", "大衣", "面霜", "Coats"} <= set(index.category_levels())
    assert index.attribute_values()["高腰"] == ["腰型"]
    assert "驼色" in index.colour_words() and "navy" in index.colour_words()
    assert index.audience_words()["女士"] == "f"


def test_brands_that_are_everyday_words_are_not_recognised_in_text():
    idx = FacetIndex.from_products(
        [_p("a", "左右沙发 真皮", "家具 > 沙发", "左右"), _p("b", "美的空调 1.5匹", "家电 > 空调", "美的")]
    )
    assert idx.brands()["左右"] == 1  # still a facet of its products
    assert not idx.is_brand("左右")  # but "200左右" is a price, not the sofa brand
    kinds = {m.value: m.kind for m in idx.scan("美的空调")}
    assert kinds["美的"] == "brand"
    assert "美的" not in {m.value for m in idx.scan("很美的裙子")}  # an adverb makes it a word


def test_scan_prefers_word_boundaries():
    idx = FacetIndex.from_products([_p("a", "清洁面膜", "美妆 > 面膜"), _p("b", "洗面奶 洁面", "美妆 > 洁面")])
    assert idx.best_category("黑头清洁面膜") == "美妆 > 面膜"


@pytest.mark.parametrize(
    ("value", "group"),
    [
        ("黑色", "颜色"),
        ("red", "颜色"),
        ("雾霾蓝色", "颜色"),  # any short word ending in 色
        ("男", "适用对象"),
        ("women", "适用对象"),
        ("XL", "尺码"),
        ("38码", "尺码"),
        ("羊毛", "材质"),
        ("leather", "材质"),
        ("高腰", "腰型"),  # from the catalog
        ("navy", "颜色"),  # the catalog's "color" attribute, canonicalised
        ("自然堂", "品牌"),
        ("量子纠缠", None),
        ("", None),
    ],
)
def test_facet_group_tells_which_constraint_a_value_belongs_to(index: FacetIndex, value: str, group: str | None):
    assert index.facet_group(value) == group


def test_catalog_values_and_builtin_words_compete_on_length():
    idx = FacetIndex.from_products(
        [_p("a", "大衣", "服饰 > 大衣", 适用性别="女", 颜色="雾霾蓝色"), _p("b", "大衣", "服饰 > 大衣", 颜色="蓝色")]
    )
    found = {m.text: m.kind for m in idx.scan("女士雾霾蓝色大衣")}
    assert found == {"女士": "audience", "雾霾蓝色": "value", "大衣": "category"}


def test_builtin_groups_work_without_a_catalog():
    assert builtin_group("浅蓝色") == "颜色"
    assert [m.kind for m in scan_builtins("女士羊毛大衣 xl")] == ["audience", "material", "size"]


# -- the real demo catalog ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo() -> tuple[FacetIndex, list[Product]]:
    products = [Product.model_validate(json.loads(line)) for line in DEMO.read_text(encoding="utf-8").splitlines()]
    return FacetIndex.from_products(products), products


@pytest.mark.slow
@pytest.mark.parametrize("word", ["牛仔裤", "面霜"])
def test_demo_expansions_exist_in_the_catalog_with_the_counts_reported(demo, word: str):
    index, products = demo
    facets = index.expansions(word, word, set())
    assert len(facets) >= 6
    in_category = [p for p in products if word in p.category_levels]
    for f in facets:
        if f.name == "title":
            titles = sum(f.value in p.title.casefold() for p in in_category)
            assert 2 <= f.count <= titles  # jieba words are a subset of substrings
        else:
            real = Counter(
                v
                for p in in_category
                for v in (lambda x: x if isinstance(x, list) else [x])(p.attributes.get(f.name, []))
            )
            assert real[f.value] == f.count, f
    counts = [f.count for f in facets if f.name != "title"]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.slow
def test_demo_catalog_jeans_start_with_high_waist(demo):
    index, _ = demo
    facets = index.expansions("牛仔裤", "牛仔裤女", set())
    assert (facets[0].name, facets[0].value) == ("腰型", "高腰")
    assert index.categories_for("牛仔裤女")[0] == "大服饰 > 牛仔裤"


def test_a_lexicon_brand_the_catalog_uses_as_a_title_word_is_no_brand():
    """The shipped brand lexicon lists 大容量; in a shop whose titles say 大容量 it describes the
    product, and read as a brand it emptied "保温杯 大容量 不锈钢" ("other brands have similar")."""
    from assistant.rules import lexicon_brands, parse_rules

    assert "大容量" in lexicon_brands()
    titles = ["大容量不锈钢保温杯", "大容量运动水杯", "大容量焖烧杯", "儿童吸管杯"]
    facets = FacetIndex.from_products(
        Product(id=f"c{i}", title=t, brand="象印", category="大百货 > 保温杯") for i, t in enumerate(titles)
    )
    assert facets.title_word_count("大容量") == 3
    intent = parse_rules("保温杯 大容量 不锈钢", facets)
    assert "大容量" not in intent.brands
    # without the catalog saying otherwise, the lexicon still names it a brand
    assert "大容量" in parse_rules("大容量 保温杯").brands

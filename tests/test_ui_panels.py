"""The chat page's panels as pure functions: chips that tell the truth, product cards with a
placeholder that never shows a title's first characters, the cart, the comparison table, the
landing picks, and the page's language."""

from __future__ import annotations

import pytest

from shopassist.models import Product
from ui.labels import EXAMPLES, message_language, t
from ui.panels import (
    card_html,
    cart_add,
    cart_header_html,
    cart_line_html,
    cart_remove,
    cart_totals,
    category_label,
    chips_of,
    compare_html,
    dedupe,
    expansion_chips,
    fallback_picks,
    parse_compare,
    round_price,
)

pytestmark = pytest.mark.unit


# -- chips ------------------------------------------------------------------------------------------


def test_spellings_of_one_value_make_one_chip_whose_edit_removes_them_all():
    chips = chips_of({"required": ["女", "女士", "可躺", "可躺下的", "高腰"]})
    labels = [label for label, _ in chips]
    assert labels.count("✓ 女士 ✕") == 1 and not any(x.startswith("✓ 女 ") for x in labels)
    assert "✓ 可躺 ✕" in labels and not any("可躺下的" in x for x in labels)
    edits = dict(chips)
    assert edits["✓ 女士 ✕"] == {"remove": ["女", "女士"]}
    assert edits["✓ 可躺 ✕"] == {"remove": ["可躺", "可躺下的"]}
    assert dedupe(["Waterproof", "waterproof", "black"]) == [["Waterproof", "waterproof"], ["black"]]


def test_audience_words_and_the_category_get_no_not_toggle():
    chips = chips_of({"category": "Clothing > Men > Shoes", "required": ["men's", "shoes", "leather"]}, "en")
    labels = [label for label, _ in chips]
    toggles = [label for label, change in chips if "toggle" in change]
    assert toggles == ["⇄ make it: not leather"]  # not "not men's", not "not shoes"
    assert "✓ men's ✕" in labels and "Type: Shoes ✕" in labels
    zh = chips_of({"required": ["女", "加绒"]}, "zh")
    assert [label for label, change in zh if "toggle" in change] == ["⇄ 改为不要 加绒"]


def test_the_category_chip_shows_the_last_level_without_audience_words():
    assert category_label("Women / boots / tpe") == "boots"
    assert category_label("Accessories > Watches > Men") == "Watches"
    assert category_label("大服饰 > 羽绒服") == "羽绒服"
    assert dict(chips_of({"category": "Shoes > Women / boots / tpe"}, "zh"))["品类：boots ✕"] == {
        "clear_category": True
    }


def test_price_bounds_are_rounded_and_worded_in_the_language():
    assert round_price(89.81) == "90" and round_price(1000.0) == "1000" and round_price(9.5) == "9.50"
    assert [label for label, _ in chips_of({"max_price": 89.81}, "zh")] == ["90元以内 ✕"]
    assert [label for label, _ in chips_of({"max_price": 89.81, "currency": "USD"}, "en")] == ["under $90 ✕"]
    assert [label for label, _ in chips_of({"min_price": 20, "max_price": 49.99, "currency": "USD"}, "en")] == [
        "$20–$50 ✕"
    ]
    assert [label for label, _ in chips_of({"min_price": 200.0}, "zh")] == ["200元以上 ✕"]
    assert dict(chips_of({"max_price": 89.81}, "zh"))["90元以内 ✕"] == {"clear_price": True}


def test_chips_speak_one_language():
    need = {"category": "美妆 > 面霜", "excluded": ["酒精"], "brands": ["Olay"], "exclude_brands": ["X"]}
    zh = [label for label, _ in chips_of(need, "zh")]
    en = [label for label, _ in chips_of(need, "en")]
    assert zh == ["品类：面霜 ✕", "不要 酒精 ✕", "品牌：Olay ✕", "不要品牌：X ✕"]
    assert en == ["Type: 面霜 ✕", "not 酒精 ✕", "Brand: Olay ✕", "Not brand: X ✕"]


def test_expansion_chips_offer_only_values_not_already_in_the_need():
    extra = expansion_chips(
        [{"value": "补水", "count": 12}, {"value": "保湿", "count": 9}, {"value": "酒精", "count": 3}],
        {"required": ["补水霜"], "excluded": ["酒精"]},
    )
    assert extra == [("+ 保湿", {"toggle": ["保湿"]})]


# -- cards ------------------------------------------------------------------------------------------


def test_a_card_without_an_image_shows_its_category_not_the_titles_first_characters():
    for title in ("【每日秒杀】羽绒服", "[Sale] boots", "2017新款羽绒服"):
        html = card_html({"id": "a", "title": title, "category": "大服饰 > 羽绒服", "price": 9.9, "currency": "CNY"})
        tile = html.split('<span class="sa-tile">', 1)[1].split("</span>", 1)[0]
        assert tile == "羽绒服" and "<img" not in html


def test_a_card_image_is_a_css_background_over_the_tile_and_never_a_script():
    html = card_html(
        {"id": "a", "title": "t", "category": "Electronics > Smartphones", "image_url": "https://x.test/a.png"}
    )
    assert 'class="sa-tile">Smartphones<' in html and "background-image: url(&quot;https://x.test/a.png&quot;)" in html
    assert "<img" not in html and "onerror" not in html
    # a URL that could end the CSS string or declaration is dropped, leaving the tile
    for bad in ('https://x.test/a.png");color:red', "https://x.test/a(1).png", "javascript:alert(1)", "//x.test/a"):
        shown = card_html({"id": "a", "title": "t", "image_url": bad})
        assert "sa-photo" not in shown and "alert" not in shown and "color:red" not in shown


def test_a_card_shows_price_rating_stock_and_reasons_as_plain_text():
    html = card_html(
        {
            "id": "p",
            "rank": 2,
            "title": "Phone",
            "price": 199.99,
            "currency": "USD",
            "rating": 4.54,
            "stock": 3,
            "reasons": ["<b>cheap</b>", "well rated"],
        },
        "en",
    )
    assert "$199.99" in html and "★ 4.5" in html and "Only 3 left" in html
    assert "Why: &lt;b&gt;cheap&lt;/b&gt; · well rated" in html and "<b>" not in html
    zh = card_html({"id": "p", "title": "面霜", "price": 39.0, "currency": "CNY", "stock": 50}, "zh")
    assert "¥39" in zh and "有货" in zh and "★" not in zh  # no rating, no stars


# -- cart -------------------------------------------------------------------------------------------


def test_the_cart_counts_quantities_totals_per_currency_and_removes_a_line():
    cart: list[dict] = []
    cart = cart_add(cart, {"id": "a", "title": "Boots", "price": 59.99, "currency": "USD"})
    cart = cart_add(cart, {"id": "a", "title": "Boots", "price": 59.99, "currency": "USD"})
    cart = cart_add(cart, {"id": "b", "title": "面霜", "price": 39.0, "currency": "CNY"})
    cart = cart_add(cart, {"id": "c", "title": "no price", "price": None, "currency": "CNY"})
    assert [(x["id"], x["qty"]) for x in cart] == [("a", 2), ("b", 1), ("c", 1)]
    assert cart_totals(cart) == {"USD": 119.98, "CNY": 39.0}  # never added across currencies
    head = cart_header_html(cart, "zh")
    assert "购物车 (4)" in head and "合计：¥39 + $119.98" in head
    after = cart_remove(cart, "a")
    assert [x["id"] for x in after] == ["b", "c"] and cart_totals(after) == {"CNY": 39.0}
    assert [x["id"] for x in cart] == ["a", "b", "c"]  # the old list is not changed
    assert "Your cart is empty" in cart_header_html([], "en")


def test_a_cart_line_is_escaped():
    line = cart_line_html({"id": 'x"1', "title": "<script>x</script>", "price": 1.0, "currency": "CNY", "qty": 2})
    assert (
        "<script>" not in line and "&lt;script&gt;" in line and "× 2" in line and 'data-product-id="x&quot;1"' in line
    )


# -- comparison -------------------------------------------------------------------------------------

REPLY = "\n".join(
    [
        "| | [1] | [2] |",
        "|---|---|---|",
        "| 价格 | 39 CNY | 290 CNY |",
        "| 颜色 | <img src=x onerror=alert(1)> | 白 |",
        "结论：[1] 更便宜。",
    ]
)


def test_a_comparison_reply_becomes_an_escaped_table_with_its_verdict():
    table = parse_compare(REPLY)
    assert table is not None
    assert table["header"] == ["", "[1]", "[2]"] and table["rows"][0] == ["价格", "39 CNY", "290 CNY"]
    assert table["after"] == "结论：[1] 更便宜。"
    html = compare_html(table, [{"rank": 1, "title": "Olay <b>面霜</b>"}, {"rank": 2, "title": "B"}], "zh")
    assert "<table" in html and "<td>39 CNY</td>" in html and "结论：[1] 更便宜。" in html
    assert "<img" not in html and "&lt;img src=x" in html and "<b>" not in html and "Olay &lt;b&gt;" in html


def test_text_without_a_table_is_no_comparison_and_an_empty_verdict_is_dropped():
    assert parse_compare("为你找到这些：\n1. a\n2. b") is None
    assert parse_compare("| a | b |\n| c | d |\n| e | f |") is None  # no separator line: not a table
    empty = parse_compare("| | [1] | [2] |\n|---|---|---|\n| 库存 | 3 | 4 |\n结论：。")
    assert empty is not None and empty["after"] == ""


# -- landing ----------------------------------------------------------------------------------------


def test_landing_picks_span_top_categories_in_stock_best_rated_first():
    def p(i: str, cat: str, rating: float | None, stock: int, lang: str = "en") -> Product:
        return Product(
            id=i, title=i, category=cat, price=10.0, currency="USD", rating=rating, stock=stock, language=lang
        )

    products = [
        p("a1", "A > x", 3.0, 5),
        p("a2", "A > y", 4.9, 5),
        p("a3", "A > z", 4.0, 0),  # sold out
        p("b1", "B > x", 4.0, 2),
        p("c1", "C > x", None, 9),
        p("z1", "中文 > x", 5.0, 9, "zh"),
    ]
    picks = [x.id for x in fallback_picks(products, "en", k=3)]
    assert picks == ["a2", "b1", "c1"]  # one per category, largest category first, best rated in it
    assert [x.id for x in fallback_picks(products, "zh", k=3)] == ["z1"]  # the page's language first
    assert "a3" not in [x.id for x in fallback_picks(products, "en", k=10)]


# -- language ---------------------------------------------------------------------------------------


def test_the_page_follows_the_language_the_shopper_writes():
    assert message_language("女士羽绒服 1000以内", "en") == "zh"
    assert message_language("smartphone under $800", "zh") == "en"
    assert message_language("200", "en") == "en" and message_language("200", "zh") == "zh"  # no words: unchanged
    assert t("zh", "send") == "发送" and t("en", "send") == "Send"
    assert t("en", "added", t="「x」") == "Added to cart: 「x」"


def test_every_label_exists_in_both_languages_and_none_is_doubled():
    from ui.labels import LABELS

    assert set(LABELS["zh"]) == set(LABELS["en"])
    for key, text in LABELS["zh"].items():
        assert "/" not in text, key  # no "发送 / Send"
    assert all(message_language(x) == "zh" for x in EXAMPLES["zh"])
    assert all(message_language(x) == "en" for x in EXAMPLES["en"])

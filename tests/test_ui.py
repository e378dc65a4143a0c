"""The chat UI's pieces that decide what a shopper sees: escaped cards, chips that edit the need,
and a per-browser session id. (The full browser run is the Playwright test.)"""

from __future__ import annotations

import pytest

from ui.app import card_html, chips_of, new_view

pytestmark = pytest.mark.unit


def test_cards_escape_everything_a_product_or_model_could_inject():
    html = card_html(
        {
            "id": 'x"1',
            "rank": 1,
            "title": "<script>alert(1)</script>羽绒服",
            "brand": "<b>B</b>",
            "price": 299.0,
            "currency": "CNY",
            "stock": 0,
            "reasons": ["<img src=x onerror=alert(1)>"],
            "image_url": "javascript:alert(1)",
        }
    )
    assert "<script>" not in html and "<img src=x" not in html and "<b>B" not in html
    assert "&lt;script&gt;" in html and "299.00 CNY" in html and "sold out" in html
    assert "javascript:" not in html  # only http(s) images; otherwise a placeholder


def test_chips_cover_the_parsed_need_and_each_carries_its_edit():
    chips = dict(
        chips_of(
            {
                "category": "服饰 > 女装 > 牛仔裤",
                "required": ["高腰"],
                "excluded": ["破洞"],
                "brands": ["Lee"],
                "max_price": 200.0,
            }
        )
    )
    assert chips["类目 牛仔裤 ✕"] == {"clear_category": True}
    assert chips["✓ 高腰 ✕"] == {"remove": ["高腰"]} and chips["⇄ 不要 高腰"] == {"toggle": ["高腰"]}
    assert chips["不要 破洞 ✕"] == {"remove": ["破洞"]} and chips["品牌 Lee ✕"] == {"remove": ["Lee"]}
    assert chips["价格 ≤ 200 ✕"] == {"clear_price": True}


def test_every_browser_session_gets_its_own_id():
    assert new_view()["session"] != new_view()["session"]


def test_a_card_shows_its_gift_group_or_that_it_is_an_alternative_escaped():
    from ui.app import card_html

    grouped = card_html({"id": "x", "title": "t", "price": 1.0, "currency": "CNY", "stock": 1, "group": "<i>香水</i>"})
    assert "sa-group" in grouped and "&lt;i&gt;香水&lt;/i&gt;" in grouped and "<i>" not in grouped
    alternative = card_html({"id": "y", "title": "t", "price": 1.0, "currency": "CNY", "stock": 1, "alternative": True})
    assert "not an exact match" in alternative

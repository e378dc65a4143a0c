import json

import pytest
from pydantic import ValidationError

from shopassist.models import Product, SearchFilters

pytestmark = pytest.mark.unit


def test_product_keeps_unknown_fields_and_normalises():
    p = Product.model_validate(
        {
            "id": 7,
            "title": " 牛仔裤 ",
            "price": "12.5",
            "category": "服饰>女装 >牛仔裤",
            "currency": "rmb",
            "attributes": {"尺码": ["S", 27], "加绒": True},
            "source": {"dataset": "x"},
        }
    )
    assert p.id == "7"
    assert p.title == "牛仔裤"
    assert p.price == 12.5
    assert p.currency == "CNY"
    assert p.category == "服饰 > 女装 > 牛仔裤"
    assert p.attributes == {"尺码": ["S", "27"], "加绒": "是"}
    assert p.language == "zh"
    assert p.record()["source"] == {"dataset": "x"}


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"title": "x"}, "id"),
        ({"id": "1"}, "title"),
        ({"id": "1", "title": "x", "price": -3}, "must not be negative"),
        ({"id": "1", "title": "x", "price": "abc"}, "price"),
        ({"id": "1", "title": "x", "stock": 2.5}, "stock"),
        ({"id": "1", "title": "x", "attributes": ["a"]}, "attributes"),
        ({"id": "1", "title": "x", "attributes": {"a": {"b": 1}}}, "attribute 'a'"),
        ({"id": "1", "title": "x", "currency": "dollars"}, "3-letter"),
        ({"id": "1", "title": 5}, "title"),
        ({"id": True, "title": "x"}, "id"),
        # values the store or the in-memory columns cannot hold
        ({"id": "1", "title": "x", "stock": 10**20}, "stock must be at most 1,000,000,000,000"),
        ({"id": "1", "title": "x", "price": 1e13}, "price must be at most"),
        ({"id": "1", "title": "x", "price": float("inf")}, "finite"),
        ({"id": "1", "title": "x", "sale_count": "many"}, "sale_count must be a number"),
        ({"id": "1", "title": "x", "sale_count": 10**13}, "sale_count must be between 0 and"),
        ({"id": "1", "title": "x", "weight": 10**30}, "integer too large"),
        ({"id": "1", "title": "x", "weight": float("nan")}, "not finite"),
        # free text is bounded
        ({"id": "1" * 257, "title": "x"}, "id"),
        ({"id": "1", "title": "x", "brand": "b" * 201}, "brand"),
        ({"id": "1", "title": "x", "category": "c" * 1001}, "category"),
        ({"id": "1", "title": "x", "description": "d" * 50_001}, "description"),
        ({"id": "1", "title": "x", "image_url": "u" * 2049}, "image_url"),
        ({"id": "1", "title": "x", "tags": ["t"] * 101}, "101 tags; at most 100"),
        ({"id": "1", "title": "x", "tags": ["t" * 101]}, "tag 1 is 101 characters"),
        ({"id": "1", "title": "x", "attributes": {"n" * 101: "v"}}, "attribute name"),
        ({"id": "1", "title": "x", "attributes": {"a": "v" * 1001}}, "attribute 'a'"),
        ({"id": "1", "title": "x", "attributes": {"a": ["v"] * 501}}, "501 values"),
        ({"id": "1", "title": "x", "attributes": {f"a{i}": "v" for i in range(201)}}, "201 attributes"),
        ({"id": "1", "title": "x", "attributes": {f"a{i}": "v" * 900 for i in range(12)}}, "in all"),
        ({"id": "1", "title": "x", "notes": "n" * 70_000}, "at most 65,536"),
        ({"id": "1", "title": "x", "deep": json.loads("[" * 40 + "]" * 40)}, "nested more than 32"),
        # control characters
        ({"id": "a\x00b", "title": "x"}, "control characters"),
        ({"id": "a\nb", "title": "x"}, "control characters"),
        ({"id": "a\ud800", "title": "x"}, "control characters"),
        ({"id": "1", "title": "\x00\x01"}, "title"),
    ],
)
def test_product_rejects_bad_rows_with_a_reason(row, needle):
    with pytest.raises(ValidationError) as info:
        Product.model_validate(row)
    assert needle in str(info.value)


def test_control_characters_are_stripped_from_text_fields():
    p = Product.model_validate(
        {
            "id": " a1\t",
            "title": "保温\x00杯\n316",
            "brand": "\x00",
            "category": "家居\x1b > 杯",
            "description": "line one\nline\x07 two",
            "attributes": {"颜\x00色": ["红\x00", "\x00"]},
            "tags": "a|\x00|b\x7f",
            "note": {"k\x00": ["v\x00", "\ud800"]},
            "sale_count": "1,200",
        }
    )
    assert p.id == "a1" and p.title == "保温杯 316" and p.brand is None and p.category == "家居 > 杯"
    assert p.description == "line one\nline two"
    assert p.attributes == {"颜色": ["红"]} and p.tags == ["a", "b"]
    assert p.model_extra == {"note": {"k": ["v", ""]}, "sale_count": 1200}
    assert json.loads(p.model_dump_json())["title"] == "保温杯 316"  # storable as UTF-8


def test_filters_validate_price_range():
    with pytest.raises(ValidationError, match="above max_price"):
        SearchFilters(min_price=100, max_price=10)
    with pytest.raises(ValidationError):
        SearchFilters(unknown=1)
    assert SearchFilters(category="服饰>女装").category == "服饰 > 女装"

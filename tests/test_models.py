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
    ],
)
def test_product_rejects_bad_rows_with_a_reason(row, needle):
    with pytest.raises(ValidationError) as info:
        Product.model_validate(row)
    assert needle in str(info.value)


def test_filters_validate_price_range():
    with pytest.raises(ValidationError, match="above max_price"):
        SearchFilters(min_price=100, max_price=10)
    with pytest.raises(ValidationError):
        SearchFilters(unknown=1)
    assert SearchFilters(category="服饰>女装").category == "服饰 > 女装"

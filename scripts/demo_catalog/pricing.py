"""Generated price and stock (seeded per record, so a value depends only on seed and record id)."""

from __future__ import annotations

import math
from typing import Any

from .tables import DEFAULT_PRICE_MEDIAN, PRICE_MEDIAN_BY_KEYWORD, PRICE_MEDIAN_BY_TOP, PRICE_SIGMA
from .text import record_rng


def _longest_keyword(text: str, table: dict[str, Any]) -> str | None:
    best = None
    low = text.casefold()
    for kw in table:
        if kw in low and (best is None or len(kw) > len(best)):
            best = kw
    return best


def price_median(category: str, title: str) -> float:
    """Median by keyword, on the category leaf first, then the title (longest keyword wins, so
    手机壳 beats 手机); failing that, by top-level category; failing that, the default."""
    leaf = category.split(" > ")[-1]
    for text in (leaf, title):
        kw = _longest_keyword(text, PRICE_MEDIAN_BY_KEYWORD)
        if kw:
            return PRICE_MEDIAN_BY_KEYWORD[kw]
    return PRICE_MEDIAN_BY_TOP.get(category.split(" > ")[0], DEFAULT_PRICE_MEDIAN)


def shop_price(value: float) -> float:
    """Round to a shop-like price: 8.9, 89.9, 159.9, 1599.0."""
    if value < 10:
        return max(1.9, math.floor(value) + 0.9)
    if value < 1000:
        return math.floor(value / 10) * 10 + 9.9
    return float(math.floor(value / 100) * 100 + 99)


def generate_price(seed: int, record_id: str, category: str, title: str) -> float:
    rng = record_rng(seed, record_id, "price")
    median = price_median(category, title)
    return shop_price(median * math.exp(rng.gauss(0.0, PRICE_SIGMA)))


def generate_stock(seed: int, record_id: str) -> int:
    """About 5% out of stock; otherwise a skewed count with median ~40, capped at 999."""
    rng = record_rng(seed, record_id, "stock")
    if rng.random() < 0.05:
        return 0
    return int(min(999, max(1, round(math.exp(rng.gauss(math.log(40), 1.0))))))

"""What a filter means, in one place.

``matches`` is the reference semantics of ``SearchFilters``; the vectorised mask of the lexical
leg and the Chroma ``where`` of the dense leg are optimisations that must agree with it (the
tests check that they do).
"""

from __future__ import annotations

import re
from functools import lru_cache

from shopassist.models import Product, SearchFilters, split_category

MAX_BRAND_NAMES = 4  # the whole brand plus up to three '/'-separated names


def brand_names(brand: str | None) -> list[str]:
    """'CHANDO/自然堂' -> ['chando/自然堂', 'chando', '自然堂'] (case-folded, unique, at most 4)."""
    if not brand:
        return []
    full = brand.strip().casefold()
    names = [full]
    for part in full.split("/"):
        part = part.strip()
        if part and part not in names:
            names.append(part)
    return names[:MAX_BRAND_NAMES]


def brand_matches(brand: str | None, wanted: list[str]) -> bool:
    names = set(brand_names(brand))
    return any(w.strip().casefold() in names for w in wanted if w.strip())


def category_matches(category: str, wanted: str) -> bool:
    """A prefix path match ('服饰 > 女装' matches '服饰 > 女装 > 牛仔裤'), or, for a single
    name, equality with any level ('牛仔裤' matches '服饰 > 女装 > 牛仔裤'). Case-insensitive."""
    levels = [lv.casefold() for lv in split_category(category)]
    want = [lv.casefold() for lv in split_category(wanted)]
    if not want:
        return True
    if levels[: len(want)] == want:
        return True
    return len(want) == 1 and want[0] in levels


_ASCII_WORD = re.compile(r"^[0-9a-z][0-9a-z' .-]*$")


@lru_cache(maxsize=4096)
def _word_pattern(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<![0-9a-z])" + re.escape(term) + r"(?![0-9a-z])")


def term_in(term: str, text: str) -> bool:
    """Whether a filter term occurs in case-folded ``text``. Latin terms match whole words
    ("men" is not in "women", "red" is not in "shredded"; "boot" is not "boots", so callers pass
    what the shopper wrote); Chinese terms match as substrings (no word boundaries in Chinese).
    ``a|b`` is a term with alternatives: any of them counts (``防水|waterproof``)."""
    if "|" in term:
        return any(term_in(t, text) for t in term.split("|") if t.strip())
    term = term.strip().casefold()
    if not term:
        return True
    if _ASCII_WORD.match(term):
        return _word_pattern(term).search(text) is not None
    return term in text


def _values(product: Product, name: str) -> list[str]:
    for key, value in product.attributes.items():
        if key.casefold() == name.casefold():
            return [v.casefold() for v in (value if isinstance(value, list) else [value])]
    return []


def attribute_matches(product: Product, name: str, wanted: list[str]) -> bool:
    values = _values(product, name)
    return any(w.casefold() in v for w in wanted for v in values)


def text_fields(product: Product) -> str:
    """Title, brand and attribute values: what 'not X' is checked against."""
    return " ".join([product.title, product.brand or "", *product.attribute_values()]).casefold()


def matches_scalar(product: Product, filters: SearchFilters) -> bool:
    """The filters the lexical mask and the Chroma where also evaluate."""
    f = filters
    if f.min_price is not None or f.max_price is not None:
        if product.price is None:
            return False
        if f.min_price is not None and product.price < f.min_price:
            return False
        if f.max_price is not None and product.price > f.max_price:
            return False
    if f.currency and product.currency != f.currency.upper():
        return False
    if f.in_stock and product.stock == 0:
        return False
    if f.brands and not brand_matches(product.brand, f.brands):
        return False
    if f.exclude_brands and brand_matches(product.brand, f.exclude_brands):
        return False
    return not (f.category and not category_matches(product.category, f.category))


def matches_rest(product: Product, filters: SearchFilters) -> bool:
    """The filters checked per candidate: attributes, required/excluded terms, excluded ids."""
    f = filters
    if f.exclude_ids and product.id in f.exclude_ids:
        return False
    for name, wanted in f.attributes.items():
        if wanted and not attribute_matches(product, name, wanted):
            return False
    for name, unwanted in f.exclude_attributes.items():
        if unwanted and attribute_matches(product, name, unwanted):
            return False
    if f.exclude_terms:
        text = text_fields(product)
        if any(t.strip() and term_in(t, text) for t in f.exclude_terms):
            return False
    if f.require_terms:
        text = text_fields(product) + " " + product.category.casefold()
        if not all(term_in(t, text) for t in f.require_terms if t.strip()):
            return False
    return True


def needs_item_check(filters: SearchFilters) -> bool:
    """Whether ``matches_rest`` can reject anything (else the scalar mask is the whole filter)."""
    f = filters
    return bool(f.attributes or f.exclude_attributes or f.exclude_terms or f.require_terms or f.exclude_ids)


def matches(product: Product, filters: SearchFilters) -> bool:
    return matches_scalar(product, filters) and matches_rest(product, filters)

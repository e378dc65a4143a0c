"""The matching rules of an ``expect``: check fields, the allowed pool, and witness sets.

Two readings are implemented (``MODES``): ``strict`` -- case-sensitive text, brand equal to the
record's brand or one of its ``/`` parts, the reading of ``evals/dialogues.py`` -- and
``lenient`` -- case-insensitive text, brand as a case-insensitive substring.
"""

from __future__ import annotations

import re
from typing import Any

SHOWN = 5  # the assistant shows at most this many products per turn
MODES = ("strict", "lenient")
CHECK_FIELDS = ("price_max", "price_min", "category_contains", "text_contains", "brand_in")


# per product (keyed by id(), the record kept to rule out a reused id): its haystack, cased and
# casefolded; the 10k-product demo catalog is matched against every turn twice
_HAY: dict[int, tuple[dict, str, str]] = {}


def _attribute_values(p: dict) -> list[str]:
    values: list[str] = []
    for v in (p.get("attributes") or {}).values():
        values.extend(v if isinstance(v, list) else [v])
    return values


def haystack(p: dict, folded: bool = False) -> str:
    """The text ``text_contains`` searches: title, brand and every attribute value."""
    hit = _HAY.get(id(p))
    if hit is None or hit[0] is not p:
        text = " ".join([p.get("title") or "", p.get("brand") or "", *_attribute_values(p)])
        hit = _HAY[id(p)] = (p, text, text.casefold())
    return hit[2] if folded else hit[1]


def record_text(p: dict) -> str:
    """The whole record a reply may state a fact from: title, brand, attribute names and values,
    description and tags (casefolded)."""
    attrs = p.get("attributes") or {}
    parts = [p.get("title") or "", p.get("brand") or "", p.get("description") or ""]
    parts += [str(k) for k in attrs] + _attribute_values(p) + [str(t) for t in p.get("tags") or []]
    return " ".join(parts).casefold()


def field_ok(p: dict, name: str, value: Any, mode: str) -> bool:
    """Whether product ``p`` passes one check field under the matching ``mode``."""
    price = p.get("price")
    if name == "price_max":
        return price is not None and price <= float(value)
    if name == "price_min":
        return price is not None and price >= float(value)
    if name == "category_contains":
        return str(value) in (p.get("category") or "")
    if name == "text_contains":
        if mode == "strict":
            text = haystack(p)
            return any(str(v) in text for v in value)
        folded = haystack(p, folded=True)
        return any(str(v).casefold() in folded for v in value)
    if name == "brand_in":
        brand = p.get("brand") or ""
        if mode == "strict":
            names = {brand} | set(brand.split("/"))
            return any(str(b) in names for b in value)
        return any(str(b).casefold() in brand.casefold() for b in value)
    raise ValueError(name)


def satisfies_all(p: dict, check: dict, mode: str) -> bool:
    return all(field_ok(p, f, v, mode) for f, v in check.items())


def hits_any(p: dict, check: dict, mode: str) -> bool:
    return any(field_ok(p, f, v, mode) for f, v in check.items())


def pool(catalog: list[dict], expect: dict, mode: str) -> list[dict]:
    """Products a correct assistant may show: they pass all_match and avoid none_match."""
    out = []
    for p in catalog:
        if "all_match" in expect and not satisfies_all(p, expect["all_match"], mode):
            continue
        if "none_match" in expect and hits_any(p, expect["none_match"], mode):
            continue
        out.append(p)
    return out


def in_stock(p: dict) -> bool:
    return p.get("stock") is None or p["stock"] > 0


def witness(catalog: list[dict], expect: dict, mode: str, cap: float | None = None) -> list[dict] | None:
    """A set of <= 5 in-stock products (priced <= cap, if given) satisfying the whole expect, or None."""
    avail = [p for p in pool(catalog, expect, mode) if in_stock(p) and (cap is None or p["price"] <= cap)]
    need = int(expect.get("min_results", 0))
    chosen: list[dict] = []
    if "any_match" in expect:
        hit = [p for p in avail if satisfies_all(p, expect["any_match"], mode)]
        if not hit:
            return None
        chosen.append(hit[0])
    for p in avail:
        if len(chosen) >= max(need, 1 if avail else 0) or len(chosen) >= SHOWN:
            break
        if p not in chosen:
            chosen.append(p)
    return chosen if len(chosen) >= need else None


def inside_word_hits(needle: str, catalog: list[dict]) -> list[str]:
    """Products where an ASCII ``needle`` starts inside a longer word (e.g. "tan" in "resistant")."""
    if not needle.isascii() or not any(c.isalpha() for c in needle):
        return []
    out = []
    pat = re.compile(re.escape(needle), re.IGNORECASE)
    for p in catalog:
        text = haystack(p)
        for m in pat.finditer(text):
            before = text[m.start() - 1] if m.start() > 0 else " "
            # a match that starts mid-word ("stem" in "system", "rain" in "grain") is an accident;
            # a word prefix ("wood" in "Wooden") is intended
            if needle[0].isalpha() and before.isascii() and before.isalpha():
                out.append(f"{p['id']} ({text[max(0, m.start() - 8) : m.end() + 8]!r})")
                break
    return out


def ids(products: list[dict]) -> set[str]:
    return {p["id"] for p in products}

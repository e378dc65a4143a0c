"""What the chat page shows beside the conversation, as pure functions: product cards, the chips
of the parsed need, the cart, the comparison table and the landing page's picks.

Every value that comes from a product, a shopper or a model is ``html.escape``d here, in the one
place that builds the markup; the app puts the result in ``gr.HTML`` as is. No inline script or
event handler is ever written: a product image is a CSS background over a tile naming its category, so an
image that does not load leaves the tile, not a broken-image box.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from typing import Any

from assistant.facets.vocabulary import AUDIENCE_WORDS
from shopassist.text import money
from ui.labels import lang_of, t

SYMBOLS = {"CNY": "¥", "RMB": "¥", "USD": "$", "EUR": "€", "GBP": "£"}
LOW_STOCK = 5  # at or below this, the card says how many are left

# the placeholder tile's colour, by top-level category (a stable pick from a short palette)
TILE_COLOURS = ("#f4e7d7", "#e3eefa", "#e6f4ea", "#fbe4ec", "#efe7fb", "#fdf3d6", "#e0f2f1", "#eceff1")

# an image URL that may go into a CSS url("..."): http(s) and none of the characters that could
# end the string, the url() or the declaration
SAFE_URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#@!$&*+,;=%-]+$")


def category_label_of(category: str | None) -> str:
    """The word a placeholder tile shows: the category's last level (no audience word), or ""."""
    return category_label(category) if category and category.strip() else ""


def tile_html(category: str | None, image: str | None = None) -> str:
    """The image box: a tile in the category's colour with its name (never a title's first
    characters); the image, when there is one, is a CSS background over it, so an image that does
    not load leaves the tile (no broken-image box, no script)."""
    e = html.escape
    top = (category or "").split(">")[0].strip()
    colour = TILE_COLOURS[sum(map(ord, top)) % len(TILE_COLOURS)] if top else TILE_COLOURS[-1]
    name = category_label_of(category)
    name = name if len(name) <= 12 else name[:11] + "…"
    photo = f'<span class="sa-photo" style="background-image: url(&quot;{e(image)}&quot;)"></span>' if image else ""
    return (
        f'<div class="sa-img" aria-hidden="true" style="background: {colour}">'
        f'<span class="sa-tile">{e(name)}</span>{photo}</div>'
    )


def safe_image_url(url: Any) -> str | None:
    text = str(url or "").strip()
    return text if len(text) <= 2000 and SAFE_URL.match(text) else None


def price_text(price: Any, currency: str | None) -> str:
    """'¥39', '$199.99', '12.50 EUR'; '—' without a price."""
    if not isinstance(price, int | float) or isinstance(price, bool):
        return "—"
    cur = (currency or "").upper()
    if cur in SYMBOLS:
        return f"{SYMBOLS[cur]}{money(float(price))}"
    return f"{money(float(price))} {currency}".strip()


def stock_text(stock: Any, lang: str) -> str:
    if not isinstance(stock, int) or isinstance(stock, bool):
        return ""
    if stock <= 0:
        return t(lang, "sold_out")
    if stock <= LOW_STOCK:
        return t(lang, "few_left", n=stock)
    return t(lang, "in_stock")


def card_html(card: dict[str, Any], lang: str = "zh") -> str:
    """One product card; every value escaped. The image is a CSS background over the category
    tile: when it does not load, the tile shows (no broken-image box, no script)."""
    e = html.escape
    lang = lang_of(lang)
    title = e(str(card.get("title", "")))
    img = tile_html(card.get("category"), safe_image_url(card.get("image_url")))
    brand = f'<span class="sa-brand">{e(str(card["brand"]))}</span>' if card.get("brand") else ""
    rating = card.get("rating")
    stars = (
        f'<span class="sa-rating">{e(t(lang, "rating", r=f"{float(rating):.1f}"))}</span>'
        if isinstance(rating, int | float) and not isinstance(rating, bool) and rating > 0
        else ""
    )
    stock = card.get("stock")
    stock_label = stock_text(stock, lang)
    sold_out = isinstance(stock, int) and stock <= 0
    stock_html = f'<span class="sa-stock{" sa-out" if sold_out else ""}">{e(stock_label)}</span>' if stock_label else ""
    reasons = [str(r) for r in card.get("reasons") or [] if str(r).strip()]
    label = (
        e(str(card["group"])) if card.get("group") else (e(t(lang, "alternative")) if card.get("alternative") else "")
    )
    rank = card.get("rank")
    return (
        f'<div class="sa-card" data-product-id="{e(str(card.get("id")), quote=True)}">{img}<div class="sa-body">'
        + (f'<div class="sa-group">{label}</div>' if label else "")
        + f'<div class="sa-title">{e(str(rank)) + ". " if rank else ""}{title}</div>'
        f'<div class="sa-meta"><span class="sa-price">{e(price_text(card.get("price"), card.get("currency")))}</span>'
        f"{stars}{stock_html}{brand}</div>"
        + (
            f'<div class="sa-reasons">{e(t(lang, "why"))}{" · ".join(e(r) for r in reasons[:3])}</div>'
            if reasons
            else ""
        )
        + "</div></div>"
    )


# -- the chips of the parsed need ---------------------------------------------------------------


def _audience_key(value: str) -> str:
    key = value.casefold().strip()
    return re.sub(r"['’]s$", "", key)


def is_audience(value: str, audience: Iterable[str] = ()) -> bool:
    """A "for whom" word (女, 女士, men's, kids): a chip may remove it, never turn it into "not"."""
    key = _audience_key(value)
    words = {w.casefold() for w in (*AUDIENCE_WORDS, *audience)}
    return key in words or key.rstrip("s") in words


def dedupe(values: Iterable[str]) -> list[list[str]]:
    """Values that say the same thing grouped: equal ignoring case, or one inside the other
    (女 / 女士, 可躺 / 可躺下的). In first-seen order; each group keeps all its spellings."""
    groups: list[list[str]] = []
    for value in values:
        v = str(value).strip()
        if not v:
            continue
        key = _audience_key(v)
        for group in groups:
            if any(key in _audience_key(g) or _audience_key(g) in key for g in group):
                group.append(v)
                break
        else:
            groups.append([v])
    return groups


def shown_value(group: list[str]) -> str:
    """The spelling a chip shows for a group: the shortest of two characters or more (可躺 over
    可躺下的, 女士 over 女)."""
    longer = [g for g in group if len(g) >= 2]
    return min(longer or group, key=len)


def category_label(category: str) -> str:
    """The last level of a category path, without audience words ("Women / boots / tpe" ->
    "boots"; "Accessories > Watches > Men" -> "Watches")."""
    levels = [lv.strip() for lv in category.split(">") if lv.strip()]
    for level in reversed(levels):
        parts = [p.strip() for p in level.split("/") if p.strip()]
        kept = [p for p in parts if not is_audience(p)]
        if kept:
            return kept[0]
    return levels[-1] if levels else category.strip()


def round_price(value: float) -> str:
    """A price bound as a shopper reads it: whole units from 10 up (89.81 -> 90), else two
    decimals at most."""
    if value >= 10:
        return str(math.floor(value + 0.5))
    return money(value)


def price_label(lo: float | None, hi: float | None, currency: str | None, lang: str) -> str:
    """'1000元以内', '$20–$50', 'under $100', 'over 20 EUR'."""
    cur = (currency or "").upper()
    symbol = SYMBOLS.get(cur, "")
    suffix = f" {cur}" if cur and not symbol else ("" if symbol else t(lang, "yuan"))

    def p(v: float) -> str:
        return f"{symbol}{round_price(v)}"

    if lo is not None and hi is not None:
        return t(lang, "price_range", lo=p(lo), hi=p(hi)) + suffix
    if hi is not None:
        return t(lang, "price_max", p=p(hi) + suffix)
    return t(lang, "price_min", p=p(lo or 0.0) + suffix)


def chips_of(
    constraints: dict[str, Any], lang: str = "zh", audience: Iterable[str] = ()
) -> list[tuple[str, dict[str, Any]]]:
    """(label, edit) for each part of the parsed need, in ``lang``: one chip per value (spellings
    of the same value share it, and its edit covers all of them), a "not" toggle only for
    must-haves that are not audience words, the category's last level, a rounded price."""
    lang = lang_of(lang)
    audience = tuple(audience)
    out: list[tuple[str, dict[str, Any]]] = []
    category = constraints.get("category")
    leaf = category_label(str(category)) if category else ""
    if category:
        out.append((t(lang, "category", v=leaf) + " ✕", {"clear_category": True}))
    for group in dedupe(constraints.get("required") or []):
        value = shown_value(group)
        out.append((f"✓ {value} ✕", {"remove": group}))
        pointless = is_audience(value, audience) or any(g.casefold() == leaf.casefold() for g in group)
        if not pointless:
            out.append((t(lang, "toggle_not", v=value), {"toggle": group}))
    for group in dedupe(constraints.get("excluded") or []):
        out.append((t(lang, "not", v=shown_value(group)) + " ✕", {"remove": group}))
    for group in dedupe(constraints.get("brands") or []):
        out.append((t(lang, "brand", v=shown_value(group)) + " ✕", {"remove": group}))
    for group in dedupe(constraints.get("exclude_brands") or []):
        out.append((t(lang, "not_brand", v=shown_value(group)) + " ✕", {"remove": group}))
    lo, hi = constraints.get("min_price"), constraints.get("max_price")
    if lo is not None or hi is not None:
        out.append((price_label(lo, hi, constraints.get("currency"), lang) + " ✕", {"clear_price": True}))
    return out


def expansion_chips(expansions: list[dict[str, Any]], constraints: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, edit) for catalog values the shopper may add (+ 补水), none already in the need."""
    have = [
        str(v).casefold()
        for k in ("required", "excluded", "brands", "exclude_brands")
        for v in constraints.get(k) or []
    ]
    out = []
    for f in expansions:
        value = str(f.get("value") or "").strip()
        key = value.casefold()
        if value and not any(key in h or h in key for h in have):
            out.append((f"+ {value}", {"toggle": [value]}))
    return out


# -- the cart -------------------------------------------------------------------------------------


def cart_add(cart: list[dict[str, Any]], item: dict[str, Any]) -> list[dict[str, Any]]:
    """The cart with one more of ``item`` (a card or a product's fields); a new list."""
    pid = str(item.get("id"))
    out = [dict(line) for line in cart]
    for line in out:
        if line["id"] == pid:
            line["qty"] = int(line.get("qty", 1)) + 1
            return out
    price = item.get("price")
    out.append(
        {
            "id": pid,
            "title": str(item.get("title") or ""),
            "price": float(price) if isinstance(price, int | float) and not isinstance(price, bool) else None,
            "currency": item.get("currency") or "",
            "category": item.get("category") or "",
            "qty": 1,
        }
    )
    return out


def cart_remove(cart: list[dict[str, Any]], product_id: str) -> list[dict[str, Any]]:
    """The cart without the line of ``product_id``; a new list."""
    return [dict(line) for line in cart if line["id"] != product_id]


def cart_totals(cart: list[dict[str, Any]]) -> dict[str, float]:
    """Total per currency (prices in different currencies are never added together); lines
    without a price count in no total."""
    totals: dict[str, float] = {}
    for line in cart:
        if line.get("price") is None:
            continue
        cur = str(line.get("currency") or "")
        totals[cur] = round(totals.get(cur, 0.0) + float(line["price"]) * int(line.get("qty", 1)), 2)
    return totals


def cart_line_html(line: dict[str, Any], lang: str = "zh") -> str:
    e = html.escape
    title = str(line.get("title") or "")
    short = title if len(title) <= 40 else title[:39].rstrip() + "…"
    return (
        f'<div class="sa-cart-line" data-product-id="{e(str(line["id"]), quote=True)}">'
        f'<span class="sa-cart-title">{e(short)}</span>'
        f'<span class="sa-cart-qty">{e(t(lang, "qty", n=int(line.get("qty", 1))))}</span>'
        f'<span class="sa-price">{e(price_text(line.get("price"), line.get("currency")))}</span></div>'
    )


def cart_header_html(cart: list[dict[str, Any]], lang: str = "zh") -> str:
    """The cart's title with its item count, and the totals per currency (or "empty")."""
    e = html.escape
    count = sum(int(line.get("qty", 1)) for line in cart)
    head = f'<div class="sa-cart-head">{e(t(lang, "cart"))} ({count})</div>'
    if not cart:
        return head + f'<div class="sa-cart-empty">{e(t(lang, "cart_empty"))}</div>'
    totals = " + ".join(price_text(v, c or None) for c, v in sorted(cart_totals(cart).items()))
    return head + (f'<div class="sa-cart-total">{e(t(lang, "total"))}{e(totals)}</div>' if totals else "")


# -- the comparison --------------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_compare(text: str) -> dict[str, Any] | None:
    """The markdown table of a comparison reply (``assistant.answers.compare``) as
    {before, header, rows, after}; None when the text holds no well-formed table."""
    lines = text.split("\n")
    at = [i for i, line in enumerate(lines) if line.strip().startswith("|") and line.strip().endswith("|")]
    if len(at) < 3:
        return None
    start, end = at[0], at[0]
    while end + 1 < len(lines) and (end + 1) in at:
        end += 1
    table = lines[start : end + 1]
    if not re.fullmatch(r"\|(-+\|)+", table[1].replace(" ", "")):
        return None
    header = _cells(table[0])
    rows = [_cells(line) for line in table[2:]]
    if not rows or any(len(r) != len(header) for r in rows):
        return None
    after = "\n".join(lines[end + 1 :]).strip()
    if not re.sub(r"^(结论：|Verdict:)|[\s。.；;]", "", after):  # a verdict with nothing in it
        after = ""
    return {
        "before": "\n".join(lines[:start]).strip(),
        "header": header,
        "rows": rows,
        "after": after,
    }


def compare_html(table: dict[str, Any], cards: list[dict[str, Any]] | None = None, lang: str = "zh") -> str:
    """The comparison as an HTML table (every cell escaped): a column per product, headed by its
    position and short title when the card is on screen, a row per attribute that differs, and
    the verdict under it."""
    e = html.escape
    titles = {str(c.get("rank")): str(c.get("title") or "") for c in cards or [] if c.get("rank")}

    def head(cell: str) -> str:
        m = re.fullmatch(r"\[(\d+)\]", cell)
        name = titles.get(m.group(1), "") if m else ""
        short = name if len(name) <= 24 else name[:23].rstrip() + "…"
        return e(cell) + (f'<div class="sa-cmp-name">{e(short)}</div>' if short else "")

    heads = "".join(f"<th>{head(c)}</th>" for c in table["header"][1:])
    body = "".join(
        f"<tr><th>{e(r[0])}</th>" + "".join(f"<td>{e(c)}</td>" for c in r[1:]) + "</tr>" for r in table["rows"]
    )
    verdict = f'<div class="sa-verdict">{e(table["after"])}</div>' if table.get("after") else ""
    return (
        f'<div class="sa-compare" id="compare"><div class="sa-section">{e(t(lang, "compare"))}</div>'
        f'<table class="sa-cmp"><thead><tr><th></th>{heads}</tr></thead><tbody>{body}</tbody></table>{verdict}</div>'
    )


# -- the landing page ------------------------------------------------------------------------------


def greeting_html(lang: str = "zh") -> str:
    return f'<div class="sa-greeting" id="greeting">{html.escape(t(lang, "greeting"))}</div>'


def section_html(title: str) -> str:
    return f'<div class="sa-section">{html.escape(title)}</div>'


def fallback_picks(products: Iterable[Any], lang: str = "zh", k: int = 6) -> list[Any]:
    """A few products for a shop with no behaviour yet: in stock, best rated first (then the most
    in stock), one per top-level category from the largest categories, in the page's language
    when the catalog has products in it."""
    items = [p for p in products if getattr(p, "price", None) is not None and (getattr(p, "stock", None) or 0) > 0]
    same = [p for p in items if (getattr(p, "language", None) or "") == lang]
    pool = same or items
    by_top: dict[str, list[Any]] = {}
    for p in pool:
        by_top.setdefault((p.category or "").split(">")[0].strip() or "-", []).append(p)
    order = sorted(by_top, key=lambda c: -len(by_top[c]))
    best = {
        c: sorted(by_top[c], key=lambda p: (-(p.rating or 0.0), -(p.stock or 0), p.id))
        for c in order
        if c not in ("-", "其他", "Other")
    }
    out: list[Any] = []
    depth = 0
    while len(out) < k and any(len(v) > depth for v in best.values()):
        for c in best:
            if depth < len(best[c]) and len(out) < k:
                out.append(best[c][depth])
        depth += 1
    return out

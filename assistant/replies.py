"""The assistant's own sentences: the first line of a reply (found, relaxed, honest empty),
"we don't have that", the answer to chit-chat and to requests a shop assistant cannot serve,
and the checks that decide whether results really are what was asked."""

from __future__ import annotations

from collections.abc import Mapping

from assistant.intent import Need, Relation
from assistant.planner import type_spellings
from shopassist.models import Product
from shopassist.text import money

RELAXED_NAMES = {
    "category": ("类目", "category"),
    "required": ("部分要求", "some must-haves"),
    "in_stock": ("库存", "stock"),
}


def header(need: Need, n: int, relaxed: list[str], suggestion: str | None, relation: Relation) -> str:
    """The reply's first line: what was found, what was relaxed, or the honest empty answer."""
    zh = need.language == "zh"
    if n == 0:
        base = "没有找到完全符合条件的商品。" if zh else "Nothing in the catalog matches all of that."
        if suggestion:
            base += f" 建议：{suggestion}。" if zh else f" Suggestion: {suggestion}."
        return base
    if relation == Relation.compare:
        return "对比如下：" if zh else "Here is the comparison:"
    if relation == Relation.pick:
        return "这款的详细信息：" if zh else "Details:"
    note = ""
    if relaxed:
        what = (
            "、".join(RELAXED_NAMES[r][0] for r in relaxed) if zh else ", ".join(RELAXED_NAMES[r][1] for r in relaxed)
        )
        note = f"（放宽了{what}）" if zh else f" (relaxed: {what})"
    return f"为你找到这些{note}：" if zh else f"Here are some picks{note}:"


def budget_text(need: Need) -> str:
    """The price bounds as a shopper says them: "300 元左右" / "200 元以内" / "under $50"."""
    zh = need.language == "zh"
    lo, hi = need.min_price, need.max_price
    unit = need.currency or ("CNY" if zh else "USD")
    if lo is not None and hi is not None:
        return f"{money(lo)}–{money(hi)} {unit}" if zh else f"({money(lo)}–{money(hi)} {unit})"
    if hi is not None:
        return f"{money(hi)} {unit} 以内" if zh else f"under {money(hi)} {unit}"
    if lo is not None:
        return f"{money(lo)} {unit} 以上" if zh else f"from {money(lo)} {unit}"
    return ""


def related(products: list[Product]) -> list[Product]:
    """Alternatives that belong together: those in the same top-level category as the first."""
    if not products:
        return []
    top = products[0].category.split(" > ")[0]
    return [p for p in products if p.category.split(" > ")[0] == top]


def level_sizes(paths: Mapping[str, int]) -> dict[str, int]:
    """Products under each category level name (a path's count belongs to its last level)."""
    sizes: dict[str, int] = {}
    for path, n in paths.items():
        leaf = path.split(" > ")[-1].strip().casefold()
        sizes[leaf] = sizes.get(leaf, 0) + n
    return sizes


def missing_header(missing: str, need: Need, has_alternatives: bool) -> str:
    zh = need.language == "zh"
    if zh:
        base = f"店里没有“{missing}”。"
        return base + ("这些是相近的商品（不完全符合）：" if has_alternatives else "")
    base = f"We don't have {missing}."
    return base + (" These are the closest items (not exact matches):" if has_alternatives else "")


def is_a(p: Product, product_type: str) -> bool:
    """Whether the product is of the asked type: its title or category names it, or (Chinese)
    names its head and its modifier apart (不粘锅 ~ 不粘炒锅; 蛋糕鞋 is no 蛋糕)."""
    text = f"{p.title} {p.category}".casefold()
    if any(w in text for w in type_spellings(product_type)):
        return True
    t = product_type.casefold()
    return len(t) >= 2 and not t.isascii() and t[-1] in text and t[:-1] in text


def canned_reply(relation: Relation, language: str) -> str:
    zh = language == "zh"
    if relation == Relation.unsupported:
        return (
            "订单、物流、退款和账号的问题我这里处理不了，请联系店铺客服。我可以帮你找商品、比较商品、回答商品信息里的问题。"
            if zh
            else "I can't help with orders, deliveries, refunds or accounts here; please contact the shop's customer "
            "service. I can find and compare products and answer questions from their records."
        )
    return (
        "我是这家店的购物助手，只能帮你找商品、比较商品、回答商品信息里的问题。想找点什么？"
        if zh
        else "I'm this shop's shopping assistant: I can find products, compare them and answer questions from "
        "their records. What are you looking for?"
    )

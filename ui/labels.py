"""The chat UI's own words, one language at a time (``zh`` or ``en``).

The page follows the shopper: it starts in Chinese, switches to the language of each message the
shopper writes (``message_language``) and can be switched by hand (the 中文 / English radio).
Nothing here is escaped: callers escape (these strings hold no markup, but product text is
formatted into some of them).
"""

from __future__ import annotations

from shopassist.text import detect_language

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
# the header switch: what the radio shows -> the language code
SWITCH = {"中文": "zh", "English": "en"}

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "shopassist 购物助手",
        "chat": "对话",
        "placeholder": "说说你想买什么，比如：女士羽绒服 1000以内",
        "send": "发送",
        "try": "试试这样问：",
        "thinking": "正在思考…",
        "writing": "正在生成…",
        "refined": "更新了结果：",
        "refined_plain": "更新了结果（根据对你需求的进一步理解）",
        "click": "详情",
        "add_to_cart": "加入购物车",
        "dislike": "不要这个",
        "in_stock": "有货",
        "few_left": "仅剩 {n} 件",
        "sold_out": "缺货",
        "why": "推荐理由：",
        "alternative": "相近商品（非完全匹配）",
        "category": "品类：{v}",
        "brand": "品牌：{v}",
        "not_brand": "不要品牌：{v}",
        "not": "不要 {v}",
        "toggle_not": "⇄ 改为不要 {v}",
        "price_max": "{p}以内",
        "price_min": "{p}以上",
        "price_range": "{lo}–{hi}",
        "yuan": "元",
        "need": "当前条件（点 ✕ 去掉）",
        "add_more": "加个条件：",
        "edited": "修改条件：",
        "cart": "购物车",
        "cart_empty": "购物车是空的",
        "remove": "移除",
        "total": "合计：",
        "qty": "× {n}",
        "added": "已加入购物车：{t}",
        "removed": "已从购物车移除：{t}",
        "not_this": "不看这个了：{t}",
        "compare": "对比",
        "compare_note": "对比见右侧表格。",
        "details": "详情",
        "greeting": "你好！告诉我你想买什么，我来帮你在商品库里找。可以随时加条件、排除不要的，或者比较两件商品。",
        "trending": "正在热门",
        "popular": "大家都在买",
        "picks": "精选好物",
        "rating": "★ {r}",
    },
    "en": {
        "title": "shopassist shopping assistant",
        "chat": "Chat",
        "placeholder": "Tell me what you're looking for, e.g. smartphone under $800",
        "send": "Send",
        "try": "Try asking:",
        "thinking": "Thinking…",
        "writing": "Writing…",
        "refined": "Refined: ",
        "refined_plain": "Results refined (a closer reading of your request)",
        "click": "Details",
        "add_to_cart": "Add to cart",
        "dislike": "Not this",
        "in_stock": "In stock",
        "few_left": "Only {n} left",
        "sold_out": "Sold out",
        "why": "Why: ",
        "alternative": "Similar item (not an exact match)",
        "category": "Type: {v}",
        "brand": "Brand: {v}",
        "not_brand": "Not brand: {v}",
        "not": "not {v}",
        "toggle_not": "⇄ make it: not {v}",
        "price_max": "under {p}",
        "price_min": "over {p}",
        "price_range": "{lo}–{hi}",
        "yuan": "",
        "need": "Your request (✕ removes)",
        "add_more": "Add:",
        "edited": "Edited:",
        "cart": "Cart",
        "cart_empty": "Your cart is empty",
        "remove": "Remove",
        "total": "Total: ",
        "qty": "× {n}",
        "added": "Added to cart: {t}",
        "removed": "Removed from cart: {t}",
        "not_this": "Not this: {t}",
        "compare": "Comparison",
        "compare_note": "See the comparison table on the right.",
        "details": "Details",
        "greeting": "Hi! Tell me what you'd like to buy and I'll find it in the catalog. "
        "Add or exclude details any time, or compare two products.",
        "trending": "Trending now",
        "popular": "Popular",
        "picks": "Good picks",
        "rating": "★ {r}",
    },
}

# example requests shown on the page, checked on the bundled demo catalog (`shopassist ask --no-llm`)
EXAMPLES: dict[str, list[str]] = {
    "zh": ["女士羽绒服 1000以内", "面霜 补水 不要含酒精的", "蓝牙耳机 200以内"],
    "en": ["smartphone under $800", "laptop under $1500", "women's dresses"],
}


def lang_of(code: str | None) -> str:
    """A supported language code ('zh' for anything unknown)."""
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def t(lang: str | None, key: str, **values: object) -> str:
    """The label ``key`` in ``lang``, with ``values`` formatted in."""
    text = LABELS[lang_of(lang)][key]
    return text.format(**values) if values else text


def message_language(message: str | None, current: str | None = None) -> str:
    """The language the page should speak after the shopper wrote ``message``: Chinese when it
    holds a CJK ideograph, English when it holds Latin letters, else unchanged (a price, "3")."""
    text = message or ""
    if detect_language(text) == "zh":
        return "zh"
    if any(c.isascii() and c.isalpha() for c in text):
        return "en"
    return lang_of(current)


def switch_value(lang: str | None) -> str:
    """What the header's language radio shows for ``lang``."""
    return next(k for k, v in SWITCH.items() if v == lang_of(lang))

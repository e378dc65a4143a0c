"""Vague gift needs: "给我妈买个生日礼物 300左右", "a gift for my dad under $50".

No product type was named, so a search has nothing to look for. The assistant proposes product
types that suit the recipient (general gift knowledge, both languages; the LLM path may propose
its own), the catalog confirms each one (only types with products in the budget are offered),
and the shopper sees a few labelled groups and one short question about what the recipient likes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# a need is a gift when its words or its occasion say so
GIFT_WORDS = re.compile(r"礼物|礼品|送人|送给|gift|present", re.IGNORECASE)

# who -> a recipient class: f (women), m (men), k (children), e (elders, teachers, bosses)
_CLASSES: list[tuple[str, str]] = [
    (
        "k",
        r"儿子|女儿|孩子|小孩|宝宝|小朋友|男孩|女孩|岁|个月|\bson\b|\bdaughter\b|\bkids?\b|\bchild|\bbaby\b|"
        r"\bnephew\b|\bniece\b|\bboy\b|\bgirl\b",
    ),
    (
        "e",
        r"老师|领导|上司|客户|长辈|老人|爷爷|奶奶|外婆|外公|姥姥|姥爷|\bteacher\b|\bboss\b|\bgrand|\bcolleague\b|"
        r"\bcoworker\b|\bparents\b",
    ),
    (
        "f",
        r"妈|母亲|婆婆|岳母|丈母娘|老婆|媳妇|女朋友|女友|闺蜜|姐妹|女生|姐姐|妹妹|\bmom\b|\bmum\b|\bmother\b|"
        r"\bwife\b|\bgirlfriend\b|\bsister\b|\bbestie\b|\bher\b|\baunt\b|\bfiancee\b",
    ),
    (
        "m",
        r"爸|父亲|公公|岳父|老丈人|老公|男朋友|男友|兄弟|哥们|男生|哥哥|弟弟|\bdad\b|\bfather\b|\bhusband\b|"
        r"\bboyfriend\b|\bbrother\b|\bhim\b|\buncle\b|\bfiance\b",
    ),
]

# product types that make good gifts for each class, most typical first (both languages: the
# catalog decides which exist)
IDEAS: dict[str, tuple[str, ...]] = {
    "f": (
        "护肤品",
        "香水",
        "口红",
        "丝巾",
        "项链",
        "保温杯",
        "perfume",
        "handbag",
        "sunglasses",
        "jewellery",
        "lipstick",
    ),
    "m": ("剃须刀", "手表", "钱包", "皮带", "茶叶", "保温杯", "watch", "wallet", "sunglasses", "shirt", "perfume"),
    "k": ("玩具", "积木", "绘本", "书包", "零食礼包", "toy", "basketball", "backpack", "football"),
    "e": ("茶叶", "茶具", "保温杯", "按摩器", "鲜花", "mug", "tea", "plant", "pen"),
    "": ("香水", "保温杯", "零食礼盒", "护肤品", "茶叶", "perfume", "sunglasses", "mug", "chocolate", "watch"),
}

_FULL = {"妈": "妈妈", "爸": "爸爸", "我妈": "妈妈", "我爸": "爸爸"}

PRONOUN = {"f": ("她", "she"), "m": ("他", "he"), "k": ("孩子", "they"), "e": ("对方", "they"), "": ("对方", "they")}


def recipient_class(occasion: str) -> str:
    """'f', 'm', 'k', 'e' or '' for who the gift is for."""
    for cls, pattern in _CLASSES:
        if re.search(pattern, occasion, re.IGNORECASE):
            return cls
    return ""


def gift_ideas(occasion: str, language: str) -> list[str]:
    """Product types to propose, in the conversation's language first."""
    ideas = IDEAS[recipient_class(occasion)]
    zh = [i for i in ideas if not i.isascii()]
    en = [i for i in ideas if i.isascii()]
    return [*zh, *en] if language == "zh" else [*en, *zh]


@dataclass(frozen=True)
class IdeaGroup:
    label: str  # the product type, as offered
    count: int  # products of that type within the budget


def ideas_reply(occasion: str, groups: list[IdeaGroup], budget: str, language: str) -> str:
    """The header of a gift-ideas answer: what the groups are and one question."""
    cls = recipient_class(occasion)
    zh = language == "zh"
    words = [w for w in occasion.split() if not re.fullmatch(r"礼物|礼品|gifts?|presents?", w, re.IGNORECASE)]
    whos = [w for w in words if recipient_class(w)]
    whats = [w for w in words if w not in whos]
    who = " ".join(_FULL.get(w, w) for w in whos)
    if zh:
        listed = "、".join(f"{g.label}（{g.count} 款）" for g in groups)
        what = "".join(whats)
        head = f"送{who}的{what}礼物" if who else f"{what}礼物"
        return f"{head}{('，' + budget) if budget else ''}，可以从这几类里挑：{listed}。告诉我{PRONOUN[cls][0]}平时喜欢什么，我可以挑得更准。"
    listed = ", ".join(f"{g.label} ({g.count})" for g in groups)
    head = f"Gift ideas for your {who}" if who and who not in ("gift", "her", "him", "them") else "Gift ideas"
    pron = PRONOUN[cls][1]
    likes = "likes" if pron in ("she", "he") else "like"
    return f"{head}{(' ' + budget) if budget else ''} from what we carry: {listed}. Tell me what {pron} {likes} and I can narrow it down."


_OTHER = {
    "f": re.compile(
        r"男士|男款|男式|男生|男装|男鞋|男表|男包|(?<![a-z])men(?:'s)?(?![a-z])|(?<![a-z])mens(?![a-z])", re.I
    ),
    "m": re.compile(
        r"女士|女款|女式|女生|女装|女鞋|女表|女包|(?<![a-z])women(?:'s)?(?![a-z])|(?<![a-z])ladies(?![a-z])", re.I
    ),
}
_SAME = {"f": re.compile(r"女|women|ladies", re.I), "m": re.compile(r"男|(?<!wo)men", re.I)}


def for_recipient(products: list[Any], occasion: str, text: Callable[[Any], str]) -> list[Any]:
    """Products made for the other sex leave a gift for mom or dad (the rest keep their order):
    a women's watch is no match for "a gift for my dad", even when it is the only watch in budget."""
    cls = recipient_class(occasion)
    if cls not in _OTHER:
        return products
    return [p for p in products if not (_OTHER[cls].search(text(p)) and not _SAME[cls].search(text(p)))]

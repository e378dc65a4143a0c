"""The shipped lexicons (MultiDigraphNER brand and product words) as the rule parser reads them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from retrieval.tokenize import jieba_tokenizer, lexicon_words
from shopassist.text import ONLY_CJK

__all__ = ["Lexicon", "lexicon_brands", "load_lexicon"]

_LEXICON_BRAND_MAX_FREQ = 50
# last characters that make a word a thing rather than a maker (器 appliance, 头 plug, 板 board, ...)
_PRODUCT_SUFFIXES = frozenset("器机头套贴膏粉液袋盒杯锅壶灯线板架垫布纸笔刀剪夹扣绳带管瓶罐片棒球裤衣鞋帽裙箱柜桌椅床")


@dataclass(frozen=True)
class Lexicon:
    products: frozenset[str]
    brands: frozenset[str]


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """The shipped product-word lexicon, and the part of the brand lexicon that is safe to read
    as brands: CJK words of three or more characters that are rare in general Chinese (jieba
    frequency at most ``_LEXICON_BRAND_MAX_FREQ``: 欧莱雅 49 and 雅诗兰黛 3 pass, 紫禁城 1758 and
    店小二 313 do not), not a product word, not containing one (电水壶) and not ending like one
    (充电头, 泡沫板)."""
    tok = jieba_tokenizer()
    products = frozenset(w for w in lexicon_words("product") if ONLY_CJK.match(w))
    brands = set()
    for w in lexicon_words("brand"):
        if len(w) < 3 or not ONLY_CJK.match(w) or w in products or tok.FREQ.get(w, 0) > _LEXICON_BRAND_MAX_FREQ:
            continue
        if w[-1] in _PRODUCT_SUFFIXES:
            continue  # 充电头, 泡沫板: named like a product, not like a maker
        if any(w[i:j] in products for i in range(len(w)) for j in range(i + 2, len(w) + 1)):
            continue
        brands.add(w)
    return Lexicon(products=products, brands=frozenset(brands))


def lexicon_brands() -> frozenset[str]:
    """Brand names from the shipped lexicon that are safe to read as brands (see ``load_lexicon``)."""
    return load_lexicon().brands

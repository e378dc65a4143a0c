"""What one product contributes to the facet index, and what of it counts as a facet.

Logistics and identifiers (SKU, warranty, 货号) are attributes a catalog has but not constraints
a shopper asks for; placeholder values (常规, 如图), generic brands (无品牌) and title noise (新款,
包邮) are left out too. ``product_entry`` turns a product into an ``Entry``: its category keys,
level names, facet pairs, brand names, frequent-title-word candidates and product words, kept so
that removing the product subtracts exactly what it added.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from assistant.facets.phrases import normalise_text, phrase_key
from assistant.facets.vocabulary import AUDIENCE_WORDS, BUILTIN_GROUPS
from retrieval.filters import brand_names
from retrieval.tokenize import EN_STOPWORDS, jieba_tokenizer
from shopassist.models import CATEGORY_SEP, Product
from shopassist.text import CJK_CLASS, HAS_CJK, is_cjk, word_set

__all__ = ["Entry", "bump_count", "bump_table", "product_entry", "top"]

_TITLE_RUNS = re.compile(rf"[{CJK_CLASS}]+|[^\W_{CJK_CLASS}]+")
_HAS_LETTER = re.compile(rf"[^\W\d_{CJK_CLASS}]")

# Logistics and identifiers are attributes a catalog has but not constraints a shopper asks for.
_NON_FACET_ATTR = re.compile(
    r"sku|^id$|_id$|ean|upc|gtin|barcode|warranty|shipping|return|polic|order_quantity|minimum|discount|"
    r"dimension|weight|货号|条码|条形码|批准文号|注册证|备案|许可证|保质期|生产日期|生产企业|厂名|厂址|联系方式|"
    r"品牌|brand|产品名称|型号|^model",
    re.I,
)
# Attributes whose values are product words (the NER "产品词" field): they name products, so they
# feed category detection instead of the facet list.
_PRODUCT_WORD_ATTR = re.compile(r"^(?:产品词|品名|product[ _]?words?|product[ _]?type)$", re.I)
_STOP_VALUES = word_set(
    """常规 其他 其它 通用 无 否 是 有 图片色 如图 见详情 详见详情 均码 默认 不详 未知 见描述 以实物为准 other
    others none n/a na yes no true false default standard unknown 其他/other"""
)
_TRUE_VALUES = word_set("是 有 yes true y 1")
_FALSE_VALUES = word_set("否 无 no false n 0")
_GENERIC_LEVELS = word_set("其他 其它 全部 更多 未分类 other others misc miscellaneous more all uncategorized")
_GENERIC_BRANDS = word_set("无品牌 无 其他 其它 不详 通用 other none unbranded generic oem no brand")
_TITLE_NOISE = word_set(
    """新款 正品 包邮 官方 旗舰店 旗舰 专柜 同款 热卖 爆款 特价 促销 清仓 现货 直营 授权 代购 专卖 专营 国行
    全新 年新款 秋冬新款 春夏新款 新品 品牌 厂家 批发 直销 限时 抢购 正版 顺丰 送礼 礼物 礼盒装 一件 代发
    免邮 店铺 网红 抖音 同款 款式 产品 商品 百搭 潮流 时尚 ins new hot sale free shipping authentic original
    genuine official pack set pcs piece pieces item with for and the"""
)
_MAX_VALUE_CHARS = 20
# Brands that are everyday words (统一, 左右, 老板, 心想) would turn ordinary sentences into brand
# filters: a CJK brand name whose frequency in jieba's general dictionary is above this is not
# recognised in messages (it is still counted as a facet).
_COMMON_WORD_FREQ = 1000


def _value_ok(value: str) -> bool:
    """A value worth recognising in a message: not a placeholder, not a bare number, not too
    short to be unambiguous (one CJK character, two Latin letters) and not a sentence."""
    v = value.strip()
    low = v.casefold()
    if not v or low in _STOP_VALUES or len(v) > _MAX_VALUE_CHARS:
        return False
    if HAS_CJK.search(v):
        return len(v) >= 2 or v in AUDIENCE_WORDS  # 男/女 are values; other single characters are too vague
    return len(v) >= 3 and bool(_HAS_LETTER.search(v)) and low not in EN_STOPWORDS


def _facet_pairs(product: Product) -> tuple[list[tuple[str, str]], list[str]]:
    """(attribute name, value) facet pairs of a product, and its product words."""
    pairs: list[tuple[str, str]] = []
    words: list[str] = []
    for name, raw in product.attributes.items():
        if _NON_FACET_ATTR.search(name):
            continue
        values = raw if isinstance(raw, list) else [raw]
        is_product = bool(_PRODUCT_WORD_ATTR.match(name.strip()))
        for v in values:
            v = v.strip()
            low = v.casefold()
            if low in _TRUE_VALUES and not is_product:
                # {"加绒": "是"}: the attribute name is the facet value; "是否变频: 是" -> 变频, while a
                # question in the middle of a name ("版本是否包含中国大陆") is no facet at all
                stem = name.strip()
                if stem.startswith("是否"):
                    stem = stem[2:]
                if "是否" in stem:
                    continue
                v = stem
            elif low in _FALSE_VALUES:
                continue
            if not _value_ok(v):
                continue
            if is_product:
                words.append(v)
            elif (name, v) not in pairs:
                pairs.append((name, v))
    return pairs, words


def _brand_ok(name: str, freq: dict[str, int]) -> bool:
    low = name.casefold().strip()
    if not low or low in _GENERIC_BRANDS or low in EN_STOPWORDS or phrase_key(low) in BUILTIN_GROUPS:
        return False
    if HAS_CJK.search(low):
        return len(low) >= 2 and freq.get(low, 0) <= _COMMON_WORD_FREQ
    return len(low) >= 2 and bool(_HAS_LETTER.search(low))


@dataclass(frozen=True, slots=True)
class Entry:
    """What one product contributed, kept so ``remove`` subtracts exactly that."""

    keys: tuple[str, ...]
    paths: tuple[str, ...]
    levels: tuple[tuple[tuple[str, ...], str, str], ...]  # (level key, level display, path ending there)
    pairs: tuple[tuple[str, str], ...]
    brand: str | None
    brand_names: tuple[tuple[tuple[str, ...], str], ...]
    words: tuple[str, ...]
    product_words: tuple[str, ...]


def product_entry(product: Product, freq: dict[str, int]) -> Entry:
    """What ``product`` contributes to the index. ``freq`` is jieba's word-frequency table,
    used to skip brands that are everyday words."""
    levels = product.category_levels
    keys: list[str] = []
    paths: list[str] = []
    level_rows: list[tuple[tuple[str, ...], str, str]] = []
    for depth, level in enumerate(levels, start=1):
        prefix = CATEGORY_SEP.join(levels[:depth])
        paths.append(prefix)
        keys.append(prefix.casefold())
        names = [level] + [p.strip() for p in level.split("/") if p.strip() and "/" in level]
        for name in names:
            low = name.casefold()
            if low not in keys:
                keys.append(low)
            if low in _GENERIC_LEVELS:
                continue
            key = phrase_key(name)
            if not key or (len(key) == 1 and HAS_CJK.fullmatch(key[0])) or (key[0].isascii() and len(low) < 3):
                continue  # one CJK character (包, 鞋) or two letters sit inside too many words
            level_rows.append((key, level, prefix))
    pairs, product_words = _facet_pairs(product)
    names = brand_names(product.brand)
    display_names = [n for n in (product.brand or "").split("/") if n.strip()]
    brand_rows: list[tuple[tuple[str, ...], str]] = []
    for low in names[1:] or names:
        display = next((d.strip() for d in display_names if d.strip().casefold() == low), low)
        if _brand_ok(low, freq):
            brand_rows.append((phrase_key(low), display))
    if len(names) > 1 and _brand_ok(names[0], freq):
        brand_rows.append((phrase_key(names[0]), (product.brand or "").strip()))
    return Entry(
        keys=tuple(keys),
        paths=tuple(paths),
        levels=tuple(level_rows),
        pairs=tuple(pairs),
        brand=(product.brand or "").strip() or None,
        brand_names=tuple(brand_rows),
        words=tuple(_title_words(product, levels, names)),
        product_words=tuple(product_words),
    )


def _title_words(product: Product, levels: list[str], brands: list[str]) -> list[str]:
    """Frequent-title-word candidates: jieba words of the title, minus noise, numbers, the
    category's own names (and their pieces) and the brand's names."""
    title = normalise_text(product.title)
    level_low = [lv.casefold() for lv in levels]
    out: list[str] = []
    words: list[str] = []
    for run in _TITLE_RUNS.finditer(title):  # jieba for CJK only: it cuts "galaxy" into gala + xy
        chunk = run.group(0)
        words.extend(jieba_tokenizer().lcut(chunk, HMM=False) if HAS_CJK.match(chunk) else [chunk])
    for word in words:
        word = word.strip()
        if not word or word in out or word in _TITLE_NOISE or word in EN_STOPWORDS:
            continue
        if HAS_CJK.search(word):
            if len(word) < 2 and AUDIENCE_WORDS.get(word) is None:
                continue
            if not is_cjk(word):
                continue
        elif not (word.isascii() and word.isalpha() and len(word) >= 3):
            continue
        if any(word in lv or lv in word for lv in level_low) or word in brands:
            continue
        out.append(word)
    return out


# -- reference counting: how ``FacetIndex`` adds and subtracts entries ------------------------


def bump_table(table: dict[Any, Counter[str]], key: Any, item: str, sign: int) -> None:
    """Add ``sign`` to ``table[key][item]``: the counter is created on demand, and an item (and then
    the counter) is dropped when it reaches zero."""
    counter = table.get(key)
    if counter is None:
        if sign < 0:
            return
        counter = table[key] = Counter()
    counter[item] += sign
    if counter[item] <= 0:
        del counter[item]
        if not counter:
            del table[key]


def bump_count(counter: Counter, item: object, sign: int) -> None:
    """Counter increment that drops an item when it reaches zero (no zero/negative leftovers)."""
    n = counter[item] + sign
    if n > 0:
        counter[item] = n
    else:
        del counter[item]


def top(counter: Counter[str]) -> str:
    """The most common item (a spelling, a display name) of a non-empty counter."""
    return counter.most_common(1)[0][0]

"""The catalog's own facet vocabulary: which categories, brands, attribute values and title words
really occur, and how often, per category.

Why this exists: the rule parser (``assistant.rules``) and the query-expansion step must only
speak the catalog's language. A refinement chip such as "高腰 (23)" is useful only if 23 products
of the intended category really carry it; a brand is recognised in "自然堂面霜" only because the
catalog sells ``CHANDO/自然堂``. Everything here is counted from products, plus a few built-in
groups (colours, audience, materials, sizes) for catalogs whose attributes are sparse.

Matching works on *phrase tokens* (``phrase_tokens``): NFKC, case-folded, one token per CJK
character and one per Latin word (possessive "'s" dropped, plural folded to singular), so
"men's coat" meets the level "Coats" and "牛仔 裤" meets "牛仔裤" while "red" never matches inside
"shredded". Each vocabulary is a ``PhraseMatcher`` (a dict of token tuples, indexed by first token)
kept up to date by reference counts, so ``update``/``remove`` of one product cost about 0.15 ms
(mostly jieba over its title) and no rebuild is ever needed. Where a phrase could be read two ways
("清洁面膜": 洁面 or 面膜) the reading that falls on jieba word boundaries wins.

Per-category statistics are kept for every prefix path ("服饰", "服饰 > 女装", ...) and every level
name ("女装", "牛仔裤"), case-folded, so a caller may name a category either way. Expansion lists
are sorted once per category and cached until a product of that category changes.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from assistant.intent import Facet
from retrieval.filters import brand_names
from retrieval.tokenize import EN_STOPWORDS, _jieba
from shopassist.models import CATEGORY_SEP, Product, split_category

__all__ = [
    "AUDIENCE_WORDS",
    "COLOUR_WORDS",
    "MATERIAL_WORDS",
    "FacetIndex",
    "Mention",
    "PhraseMatcher",
    "builtin_group",
    "normalise_text",
    "phrase_key",
    "phrase_tokens",
    "says",
    "scan_builtins",
    "select_spans",
]

# ----------------------------------------------------------------------------------------------
# Phrase tokens
# ----------------------------------------------------------------------------------------------

_CJK_CLASS = "\u3400-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK_CLASS}]|[^\W_{_CJK_CLASS}]+(?:['’][^\W_{_CJK_CLASS}]+)*|[^\s]")
_CJK_CHAR = re.compile(rf"[{_CJK_CLASS}]")
_TITLE_RUNS = re.compile(rf"[{_CJK_CLASS}]+|[^\W_{_CJK_CLASS}]+")
_ONLY_CJK_RE = re.compile(rf"[{_CJK_CLASS}]+$")
_DEGREE_BEFORE = re.compile(r"(?:很|好|真|太|最|超|挺|蛮|非常|特别|十分|更|多么)$")
_HAS_CJK = re.compile(rf"[{_CJK_CLASS}]")
_HAS_LETTER = re.compile(rf"[^\W\d_{_CJK_CLASS}]")


def normalise_text(text: str) -> str:
    """NFKC (full-width to half-width) and case-folded: the one form every vocabulary uses.
    NFKC can change a string's length, so offsets always refer to this normalised text."""
    return unicodedata.normalize("NFKC", text or "").casefold()


def _fold_word(word: str) -> str:
    """Possessive and plural folding for Latin words, the same on both sides of a match
    ("men's" -> "men", "boots" -> "boot", "dresses" -> "dress", "ladies" -> "lady")."""
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    if len(word) <= 3 or not word.isascii() or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("s"):
        return word[:-1]
    return word


def phrase_tokens(text: str) -> list[tuple[str, int, int]]:
    """(token, start, end) over ``text``, which must already be ``normalise_text``-ed."""
    return [(_fold_word(m.group(0)), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def phrase_key(text: str) -> tuple[str, ...]:
    """The matching key of a phrase (normalised here, so any casing/width works)."""
    return tuple(t for t, _, _ in phrase_tokens(normalise_text(text)))


class PhraseMatcher:
    """Finds known phrases in a token sequence, longest first, never overlapping.

    Phrases are reference-counted so the same value added by many products is removed only
    when the last one goes. Lookups are indexed by first token, so a message costs a few dict
    probes per token whatever the vocabulary size.
    """

    __slots__ = ("_lengths", "_refs")

    def __init__(self, phrases: Iterable[str | tuple[str, ...]] = ()) -> None:
        self._refs: dict[tuple[str, ...], int] = {}
        self._lengths: dict[str, Counter[int]] = {}
        for p in phrases:
            self.add(p)

    def __contains__(self, key: object) -> bool:
        return key in self._refs

    def __len__(self) -> int:
        return len(self._refs)

    def add(self, phrase: str | tuple[str, ...], n: int = 1) -> None:
        key = phrase if isinstance(phrase, tuple) else phrase_key(phrase)
        if not key:
            return
        old = self._refs.get(key, 0)
        self._refs[key] = old + n
        if old == 0:
            self._lengths.setdefault(key[0], Counter())[len(key)] += 1

    def discard(self, phrase: str | tuple[str, ...], n: int = 1) -> None:
        key = phrase if isinstance(phrase, tuple) else phrase_key(phrase)
        old = self._refs.get(key, 0)
        if old == 0:
            return
        if old > n:
            self._refs[key] = old - n
            return
        del self._refs[key]
        lengths = self._lengths[key[0]]
        lengths[len(key)] -= 1
        if lengths[len(key)] <= 0:
            del lengths[len(key)]
        if not lengths:
            del self._lengths[key[0]]

    def find(
        self,
        tokens: Sequence[str],
        blocked: Sequence[bool] | None = None,
        bounds: set[int] | None = None,
    ) -> list[tuple[int, int]]:
        """Token spans [i, j) of known phrases, non-overlapping with each other and with
        ``blocked`` tokens, returned in text order. Longest first, then leftmost; when ``bounds``
        (token indices where a word starts, from jieba) is given, spans that start and end on
        word boundaries go first, so in "清洁面膜" 面膜 wins over 洁面."""
        return select_spans(self.candidates(tokens, blocked), len(tokens), bounds)

    def candidates(self, tokens: Sequence[str], blocked: Sequence[bool] | None = None) -> list[tuple[int, int]]:
        """Every span [i, j) of a known phrase clear of ``blocked`` tokens, overlaps included."""
        found: list[tuple[int, int]] = []
        n = len(tokens)
        for i, tok in enumerate(tokens):
            lengths = self._lengths.get(tok)
            if not lengths or (blocked is not None and blocked[i]):
                continue
            for length in lengths:
                j = i + length
                if j > n or tuple(tokens[i:j]) not in self._refs:
                    continue
                if blocked is not None and any(blocked[i:j]):
                    continue
                found.append((i, j))
        return found


def select_spans(found: list[tuple[int, int]], n: int, bounds: set[int] | None = None) -> list[tuple[int, int]]:
    """Non-overlapping spans, longest first (word-aligned ones before the rest), in text order."""
    if not found:
        return []
    if bounds is None:
        found = sorted(set(found), key=lambda s: (s[0] - s[1], s[0]))
    else:
        found = sorted(set(found), key=lambda s: (not (s[0] in bounds and s[1] in bounds), s[0] - s[1], s[0]))
    taken = [False] * n
    out: list[tuple[int, int]] = []
    for i, j in found:
        if any(taken[i:j]):
            continue
        for k in range(i, j):
            taken[k] = True
        out.append((i, j))
    out.sort()
    return out


# ----------------------------------------------------------------------------------------------
# Built-in groups: what a shopper says even when the catalog's attributes do not
# ----------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    """A word list written as one whitespace-separated string (easier to read and extend)."""
    return frozenset(text.split())


GROUP_COLOUR = "颜色"
GROUP_AUDIENCE = "适用对象"
GROUP_MATERIAL = "材质"
GROUP_SIZE = "尺码"
GROUP_BRAND = "品牌"

# Single-character colours (黑, 红) are left out on purpose: 黑头, 红米, 白酒, 绿茶 are not colours.
COLOUR_WORDS: frozenset[str] = _words(
    """黑色 白色 红色 蓝色 绿色 黄色 紫色 粉色 灰色 棕色 橙色 咖色 咖啡色 褐色 卡其色 卡其 米色 米白 米白色
    杏色 驼色 藏青 藏青色 藏蓝 藏蓝色 深蓝 深蓝色 浅蓝 浅蓝色 天蓝色 宝蓝色 酒红 酒红色 玫红 玫红色 粉红
    粉红色 银色 金色 香槟色 裸色 军绿 军绿色 墨绿 墨绿色 奶白 奶白色 象牙白 透明 彩色 迷彩 焦糖色 深灰 浅灰
    深色 浅色 纯黑 纯白 黑白 姜黄色 牛油果绿 雾霾蓝 燕麦色 奶茶色 玫瑰金 深棕 浅棕 枣红 大红 正红 black
    white red blue green yellow purple pink grey gray brown orange beige navy khaki silver gold ivory cream
    tan maroon burgundy teal turquoise olive charcoal multicolor multicolour camel lavender"""
)

# Audience words; 女/男 alone are included because "牛仔裤女" is how Taobao shoppers write it.
AUDIENCE_WORDS: dict[str, str] = {
    **dict.fromkeys(_words("女 女士 女款 女式 女生 女性 女人 女孩 女童 少女 孕妇 妈妈"), "f"),
    **dict.fromkeys(_words("男 男士 男款 男式 男生 男性 男人 男孩 男童 爸爸"), "m"),
    **dict.fromkeys(_words("儿童 童装 宝宝 婴儿 婴幼儿 孩子 小孩 学生 大童 小童 青少年"), "k"),
    **dict.fromkeys(_words("中老年 老人 情侣 成人"), "o"),
    **dict.fromkeys(_words("women woman womens lady ladies girl girls female"), "f"),
    **dict.fromkeys(_words("men man mens boy boys male gentleman"), "m"),
    **dict.fromkeys(_words("kid kids child children baby babies toddler toddlers teen teens junior"), "k"),
    **dict.fromkeys(_words("unisex adult adults couple"), "o"),
}

# Single-character materials (棉, 麻, 竹) are left out: they sit inside too many other words.
MATERIAL_WORDS: frozenset[str] = _words(
    """真皮 牛皮 羊皮 猪皮 皮革 羊毛 羊绒 纯棉 全棉 亚麻 棉麻 丝绸 真丝 涤纶 尼龙 聚酯纤维 莫代尔 羽绒 鹅绒
    鸭绒 牛仔布 帆布 灯芯绒 雪纺 蕾丝 针织 不锈钢 实木 玻璃 陶瓷 塑料 硅胶 合金 纯钛 铝合金 竹制 麂皮 绒面
    leather wool cashmere cotton linen silk polyester nylon denim canvas suede fleece velvet corduroy
    stainless steel wood wooden bamboo glass ceramic plastic silicone titanium aluminum aluminium metal
    rubber satin chiffon lace knit mesh"""
)

_SIZE_WORDS = _words("xs xl xxl xxxl 2xl 3xl 4xl 5xl 大码 小码 加大码 加肥 加大 petite plus-size")
_SIZE_PATTERN = re.compile(r"^(?:\d{2,3}(?:码|号)|[sml]码|[sml]号|size\s*\d+|(?:\d)?x{1,3}l)$")
_COLOUR_SUFFIX = re.compile(rf"^[{_CJK_CLASS}]{{1,4}}色$")
_GROUP_NAME_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"颜色|色系|colou?r", re.I), GROUP_COLOUR),
    (re.compile(r"材质|面料|材料|material|fabric", re.I), GROUP_MATERIAL),
    (re.compile(r"适用对象|性别|适用人群|gender|audience", re.I), GROUP_AUDIENCE),
    (re.compile(r"尺码|尺寸|码数|^size$", re.I), GROUP_SIZE),
)

_BUILTIN_GROUPS: dict[tuple[str, ...], tuple[str, str]] = {}
for _w in COLOUR_WORDS:
    _BUILTIN_GROUPS[phrase_key(_w)] = ("colour", GROUP_COLOUR)
for _w in MATERIAL_WORDS:
    _BUILTIN_GROUPS[phrase_key(_w)] = ("material", GROUP_MATERIAL)
for _w in _SIZE_WORDS:
    _BUILTIN_GROUPS[phrase_key(_w)] = ("size", GROUP_SIZE)
for _w in AUDIENCE_WORDS:
    _BUILTIN_GROUPS[phrase_key(_w)] = ("audience", GROUP_AUDIENCE)
_BUILTIN_MATCHER = PhraseMatcher(_BUILTIN_GROUPS)
_AUDIENCE_CLASS: dict[tuple[str, ...], str] = {phrase_key(w): c for w, c in AUDIENCE_WORDS.items()}
# Gendered category levels: 女装, 男鞋, 童装, "Women", "Men", "Kids".
_LEVEL_GENDER = (
    (re.compile(r"女|^women$|^woman$|^lady$|^girl$"), "f"),
    (re.compile(r"男|^men$|^man$|^boy$"), "m"),
    (re.compile(r"童|婴|^kid$|^child|^baby$"), "k"),
)


def canonical_group(attribute_name: str) -> str:
    """Attribute names that mean the same constraint share one group (颜色分类, color -> 颜色),
    so a "replace" can tell that 红色 swaps out 黑色 whatever the catalog called the field."""
    for pattern, group in _GROUP_NAME_RULES:
        if pattern.search(attribute_name):
            return group
    return attribute_name


def builtin_group(value: str) -> str | None:
    """The built-in group of a value (colours, audience, materials, sizes), or None."""
    key = phrase_key(value)
    hit = _BUILTIN_GROUPS.get(key)
    if hit:
        return hit[1]
    norm = normalise_text(value).strip()
    if _SIZE_PATTERN.match(norm):
        return GROUP_SIZE
    if _COLOUR_SUFFIX.match(norm) and norm not in ("特色", "出色", "本色", "角色", "好色", "特别色"):
        return GROUP_COLOUR
    return None


def audience_class(value: str) -> str | None:
    """'f', 'm', 'k' (children) or 'o' for an audience word, else None."""
    return _AUDIENCE_CLASS.get(phrase_key(value))


# ----------------------------------------------------------------------------------------------
# Mentions: what a scan of a message finds
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mention:
    """A known phrase found in a normalised message.

    ``kind`` is one of: category (a level name), brand, value (a catalog attribute value),
    product (a catalog product word), colour, audience, material, size (built-in groups).
    ``value`` is the catalog's own spelling (brand name, level name, attribute value);
    ``start``/``end`` are offsets in the normalised text.
    """

    kind: str
    start: int
    end: int
    text: str
    value: str
    group: str | None = None


def _tokens_and_blocked(text: str) -> tuple[list[tuple[str, int, int]], list[str]]:
    toks = phrase_tokens(text)
    return toks, [t for t, _, _ in toks]


def _word_bounds(text: str, toks: list[tuple[str, int, int]]) -> set[int] | None:
    """Token indices where a jieba word starts (plus the end), or None for text without CJK,
    where every token is a word anyway."""
    if not _HAS_CJK.search(text):
        return None
    starts: set[int] = set()
    pos = 0
    for word in _jieba().lcut(text, HMM=False):
        starts.add(pos)
        pos += len(word)
    starts.add(pos)
    out = {i for i, (_, start, _) in enumerate(toks) if start in starts}
    out.add(len(toks))
    return out


def scan_builtins(text: str, taken: Sequence[bool] | None = None) -> list[Mention]:
    """Built-in colour/audience/material/size words in a normalised text."""
    toks, words = _tokens_and_blocked(text)
    return _scan_builtin_tokens(text, toks, words, list(taken) if taken is not None else [False] * len(toks))


def _scan_builtin_tokens(
    text: str, toks: list[tuple[str, int, int]], words: list[str], taken: list[bool]
) -> list[Mention]:
    out: list[Mention] = []
    for i, j in _BUILTIN_MATCHER.find(words, taken):
        kind, group = _BUILTIN_GROUPS[tuple(words[i:j])]
        start, end = toks[i][1], toks[j - 1][2]
        surface = text[start:end]
        out.append(Mention(kind, start, end, surface, _display_surface(surface), group))
        for k in range(i, j):
            taken[k] = True
    # sizes written with digits (38码, xl) are patterns, not a word list
    for k, (tok, start, end) in enumerate(toks):
        if taken[k]:
            continue
        surface = tok
        if k + 1 < len(toks) and toks[k + 1][0] in ("码", "号") and tok.isdigit() and 2 <= len(tok) <= 3:
            surface = text[start : toks[k + 1][2]]
            end = toks[k + 1][2]
            taken[k + 1] = True
        elif not _SIZE_PATTERN.match(tok):
            continue
        taken[k] = True
        out.append(Mention("size", start, end, surface, surface, GROUP_SIZE))
    out.sort(key=lambda m: m.start)
    return out


def _display_surface(surface: str) -> str:
    """Possessives dropped from a surface word ("men's" -> "men") so it reads as a value."""
    return re.sub(r"['’]s\b", "", surface).strip()


# ----------------------------------------------------------------------------------------------
# Filters on what counts as a facet
# ----------------------------------------------------------------------------------------------

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
_STOP_VALUES = _words(
    """常规 其他 其它 通用 无 否 是 有 图片色 如图 见详情 详见详情 均码 默认 不详 未知 见描述 以实物为准 other
    others none n/a na yes no true false default standard unknown 其他/other"""
)
_TRUE_VALUES = _words("是 有 yes true y 1")
_FALSE_VALUES = _words("否 无 no false n 0")
_GENERIC_LEVELS = _words("其他 其它 全部 更多 未分类 other others misc miscellaneous more all uncategorized")
_GENERIC_BRANDS = _words("无品牌 无 其他 其它 不详 通用 other none unbranded generic oem no brand")
# Values that read as noise in a suggestion list (years, percentages, numeric ranges).
_NOISY_EXPANSION = re.compile(r"(?:19|20)\d\d|%|\d\s*[-~至到]\s*\d|^\d+(?:\.\d+)?$")
_TITLE_NOISE = _words(
    """新款 正品 包邮 官方 旗舰店 旗舰 专柜 同款 热卖 爆款 特价 促销 清仓 现货 直营 授权 代购 专卖 专营 国行
    全新 年新款 秋冬新款 春夏新款 新品 品牌 厂家 批发 直销 限时 抢购 正版 顺丰 送礼 礼物 礼盒装 一件 代发
    免邮 店铺 网红 抖音 同款 款式 产品 商品 百搭 潮流 时尚 ins new hot sale free shipping authentic original
    genuine official pack set pcs piece pieces item with for and the"""
)
_MAX_VALUE_CHARS = 20
_MAX_PER_NAME = 3  # suggestion diversity: a list of eight capacities helps nobody
# An attribute value on fewer than this share of the category's products (SPF15 on 3 of 300 face
# creams) is listed after the frequent title words (保湿 on 150), not before them.
_STRONG_SHARE = 0.03
_CACHE_ATTRS = 300
_CACHE_WORDS = 150
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
    if _HAS_CJK.search(v):
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
    if not low or low in _GENERIC_BRANDS or low in EN_STOPWORDS or phrase_key(low) in _BUILTIN_GROUPS:
        return False
    if _HAS_CJK.search(low):
        return len(low) >= 2 and freq.get(low, 0) <= _COMMON_WORD_FREQ
    return len(low) >= 2 and bool(_HAS_LETTER.search(low))


# ----------------------------------------------------------------------------------------------
# The index
# ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Stats:
    size: int = 0
    attrs: Counter[tuple[str, str]] = field(default_factory=Counter)
    brands: Counter[str] = field(default_factory=Counter)
    words: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Entry:
    """What one product contributed, kept so ``remove`` subtracts exactly that."""

    keys: tuple[str, ...]
    paths: tuple[str, ...]
    levels: tuple[tuple[tuple[str, ...], str, str], ...]  # (level key, level display, path ending there)
    pairs: tuple[tuple[str, str], ...]
    brand: str | None
    brand_names: tuple[tuple[tuple[str, ...], str], ...]
    words: tuple[str, ...]
    product_words: tuple[str, ...]


class _Ranked(NamedTuple):
    path: str
    score: float
    leaf: str  # the path's last level name
    contradicts: bool  # its gendered level disagrees with an audience word in the text
    modifier_only: bool  # only built-in modifier words (儿童, 不锈钢) of the text name its levels


@dataclass(slots=True)
class _Cached:
    attrs: list[tuple[str, str, int]]
    words: list[tuple[str, int]]
    brands: list[tuple[str, int]]
    size: int


class FacetIndex:
    """Counts of the catalog's facets, per category, and the vocabularies built from them.

    Build once with ``from_products`` (about 2 s for 10k products on 2 cores, mostly jieba over
    titles) and keep it in step with ``update``/``remove``. Read methods are cheap: expansions
    are cached per category, matching is a few dict probes per token.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._stats: dict[str, _Stats] = {}
        self._cache: dict[str, _Cached] = {}
        self._paths: Counter[str] = Counter()
        self._path_case: dict[str, Counter[str]] = {}
        self._level_paths: dict[tuple[str, ...], Counter[str]] = {}
        self._level_display: dict[tuple[str, ...], Counter[str]] = {}
        self._brand_display: dict[tuple[str, ...], Counter[str]] = {}
        self._brand_full: Counter[str] = Counter()
        self._value_names: dict[tuple[str, ...], Counter[str]] = {}
        self._value_display: dict[tuple[str, ...], Counter[str]] = {}
        self._product_words: dict[tuple[str, ...], Counter[str]] = {}
        self._levels_m = PhraseMatcher()
        self._brands_m = PhraseMatcher()
        self._values_m = PhraseMatcher()
        self._products_m = PhraseMatcher()
        self._freq: dict[str, int] = _jieba().FREQ

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_products(cls, products: Iterable[Product]) -> FacetIndex:
        index = cls()
        for product in products:
            index.update(product)
        return index

    def __len__(self) -> int:
        return len(self._entries)

    def update(self, product: Product) -> None:
        """Add a product, or replace the version already counted under its id."""
        if product.id in self._entries:
            self.remove(product.id)
        entry = self._entry(product)
        self._entries[product.id] = entry
        self._apply(entry, +1)

    def remove(self, product: Product | str) -> bool:
        """Forget a product (by object or id); False when it was not counted."""
        pid = product if isinstance(product, str) else product.id
        entry = self._entries.pop(pid, None)
        if entry is None:
            return False
        self._apply(entry, -1)
        return True

    def _entry(self, product: Product) -> _Entry:
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
                if not key or (len(key) == 1 and _CJK_CHAR.fullmatch(key[0])) or (key[0].isascii() and len(low) < 3):
                    continue  # one CJK character (包, 鞋) or two letters sit inside too many words
                level_rows.append((key, level, prefix))
        pairs, product_words = _facet_pairs(product)
        names = brand_names(product.brand)
        display_names = [n for n in (product.brand or "").split("/") if n.strip()]
        brand_rows: list[tuple[tuple[str, ...], str]] = []
        for low in names[1:] or names:
            display = next((d.strip() for d in display_names if d.strip().casefold() == low), low)
            if _brand_ok(low, self._freq):
                brand_rows.append((phrase_key(low), display))
        if len(names) > 1 and _brand_ok(names[0], self._freq):
            brand_rows.append((phrase_key(names[0]), (product.brand or "").strip()))
        return _Entry(
            keys=tuple(keys),
            paths=tuple(paths),
            levels=tuple(level_rows),
            pairs=tuple(pairs),
            brand=(product.brand or "").strip() or None,
            brand_names=tuple(brand_rows),
            words=tuple(self._title_words(product, levels, names)),
            product_words=tuple(product_words),
        )

    def _title_words(self, product: Product, levels: list[str], brands: list[str]) -> list[str]:
        """Frequent-title-word candidates: jieba words of the title, minus noise, numbers, the
        category's own names (and their pieces) and the brand's names."""
        title = normalise_text(product.title)
        level_low = [lv.casefold() for lv in levels]
        out: list[str] = []
        words: list[str] = []
        for run in _TITLE_RUNS.finditer(title):  # jieba for CJK only: it cuts "galaxy" into gala + xy
            chunk = run.group(0)
            words.extend(_jieba().lcut(chunk, HMM=False) if _HAS_CJK.match(chunk) else [chunk])
        for word in words:
            word = word.strip()
            if not word or word in out or word in _TITLE_NOISE or word in EN_STOPWORDS:
                continue
            if _HAS_CJK.search(word):
                if len(word) < 2 and AUDIENCE_WORDS.get(word) is None:
                    continue
                if not all(_CJK_CHAR.match(ch) for ch in word):
                    continue
            elif not (word.isascii() and word.isalpha() and len(word) >= 3):
                continue
            if any(word in lv or lv in word for lv in level_low) or word in brands:
                continue
            out.append(word)
        return out

    def _apply(self, e: _Entry, sign: int) -> None:
        for key in e.keys:
            self._cache.pop(key, None)
            st = self._stats.get(key)
            if st is None:
                st = self._stats[key] = _Stats()
            st.size += sign
            if st.size <= 0:
                del self._stats[key]
                continue
            for pair in e.pairs:
                _count(st.attrs, pair, sign)
            if e.brand:
                _count(st.brands, e.brand, sign)
            for w in e.words:
                _count(st.words, w, sign)
        for lkey, display, path in e.levels:
            _bump(self._level_paths, lkey, path, sign)
            _bump(self._level_display, lkey, display, sign)
            self._matcher_bump(self._levels_m, lkey, sign)
        for path in e.paths:
            _count(self._paths, path, sign)
            _bump(self._path_case, path.casefold(), path, sign)
        if e.brand:
            _count(self._brand_full, e.brand, sign)
        for bkey, display in e.brand_names:
            _bump(self._brand_display, bkey, display, sign)
            self._matcher_bump(self._brands_m, bkey, sign)
        for name, value in e.pairs:
            vkey = phrase_key(value)
            _bump(self._value_names, vkey, name, sign)
            _bump(self._value_display, vkey, value, sign)
            self._matcher_bump(self._values_m, vkey, sign)
        for word in e.product_words:
            pkey = phrase_key(word)
            _bump(self._product_words, pkey, word, sign)
            self._matcher_bump(self._products_m, pkey, sign)

    @staticmethod
    def _matcher_bump(matcher: PhraseMatcher, key: tuple[str, ...], sign: int) -> None:
        if sign > 0:
            matcher.add(key)
        else:
            matcher.discard(key)

    # -- vocabularies ------------------------------------------------------------------------
    def brand_names(self) -> list[str]:
        """Every recognisable brand name (the '/'-separated names and full strings)."""
        return sorted(_top(c) for c in self._brand_display.values())

    def brands(self) -> Counter[str]:
        """Full brand strings with product counts."""
        return Counter(self._brand_full)

    def category_paths(self) -> Counter[str]:
        """Every category path and prefix with product counts."""
        return Counter(self._paths)

    def category_levels(self) -> list[str]:
        """Every recognisable category level name."""
        return sorted(_top(c) for c in self._level_display.values())

    def attribute_values(self) -> dict[str, list[str]]:
        """Attribute value -> the attribute names it occurs under (most frequent first)."""
        return {_top(self._value_display[k]): [n for n, _ in c.most_common()] for k, c in self._value_names.items()}

    def colour_words(self) -> set[str]:
        """Built-in colour words plus the catalog's values of colour attributes."""
        out = set(COLOUR_WORDS)
        for key, names in self._value_names.items():
            if any(canonical_group(n) == GROUP_COLOUR for n in names):
                out.add(_top(self._value_display[key]))
        return out

    @staticmethod
    def audience_words() -> dict[str, str]:
        """Audience word -> class ('f', 'm', 'k' children, 'o' other)."""
        return dict(AUDIENCE_WORDS)

    def is_brand(self, name: str) -> bool:
        return phrase_key(name) in self._brands_m

    def brand_display(self, name: str) -> str | None:
        """The catalog's spelling of a brand name ('chando' -> 'CHANDO'), or None."""
        c = self._brand_display.get(phrase_key(name))
        return _top(c) if c else None

    def is_product_word(self, word: str) -> bool:
        key = phrase_key(word)
        return key in self._products_m or key in self._levels_m

    # -- scanning ----------------------------------------------------------------------------
    def scan(self, text: str) -> list[Mention]:
        """Known phrases in a normalised text, in text order. Category levels are matched first,
        then brands, product words, attribute values and built-in groups, each pass only in what
        the earlier ones left, so "女装" is a category and not the audience word 女, and "羽绒服"
        a product rather than the material 羽绒."""
        toks, words = _tokens_and_blocked(text)
        bounds = _word_bounds(text, toks)
        taken = [False] * len(toks)
        out: list[Mention] = []
        passes: tuple[tuple[str, PhraseMatcher], ...] = (
            ("category", self._levels_m),
            ("brand", self._brands_m),
            ("product", self._products_m),
        )
        for kind, matcher in passes:
            for i, j in matcher.find(words, taken, bounds):
                key = tuple(words[i:j])
                start, end = toks[i][1], toks[j - 1][2]
                group: str | None = None
                if kind == "category":
                    value = _top(self._level_display[key])
                elif kind == "brand":
                    if _DEGREE_BEFORE.search(text, 0, start) and _ONLY_CJK_RE.match(text[start:end]):
                        continue  # 很美的裙子: an adverb before it makes 美的 a word, not the brand
                    value = _top(self._brand_display[key])
                    group = GROUP_BRAND
                else:
                    value = _top(self._product_words[key])
                out.append(Mention(kind, start, end, text[start:end], value, group))
                for k in range(i, j):
                    taken[k] = True
        # catalog values and built-in words compete on length: 女士 (built-in) beats the catalog's
        # 女, the catalog's 雾霾蓝色 beats the built-in 蓝色
        spans = self._values_m.candidates(words, taken) + _BUILTIN_MATCHER.candidates(words, taken)
        for i, j in select_spans(spans, len(words), bounds):
            key = tuple(words[i:j])
            start, end = toks[i][1], toks[j - 1][2]
            if key in self._values_m:
                value = _top(self._value_display[key])
                out.append(Mention("value", start, end, text[start:end], value, self.facet_group(value)))
            else:
                kind, group = _BUILTIN_GROUPS[key]
                out.append(Mention(kind, start, end, text[start:end], _display_surface(text[start:end]), group))
            for k in range(i, j):
                taken[k] = True
        out.extend(_scan_builtin_tokens(text, toks, words, taken))
        out.sort(key=lambda m: m.start)
        return out

    # -- categories --------------------------------------------------------------------------
    def categories_for(self, text: str) -> list[str]:
        """Category paths whose level names occur in ``text``, best first.

        A path is a candidate when its *last* level is named in the text; it scores the
        characters of every level name of the path found in the text (so "女装大衣" prefers
        "服饰 > 女装 > 大衣" to "服饰 > 女装"), plus half a point when its gendered level
        (女装, Men) agrees with an audience word in the text and minus half when it contradicts
        one ("牛仔裤女" -> the 女装 jeans before the 男装 ones). Ties go to the larger category.
        """
        exact = self._known_path(text)
        ranked = [r.path for r in self._rank_categories(normalise_text(text))]
        if exact:  # a path is its own best answer
            ranked = [exact] + [p for p in ranked if p != exact]
        return ranked

    def _known_path(self, text: str) -> str | None:
        """The catalog's spelling of ``text`` when it is a category path (any case), else None."""
        if not text or ">" not in text:
            return None
        spelled = self._path_case.get(CATEGORY_SEP.join(split_category(text)).casefold())
        return _top(spelled) if spelled else None

    def _rank_categories(self, norm: str) -> list[_Ranked]:
        """Candidate paths for a normalised text, best first."""
        toks, words = _tokens_and_blocked(norm)
        spans = self._levels_m.find(words, None, _word_bounds(norm, toks))
        if not spans:
            return []
        matched: dict[tuple[str, ...], float] = {}
        last_end: dict[tuple[str, ...], int] = {}
        for i, j in spans:
            key = tuple(words[i:j])
            weight = float(toks[j - 1][2] - toks[i][1])
            if key in _BUILTIN_GROUPS:
                weight /= 2  # 宝宝, 儿童, 女装's 女: a level that is also a modifier is weaker evidence
            matched[key] = max(matched.get(key, 0.0), weight)
            last_end[key] = toks[j - 1][2]
        genders = {
            c for m in _scan_builtin_tokens(norm, toks, words, [False] * len(toks)) if (c := audience_class(m.text))
        }
        scored: dict[str, tuple[float, int, _Ranked]] = {}
        for key in matched:
            for path in self._level_paths.get(key, ()):
                if path in scored:
                    continue
                levels = split_category(path)
                score = 0.0
                path_genders: set[str] = set()
                modifier_only = True
                for lv in levels:
                    names = [lv] + ([p for p in lv.split("/") if p.strip()] if "/" in lv else [])
                    hits = [k for k in map(phrase_key, names) if k in matched]
                    score += max((matched[k] for k in hits), default=0)
                    modifier_only = modifier_only and all(k in _BUILTIN_GROUPS for k in hits)
                    for pattern, g in _LEVEL_GENDER:
                        if pattern.search(_fold_word(lv.casefold())):
                            path_genders.add(g)
                contradicts = bool(genders and path_genders and not genders & path_genders)
                if genders and path_genders:
                    score += -0.5 if contradicts else 0.5
                scored[path] = (score, last_end[key], _Ranked(path, score, levels[-1], contradicts, modifier_only))
        # ties: the later mention (Chinese puts the head noun last: 宝宝奶粉 is milk powder), then
        # the larger category
        ranked = sorted(scored.items(), key=lambda kv: (-kv[1][0], -kv[1][1], -self._paths.get(kv[0], 0), kv[0]))
        return [r for _, (_, _, r) in ranked]

    def best_category(self, text: str) -> str | None:
        """The category to search in: the single best path, or its level name when two paths tie
        (大衣 under 女装 and 男装 alike) or when the best path contradicts the audience in the
        text; the category filter matches a level name in any path. None when the text names
        no category, or names one only with a modifier word (儿童, 不锈钢)."""
        exact = self._known_path(text)
        if exact:
            return exact
        # a level that is only a modifier word (儿童, 不锈钢) does not make the category on its
        # own: "匡威儿童鞋" is shoes for children, not the catalog's 母婴玩具 > 儿童
        ranked = [r for r in self._rank_categories(normalise_text(text)) if not r.modifier_only]
        if not ranked:
            return None
        best = ranked[0]
        if best.contradicts or (len(ranked) > 1 and ranked[1].score == best.score):
            return best.leaf  # "women coats" where only Men > Coats exists: the level, not the wrong path
        return best.path

    # -- expansions --------------------------------------------------------------------------
    def _resolve(self, category: str | None, query: str) -> str | None:
        if category:
            key = CATEGORY_SEP.join(split_category(category)).casefold()
            if key in self._stats:
                return key
            best = self.best_category(category)
            if best:
                return best.casefold()
        best = self.best_category(query) if query else None
        return best.casefold() if best else None

    def _cached(self, key: str) -> _Cached:
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        st = self._stats[key]
        per_name: Counter[str] = Counter()
        distinct: Counter[str] = Counter()
        for (name, _), n in st.attrs.items():
            per_name[name] += n
            distinct[name] += 1
        # identifier-like attributes (a different value on nearly every product) are not facets
        skip = {n for n, total in per_name.items() if total >= 8 and distinct[n] / total > 0.8}
        attrs = [
            (name, value, n)
            for (name, value), n in st.attrs.most_common()
            if name not in skip and not _NOISY_EXPANSION.search(value)
        ][:_CACHE_ATTRS]
        words = [(w, n) for w, n in st.words.most_common(_CACHE_WORDS) if n >= 2]
        hit = _Cached(attrs, words, st.brands.most_common(50), st.size)
        self._cache[key] = hit
        return hit

    def expansions(
        self, category: str | None, query: str = "", exclude: Iterable[str] = (), limit: int = 8
    ) -> list[Facet]:
        """Refinements that really occur in the intended category, most frequent first:
        attribute values first (at most three per attribute, so one field cannot fill the list),
        then frequent title words (``name='title'``, on two products or more), then attribute
        values too rare to lead (under 3 % of the category); skipping what the query already
        says, what is excluded, and the category's own names.

        ``category`` may be a path, a prefix or a level name; when it is None or unknown the
        category is taken from the query. No category, no expansions: suggestions from the
        whole catalog would be noise.
        """
        if limit <= 0:
            return []
        key = self._resolve(category, query)
        if key is None or key not in self._stats:
            return []
        data = self._cached(key)
        min_count = 2 if data.size >= 10 else 1
        query_norm = normalise_text(query)
        query_key = phrase_key(query_norm)
        avoid = [normalise_text(x) for x in exclude if x and x.strip()]
        avoid += [lv.casefold() for lv in split_category(category or "")]
        avoid += [lv.casefold() for lv in key.split(" > ")]
        seen: set[str] = set()
        # an audience that contradicts the query's ("女士大衣" -> not 男) is no refinement
        wanted = {c for m in scan_builtins(query_norm) if (c := audience_class(m.text)) and c in "fm"}

        def usable(value: str) -> bool:
            low = normalise_text(value)
            if low in seen or any(low == a or (a and a in low) or low in a for a in avoid):
                return False
            other = audience_class(low)
            if wanted and other in ("f", "m") and other not in wanted:
                return False
            return not _mentions(query_norm, query_key, low)

        out: list[Facet] = []
        per_name: Counter[str] = Counter()
        strong = max(min_count, math.ceil(_STRONG_SHARE * data.size))

        def take_attrs(lo: int, hi: float) -> None:
            for name, value, n in data.attrs:
                if n < lo or len(out) >= limit:
                    break
                if n >= hi or per_name[name] >= _MAX_PER_NAME or not usable(value):
                    continue
                per_name[name] += 1
                seen.add(normalise_text(value))
                out.append(Facet(name=name, value=value, count=n))

        take_attrs(strong, math.inf)
        for word, n in data.words:
            if len(out) >= limit:
                break
            if not usable(word):
                continue
            seen.add(word)
            out.append(Facet(name="title", value=word, count=n))
        take_attrs(min_count, strong)
        return out

    def top_brands(self, category: str | None, query: str = "", limit: int = 8) -> list[Facet]:
        """The most common brands of the intended category (``name='brand'``)."""
        key = self._resolve(category, query)
        if key is None or key not in self._stats:
            return []
        return [Facet(name="brand", value=b, count=n) for b, n in self._cached(key).brands[:limit]]

    def category_size(self, category: str) -> int:
        """Products under a path, prefix or level name (0 when unknown)."""
        st = self._stats.get(CATEGORY_SEP.join(split_category(category)).casefold())
        return st.size if st else 0

    # -- groups ------------------------------------------------------------------------------
    def facet_group(self, value: str) -> str | None:
        """The constraint a value belongs to, so a "replace" knows what it swaps: colours ->
        颜色, audience words -> 适用对象, sizes -> 尺码, materials -> 材质 (built-in, the same for
        Chinese and English words), brands -> 品牌, else the catalog attribute name the value
        occurs under most often (canonicalised: 颜色分类 -> 颜色). None when unknown."""
        if not value or not value.strip():
            return None
        group = builtin_group(value)
        if group:
            return group
        key = phrase_key(value)
        names = self._value_names.get(key)
        if names:
            return canonical_group(names.most_common(1)[0][0])
        if key in self._brands_m:
            return GROUP_BRAND
        return None


def _bump(table: dict[Any, Counter[str]], key: Any, item: str, sign: int) -> None:
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


def _count(counter: Counter, item: object, sign: int) -> None:
    """Counter increment that drops an item when it reaches zero (no zero/negative leftovers)."""
    n = counter[item] + sign
    if n > 0:
        counter[item] = n
    else:
        del counter[item]


def _top(counter: Counter[str]) -> str:
    return counter.most_common(1)[0][0]


def says(text: str, value: str) -> bool:
    """Whether ``text`` already says ``value`` (substring, or whole folded words: "men's coat"
    says "Coats")."""
    norm = normalise_text(text)
    return _mentions(norm, phrase_key(norm), normalise_text(value))


def _mentions(query_norm: str, query_key: tuple[str, ...], value_norm: str) -> bool:
    """Whether the query already says the value, as a run of phrase tokens (so any substring for
    CJK, whole folded words for Latin: "red" is not in "shredded")."""
    if not query_norm or not value_norm:
        return False
    vkey = phrase_key(value_norm)
    n = len(vkey)
    return any(query_key[i : i + n] == vkey for i in range(len(query_key) - n + 1)) if n else False

"""The deterministic intent parser: rules over the catalog's own vocabulary.

Why rules when there is an LLM: the rules answer in well under a millisecond, so the first results can
be on screen before the LLM has finished, and they are the fallback whenever the LLM's JSON is
invalid. They are written to be *safe* more than clever: a constraint is only extracted when a
pattern or the catalog vocabulary (``FacetIndex``) says so, and anything unrecognised stays in the
free-text ``query`` where retrieval can still use it. ``parse_rules`` never raises.

What comes out: ``category`` is a catalog path ("服饰 > 女装 > 牛仔裤") when one path fits best, a
catalog level name ("牛仔裤") when several fit equally, or, when the catalog names none, the
product word of the shipped lexicon ("羽绒服"), which the caller should treat as a soft hint.
``required`` holds catalog attribute values and built-in colour/audience/material/size words;
``query`` is what is left of the message without prices, negated phrases and fillers.

How a message is read (all on the NFKC, case-folded text; each step blanks what it used, so
later steps cannot read the same words twice):

1. references to shown products (第二个, the second one, #2, 最后一个, compare 1 and 3);
2. prices (200以内, 100-200元, under $100, between 20 and 50, 200左右 = ±20%), then sort phrases
   (最便宜, best rated) and relative price (便宜点, cheaper);
3. negations (不要X, 别X, 不含X, 非X, 除了X, 没有X的, not/no/without/except X): X is cut at
   punctuation or a clause word, split on 和/或/、/or, and each piece is classified with the
   catalog vocabulary (a brand goes to ``exclude_brands``; a product word at its end stays
   positive, so "不要破洞牛仔裤" excludes 破洞 and still searches 牛仔裤);
4. what is left is scanned: category levels, then brands, catalog product words, and attribute
   values competing with built-in colour / audience / material / size words (the longer phrase,
   on jieba word boundaries, wins), then (with jieba) the shipped product and brand lexicons;
5. the relation to the conversation (pick / compare / replace / new / refine) and the query.

Deliberate limits: the shipped NER brand lexicon is full of ordinary words (加绒, 纯皮, this,
find), so only its CJK entries of three or more characters that are rare in general Chinese and
are not product words are used; two-character and Latin brands come from the catalog only.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from assistant.facets import (
    AUDIENCE_WORDS,
    FacetIndex,
    Mention,
    builtin_group,
    normalise_text,
    says,
    scan_builtins,
)
from assistant.intent import PriceChange, Relation, ShoppingIntent, Sort
from retrieval.tokenize import EN_STOPWORDS, _jieba, lexicon_words
from shopassist.models import detect_language, split_category

__all__ = ["parse_rules"]

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 500  # longer messages are cut: a shopping request never needs more, and it bounds the time
APPROX_BAND = 0.2  # "200左右" / "around $50" means ±20 %
BLANK = "\x00"  # what a used span is replaced with: a token no pattern or vocabulary matches

_CJK = "\u3400-\u9fff\uf900-\ufaff"
_HAS_CJK = re.compile(f"[{_CJK}]")
_ONLY_CJK = re.compile(f"^[{_CJK}]+$")

# ----------------------------------------------------------------------------------------------
# Numbers
# ----------------------------------------------------------------------------------------------

_ZH_DIGITS = dict(zip("零〇一二两三四五六七八九", (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_ZH_NUM = "[零〇一二两三四五六七八九十百千万]+"
# A number: digits (1.5, 2k, 3千, 2万) or Chinese numerals (两百, 三百五). ``(?![\d.])`` stops the
# engine from backtracking into the digits ("100ml" must not become "10" + "0ml").
_NUM = rf"(?:\d+(?:\.\d+)?(?![\d.])(?:\s*(?:k|千|万)(?![a-z]))?|{_ZH_NUM})"
_EN_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "1st": 1,
    "2nd": 2,
    "3rd": 3,
    "4th": 4,
    "5th": 5,
    "6th": 6,
    "7th": 7,
    "8th": 8,
    "9th": 9,
    "10th": 10,
}
_EN_SMALL = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def _zh_int(text: str) -> int | None:
    """Chinese numerals to an integer: 二 2, 十二 12, 两百 200, 三百五 350 (a trailing digit after
    a unit is a tenth of it, as people say prices), 一千五 1500, 两万 20000."""
    if not text:
        return None
    total = 0
    section = 0
    digit: int | None = None
    last_unit = 1
    for ch in text:
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
        elif ch in _ZH_UNITS:
            unit = _ZH_UNITS[ch]
            if unit == 10000:
                total = (total + section + (digit or 0)) * unit
                section = 0
            else:
                section += (1 if digit is None else digit) * unit
            digit = None
            last_unit = unit
        else:
            return None
    if digit is not None:
        section += digit * (last_unit // 10 if last_unit >= 100 else 1)
    return total + section


def _number(text: str) -> float | None:
    """'1.5k' -> 1500, '3千' -> 3000, '2万' -> 20000, '两百' -> 200; None when not a number."""
    t = text.strip().replace(" ", "")
    if not t:
        return None
    mult = 1.0
    if t[-1] in "k千" and len(t) > 1 and t[0].isdigit():
        mult, t = 1000.0, t[:-1]
    elif t[-1] == "万" and len(t) > 1 and t[0].isdigit():
        mult, t = 10000.0, t[:-1]
    try:
        value = float(t) * mult
    except ValueError:
        n = _zh_int(t)
        value = float(n) if n is not None else math.nan
    if not math.isfinite(value) or value < 0 or value > 1e9:
        return None
    return value


def _words(text: str) -> frozenset[str]:
    """A word list written as one whitespace-separated string."""
    return frozenset(text.split())


def _ordinal(text: str) -> int | None:
    t = text.strip()
    if t.isdigit():
        return int(t)
    if t in _EN_ORDINALS:
        return _EN_ORDINALS[t]
    if t in _EN_SMALL:
        return _EN_SMALL[t]
    return _zh_int(t)


# ----------------------------------------------------------------------------------------------
# Patterns (compiled once)
# ----------------------------------------------------------------------------------------------

_CUR_PRE = r"(?:us\$|[¥$€£]|rmb|usd|cny)"
_CUR_POST = r"(?:块钱|块|元|rmb|人民币|美元|美金|刀|dollars?|bucks?|usd|cny|euros?|eur|gbp)"
_UNITS_EN = (
    r"kg|g|cm|mm|m|ml|l|w|v|mah|gb|tb|inch|inches|in|lbs?|pounds?|oz|ft|feet|foot|hours?|days?|years?|"
    r"months?|weeks?|people|pcs|pieces?|items?|mins?|minutes?|percent|stars?|pack|packs|ones?"
)
_UNITS_ZH = (
    r"个|件|条|双|只|天|年|月|周|岁|小时|分钟|斤|公斤|克|千克|米|厘米|毫米|码|号|寸|英寸|毫升|升|瓦|伏|度|人|层|张|本|瓶|"
    r"包|盒|片|支|粒|袋|次|倍|寸|星|款|套|台|部|位"
)
# what may not follow a price number: a unit turns "3天以内" or "under 5 kg" into something else
_NOT_UNIT = rf"(?!\s*(?:{_UNITS_EN})\b)(?!\s*(?:{_UNITS_ZH}))(?![a-z0-9%])"
_AMOUNT = rf"(?:{_CUR_PRE}\s*)?(?P<{{n}}>{_NUM})\s*(?:{_CUR_POST})?"


def _amount(name: str) -> str:
    return _AMOUNT.replace("{n}", name)


_PRICE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "range",
        re.compile(
            rf"(?:between|从|在|介于)\s*{_amount('a')}\s*(?:and|到|至|和|-|–|~)\s*{_amount('b')}{_NOT_UNIT}"
            r"\s*(?:之间|以内|范围)?"
        ),
    ),
    (
        "range",
        re.compile(
            rf"(?<![a-z\d.])(?:from\s+)?{_amount('a')}\s*(?:-|–|~|to|到|至)\s*{_amount('b')}{_NOT_UNIT}"
            r"\s*(?:之间|以内|范围)?"
        ),
    ),
    (
        "approx",
        re.compile(
            rf"(?:(?:大概|大约|差不多|预算|价格|价位|价钱)\s*(?:是|在|为)?\s*)?{_amount('a')}{_NOT_UNIT}\s*(?:左右|上下|ish)"
        ),
    ),
    (
        "max",
        re.compile(
            r"(?:under|below|less than|lower than|cheaper than|no more than|not more than|not over|not above|"
            r"at most|up to|max(?:imum)?(?: of)?|within|budget(?: is| of)?|<=?|≤|不超过|不高于|不大于|不多于|"
            r"(?<!不)低于|少于|小于|不到|最多|最高|顶多|控制在|预算(?:是|在|为|只有|有)?|价格在|价位在|价钱在)"
            rf"\s*{_amount('a')}{_NOT_UNIT}\s*(?:以内|以下|之内|内)?"
        ),
    ),
    (
        "min",
        re.compile(
            r"(?:over|above|more than|greater than|higher than|at least|min(?:imum)?(?: of)?|starting at|from|"
            r">=?|≥|(?<!不)超过|(?<!不)高于|(?<!不)大于|(?<!不)多于|至少|最低|起码|不低于|不少于|不小于)"
            rf"\s*{_amount('a')}{_NOT_UNIT}\s*(?:以上)?"
        ),
    ),
    (
        "approx",
        re.compile(
            rf"(?:around|about|approximately|approx\.?|roughly|circa|near|~|大概|大约|差不多)\s*{_amount('a')}{_NOT_UNIT}"
        ),
    ),
    (
        "max",
        re.compile(
            rf"(?<![a-z\d.]){_amount('a')}{_NOT_UNIT}\s*"
            r"(?:以内|以下|之内|封顶|or less|or under|or below|and under|and below|max|tops)"
        ),
    ),
    (
        "min",
        re.compile(
            rf"(?<![a-z\d.]){_amount('a')}{_NOT_UNIT}\s*(?:以上|起步|起|往上|\+|or more|and up|and above|or above|plus)"
        ),
    ),
    # a bare amount with a currency reads as a budget: "200块的耳机", "$50 headphones"
    ("max", re.compile(rf"(?<![a-z\d.]){_CUR_PRE}\s*(?P<a>{_NUM}){_NOT_UNIT}")),
    ("max", re.compile(rf"(?<![a-z\d.])(?P<a>{_NUM})\s*{_CUR_POST}(?![a-z])")),
)
_CURRENCIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"us\$|\$|usd|dollar|buck|美元|美金|刀"), "USD"),
    (re.compile(r"¥|元|块|rmb|cny|人民币"), "CNY"),
    (re.compile(r"€|eur"), "EUR"),
    (re.compile(r"£|gbp"), "GBP"),
)
# "any brand" drops the brand constraint; "another brand" avoids the brands shown so far
_BRAND_FREE = re.compile(
    r"不限品牌|品牌不限|品牌无所谓|什么(?:牌子|品牌)都(?:行|可以)|哪个(?:牌子|品牌)都(?:行|可以)|any brand|"
    r"brand (?:does(?: not|n't|nt)|do(?: not|n't|nt)) matter|whatever brand"
)
_OTHER_BRAND = re.compile(
    r"换个(?:牌子|品牌)|换(?:一个|一)?(?:别的|其他)?(?:牌子|品牌)|(?:别的|其他)(?:牌子|品牌)|another brand|other brands?|different brand"
)
# "预算放宽到2000" / "budget up to 150": a new ceiling said without 以内/under
_BUDGET_TO = re.compile(
    rf"(?:预算|budget)\s*(?:放宽|提高|增加|调整|调高|加|改|放|升)?\s*(?:到|至|为|是|成|of|is|to|up to|now)?\s*{_amount('n')}"
    r"(?!\s*(?:左右|上下|以上|以内|以下|之内|起|多|-|~|到|至|around|or so|ish|and|to\b))"
)
# "with noise cancelling", "要防水的": a follow-up that only adds a property
_NON_PREFIX = re.compile(r"\bnon-\s*(?=[a-z])")
_ADDON = re.compile(r"^\s*(?:and\s+)?(?:with|in|only|just|also|made of|要|带|只要|最好是?)(?:\b|(?=[\u4e00-\u9fff]))")
# "budget doesn't matter": recognised so it is not read as a negation or a product word
_BUDGET_FREE = re.compile(
    r"(?:budget|price|cost)\s*(?:does(?: not|n't|nt)|do(?: not|n't|nt))\s*matter|(?:any|whatever)\s*(?:price|budget)|"
    r"no budget|money is no object|价格无所谓|价钱无所谓|预算无所谓|价格不限|预算不限|不限价格|不限预算|多少钱都行|钱不是问题|不差钱"
)

_SORT_PATTERNS: tuple[tuple[Sort, re.Pattern[str]], ...] = (
    (
        Sort.price_asc,
        re.compile(
            r"最便宜|价格最低|最低价|价格从低到高|从低到高|由低到高|低到高|价格升序|按价格排序|cheapest|lowest[- ]price[d]?|"
            r"least expensive|price:? low to high|low to high|sort(?:ed)? by price|price ascending"
        ),
    ),
    (
        Sort.price_desc,
        re.compile(
            r"最贵|价格最高|最高价|价格从高到低|从高到低|由高到低|高到低|价格降序|most expensive|highest[- ]price[d]?|"
            r"priciest|price:? high to low|high to low|price descending"
        ),
    ),
    (
        Sort.rating,
        re.compile(
            r"好评|评分高|评分最高|评价最好|评价好|评价高|口碑好|口碑最好|高分|best[- ]rated|highest[- ]rated|top[- ]rated|"
            r"best[- ]reviewed|best reviews|highest rating|well[- ]reviewed"
        ),
    ),
    (
        Sort.sales,
        re.compile(
            r"销量|最畅销|畅销|卖得最好|卖得好|最火|最热门|热销|最受欢迎|best[- ]?sell(?:ing|ers?)|most popular|top[- ]selling|popular"
        ),
    ),
)
_CHEAPER = re.compile(
    r"(?:再|更)?便宜(?:一)?(?:点|些)|(?:再|更)便宜|便宜的|便宜|实惠|性价比|划算|平价|不贵|不太贵|别太贵|不要太贵|太贵了|低价|"
    r"价格低一?点?|价格低|cheaper|less expensive|more affordable|affordable|inexpensive|lower[- ]price[d]?|"
    r"too expensive|too pricey|not too expensive|not expensive|budget[- ]friendly|on a budget|low[- ]cost|cheap"
)
_PRICIER = re.compile(
    r"贵一?点|贵一?些|更贵|(?:质量|品质|档次)?好一?点的?|(?:质量|品质)?好一?些的?|更好的?|高端|高档|档次高一?点?|品质好|"
    r"太便宜了|不要太便宜|别太便宜|more premium|premium|higher[- ]end|high[- ]end|better quality|higher quality|"
    r"more expensive|pricier|fancier|upscale|luxury|luxurious|too cheap|not too cheap"
)

# -- references to shown products ----------------------------------------------------------------
_COMPARE = re.compile(
    r"比较|对比|比一比|比一下|哪个好|哪个更好|哪款好|哪款更好|哪个更|哪款更|区别|差别|有什么不同|\bvs\.?|\bpk\b|"
    r"\bcompare\b|\bcomparison\b|\bversus\b|which (?:one )?is (?:better|cheaper|best)|which (?:one )?should i|"
    r"difference between|differences|better,"
)
# 第N needs a measure word or the end of a phrase after it: 第二个 / 第二和第三 yes, 第9代 (a model) no
_ZH_ORDINAL = re.compile(
    r"(?P<back>倒数)?第\s*(?P<n>\d{1,2}|[一二两三四五六七八九十]{1,3})\s*"
    r"(?:(?:个|款|件|条|种|双|台|部|只|本|瓶|套|项|家|位|张|支|把)|"
    r"(?=$|[\s和跟与及、,，。?？!！呢吗吧]|详细|怎么|如何|介绍|说说|讲讲|哪|比|对比|好|不错))"
)
_ZH_FIRST_N = re.compile(r"前\s*(?P<n>[两二三四五六\d])\s*(?:个|款|件|条|种|双|台|部|只|套)")
_ZH_LAST = re.compile(r"最后(?:一|那|这)?\s*(?:个|款|件|条|种|双|台|部|只|套|项)")
_EN_ORDINAL = re.compile(
    r"\b(?P<the>the\s+|and\s+(?:the\s+)?|vs\.?\s+(?:the\s+)?)?(?P<n>first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|"
    r"tenth|1st|2nd|3rd|[4-9]th|10th)\b(?P<noun>\s+(?:one|item|product|option|result|choice|pick|listed))?"
)
_EN_FIRST_N = re.compile(r"\b(?:the\s+)?first\s+(?P<n>two|three|four|2|3|4)\b(?:\s+(?:ones|items|products|options))?")
_EN_LAST = re.compile(r"\b(?:the\s+)?last\s+(?:one|item|product|option)\b|\bthe\s+last\b")
_NUMBERED = re.compile(r"(?:#\s*|\b(?:number|no\.|item|option|product|result|choice)\s*#?\s*)(?P<n>\d{1,2})\b")
# bare digits count as references only in a comparison: "compare 1 and 3", "1 vs 3", "1和3哪个好"
_BARE_REF = re.compile(r"(?<![\d.$¥€£a-z])(?P<n>\d{1,2})(?![\d.%a-z])(?!\s*(?:元|块|刀|号码|岁|天))")
_BARE_RANGE = re.compile(r"(?<![\d.$¥a-z])(?P<a>\d{1,2})\s*(?:-|~|到|至|to)\s*(?P<b>\d{1,2})(?![\d.%a-z])")
_PICK_DETAIL = re.compile(
    r"详细说说|详细介绍|详细讲讲|详细|介绍一下|介绍|说说|讲讲|具体说说|具体|怎么样|如何|参数|细节|规格|就要|买这个|要这个|加入购物车|"
    r"tell me more(?: about)?|more about|more info(?:rmation)?|more details?|details?|specs?|how is|"
    r"i'?ll take|i will take|add (?:it )?to (?:my )?cart"
)
_DEICTIC = re.compile(
    r"这个|那个|这款|那款|这件|那件|这双|那双|这条|那条|它|该款|\bthis one\b|\bthat one\b|\bit\b|\bthis\b|\bthat\b"
)
# what a pick/compare message says besides its references: not a search query
_REFERENCE_TALK = re.compile(
    f"{_PICK_DETAIL.pattern}|{_DEICTIC.pattern}|"
    r"和|跟|与|\band\b|\bor\b|\bvs\b|\bversus\b|\bwith\b|哪个|哪款|\bwhich\b|\bbetter\b|更好|好"
)

# -- relation triggers ----------------------------------------------------------------------------
_REPLACE = re.compile(
    r"换成|换为|改成|改为|换一?(?:个|款|件|双|种|条)|换回|变成|要换|\binstead\b|\bswitch (?:it |that )?to\b|"
    r"\bchange (?:it |that |the \w+ )?to\b|\bswap (?:it |that )?(?:for|to)\b|\breplace (?:it |that )?with\b|\bmake it\b"
)
_SOFT_REPLACE = re.compile(r"\bhow about\b|\bwhat about\b|那.{0,4}?的呢")

# -- negations ------------------------------------------------------------------------------------
_NEG_ZH = re.compile(
    r"不想要|不喜欢|不需要|不能有|不能是|不可以有|不要有|(?<!要)不要|不含|不带|不用|别给我推荐|别推荐|别给我|别要|别买|别选|"
    r"(?<![区特级性类识个分告派差])别(?![的人墅针处致扭具称名])|除了|而不是|(?<![是])非(?![常得凡洲法要但])|讨厌"
)
_NEG_ZH_HAVE = re.compile(rf"(?<![有还])没有(?P<x>[^{BLANK}\s,，。.!！?？;；]{{1,8}}?)的")
_NEG_EN = re.compile(
    r"\b(?:anything but|everything but|except for|except|excluding|exclude|other than|instead of|rather than|"
    r"do not want|don't want|dont want|do not like|don't like|dont like|without|avoid|not|no|never)\b"
)
_ZH_X = re.compile(rf"(?:(?!{BLANK})[^\s,，。.!！?？;；:：~])+")
_ZH_X_STOP = re.compile(
    r"但是|但|而且|并且|还要|还有|还|都|以外|之外|其他|其它|别的|只要|最好|可以|就行|就好|也行|也|吗|呢|吧|想要|要|价格|预算|而是"
)
_EN_X = re.compile(rf"[^{BLANK},.;!?]+")
_EN_X_STOP = re.compile(
    r"\b(?:but|and|under|below|over|above|with|in|for|that|which|please|thanks|thank|only|instead|because|so|if|to|"
    r"from|at|between|less|more|than|i|we|you|it|is|are|just|though|cheaper|pricier|too expensive)\b"
)
_SPLIT_ZH = re.compile(r"和|或者|或是|或|、|跟|及|与|/|也不要|还有")
_SPLIT_EN = re.compile(r"\bor\b|\bnor\b|/|&")
_STRIP_ZH = re.compile(r"^(?:太|那么|这么|这种|那种|任何|有|带|含|是|要)+|(?:的|那种|这种|之类的?|系列|一类)+$")
_STRIP_EN = re.compile(
    r"^(?:(?:a|an|the|any|anything|too|so|very|more|in|made of|with)\s+)+|"
    r"(?:\s+(?:ones?|stuff|items?|products?|please|colou?r(?:ed)?|brand|thanks|at all|either|too|as well|anymore))+$"
)
_NEG_PRICE_CHEAPER = re.compile(r"^(?:太|很|那么)?贵$|^(?:too |very |so )?(?:expensive|pricey|costly)$")
_NEG_PRICE_PRICIER = re.compile(r"^(?:太|很)?便宜$|^(?:too |very |so )?cheap$")
_EN_JUNK = _words(
    "sure really necessarily bad idea worry problem thanks thank sorry matter okay ok one ones that this it them "
    "much many lot quite yet sure what"
)

# -- query clean-up -------------------------------------------------------------------------------
_FILLER_ZH = re.compile(
    r"我想要|我想买|我想找|我要买|我要找|我需要|我想|我要|想要|想买|想找|需要|帮我找找|帮我找一下|帮我找|帮我推荐|帮我看看|帮我|"
    r"给我找|给我推荐|给我看看|给我来|给我|有没有|有木有|有什么|有哪些|推荐一下|推荐几款|推荐个|推荐|一下|请问|请|麻烦|"
    r"看看|看一下|找一下|找找|来一个|来个|来点|谢谢|你好|您好|那种|这种|之类的?|类似的?|的话|可以|一款|一个|一件|一条|一双|"
    r"一些|几款|哪些|什么|怎么样|如何|适合|我的|我们|我|送给|购买|买|吗|呢|吧|啊|呀|哦|嘛|哈|呗|只要|就行|就好|也行|还有|别的|其他的?|其它的?|的"
)
_FILLER_EN = re.compile(
    r"\b(?:please|pls|plz|show me|i'?d like|i would like|i'?m looking for|i am looking for|looking for|look for|"
    r"find me|can you|could you|would you|recommend|suggest|get me|give me|do you have|have you got|are there|"
    r"is there|i want|i need|i'm|im|want|need|show|find|some|any|something|anything|a|an|the|for me|ones|one|"
    r"options?|thanks|thank you|hi|hello|hey|buy|purchase|like|only|just|also|maybe|really|good|nice|"
    r"that are|that is|which are|got|me|my|i|for|of|with|in|and|or|to|on|it|this|that|these|those|them|"
    r"no|yes|yeah|ok|okay|hmm|well)\b"
)
_PUNCT = re.compile(
    rf"[{BLANK}\s,，。.!！?？;；:：、~\"“”()（）\[\]【】<>《》|/\\+*=#@&^`-]+|(?<![a-z])['‘’]|['‘’](?![a-z])"
)
_EN_COMPARATIVES = _words(
    "bigger smaller larger longer shorter lighter heavier warmer cooler thinner thicker softer harder newer older "
    "better wider narrower taller brighter darker higher lower faster quieter louder more less other another "
    "different same similar else"
)
_EN_ANAPHORA = _words("ones one them those these it that same")


# ----------------------------------------------------------------------------------------------
# Lexicons (loaded once)
# ----------------------------------------------------------------------------------------------


_LEXICON_BRAND_MAX_FREQ = 50
# last characters that make a word a thing rather than a maker (器 appliance, 头 plug, 板 board, ...)
_PRODUCT_SUFFIXES = frozenset("器机头套贴膏粉液袋盒杯锅壶灯线板架垫布纸笔刀剪夹扣绳带管瓶罐片棒球裤衣鞋帽裙箱柜桌椅床")


@dataclass(frozen=True)
class _Lexicon:
    products: frozenset[str]
    brands: frozenset[str]


@lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    """The shipped product-word lexicon, and the part of the brand lexicon that is safe to read
    as brands: CJK words of three or more characters that are rare in general Chinese (jieba
    frequency at most ``_LEXICON_BRAND_MAX_FREQ``: 欧莱雅 49 and 雅诗兰黛 3 pass, 紫禁城 1758 and
    店小二 313 do not), not a product word, not containing one (电水壶) and not ending like one
    (充电头, 泡沫板)."""
    tok = _jieba()
    products = frozenset(w for w in lexicon_words("product") if _ONLY_CJK.match(w))
    brands = set()
    for w in lexicon_words("brand"):
        if len(w) < 3 or not _ONLY_CJK.match(w) or w in products or tok.FREQ.get(w, 0) > _LEXICON_BRAND_MAX_FREQ:
            continue
        if w[-1] in _PRODUCT_SUFFIXES:
            continue  # 充电头, 泡沫板: named like a product, not like a maker
        if any(w[i:j] in products for i in range(len(w)) for j in range(i + 2, len(w) + 1)):
            continue
        brands.add(w)
    return _Lexicon(products=products, brands=frozenset(brands))


def lexicon_brands() -> frozenset[str]:
    """Brand names from the shipped lexicon that are safe to read as brands (see ``_lexicon``)."""
    return _lexicon().brands


def warm_up() -> None:
    """Load jieba and the lexicons now (about a second) instead of on the first message."""
    _lexicon()
    parse_rules("牛仔裤女 200以内 不要破洞")


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------


@dataclass
class _State:
    """The message being read: ``work`` is the normalised text with used spans blanked."""

    norm: str
    work: list[str]
    refs: list[int] = field(default_factory=list)
    compare: bool = False
    pick_cue: bool = False
    detail: bool = False
    deictic: bool = False
    replace: bool = False
    soft_replace: bool = False
    clear_price: bool = False
    clear_brands: bool = False
    other_brand: bool = False
    price_min: float | None = None
    price_max: float | None = None
    currency: str | None = None
    price_change: PriceChange | None = None
    sort: Sort = Sort.relevance
    excluded: list[str] = field(default_factory=list)
    exclude_brands: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.work)

    def blank(self, start: int, end: int) -> None:
        for i in range(max(0, start), min(end, len(self.work))):
            self.work[i] = BLANK


def parse_rules(
    message: str,
    facets: FacetIndex | None = None,
    *,
    previous: ShoppingIntent | None = None,
    shown_count: int = 0,
) -> ShoppingIntent:
    """Parse one shopper message into a ``ShoppingIntent`` with rules and the catalog vocabulary.

    ``facets`` supplies the catalog's categories, brands and attribute values (without it only
    built-in words and the shipped lexicons are known). ``previous`` is the intent so far, used
    to tell a refinement from a new need; ``shown_count`` is how many products are on screen,
    used for "the last one" and to drop references past the end. The result describes this
    message only; merging it into the conversation is the caller's job.

    Never raises: on an internal error it logs and returns the message as a plain query.
    """
    try:
        text = message if isinstance(message, str) else ("" if message is None else str(message))
        return _parse(text, facets, previous, max(0, int(shown_count or 0)))
    except Exception:  # the fallback path must answer whatever happens
        log.exception("rule parser failed on %r", message)
        try:
            text = str(message)[:MAX_MESSAGE_CHARS]
            return ShoppingIntent(query=_PUNCT.sub(" ", text).strip(), language=detect_language(text))
        except Exception:
            return ShoppingIntent()


def _parse(message: str, facets: FacetIndex | None, previous: ShoppingIntent | None, shown: int) -> ShoppingIntent:
    norm = normalise_text(message[:MAX_MESSAGE_CHARS]).replace(BLANK, " ")
    norm = _NON_PREFIX.sub("not ", norm)  # "non-leather" is "not leather"
    st = _State(norm=norm, work=list(norm))
    language = detect_language(norm)

    _references(st, shown)
    for m in _BUDGET_TO.finditer(st.text()):
        value = _number(m.group("n"))
        if value is not None:
            st.price_max = value
            st.blank(m.start(), m.end())
    _prices(st)
    for m in _BUDGET_FREE.finditer(st.text()):
        st.clear_price = True
        st.blank(m.start(), m.end())
    for pattern, flag in ((_BRAND_FREE, "clear_brands"), (_OTHER_BRAND, "other_brand")):
        for m in pattern.finditer(st.text()):
            setattr(st, flag, True)
            st.blank(m.start(), m.end())
    _sort_and_relative(st)
    for pattern, flag in ((_REPLACE, "replace"), (_SOFT_REPLACE, "soft_replace")):
        for m in pattern.finditer(st.text()):
            setattr(st, flag, True)
            if flag == "replace" or m.group(0).startswith(("how", "what")):
                st.blank(m.start(), m.end())
            else:  # 那红色的呢: keep the value, drop the frame
                st.blank(m.start(), m.start() + 1)
                st.blank(m.end() - 2, m.end())
    kept_products = _negations(st, facets)

    positive = st.text()
    mentions = facets.scan(positive) if facets is not None else scan_builtins(positive)
    lex_brands, lex_products = _lexicon_words(positive, mentions)
    # a lexicon product word swallows the built-in words inside it (羽绒服 is no 羽绒 requirement)
    mentions = [
        m for m in mentions if not any(m.start >= s and m.end <= e and m.kind != "category" for s, e in lex_products)
    ]

    # -- category --------------------------------------------------------------------------
    category: str | None = None
    category_words: list[str] = []
    if facets is not None:
        category = facets.best_category(positive)
    chosen_levels = {lv.casefold() for lv in split_category(category or "")}
    product_words = [m.value for m in mentions if m.kind == "product"] + [positive[s:e] for s, e in lex_products]
    product_words += kept_products
    if category is None and product_words:
        category = max(product_words, key=len)
    if category:
        category_words.append(split_category(category)[-1])

    # -- brands and required ---------------------------------------------------------------
    brands: list[str] = []
    required: list[str] = []
    for mention in mentions:
        if mention.kind == "brand":
            _add(brands, mention.value)
        elif mention.kind == "category":
            # a level outside the chosen category that is also an attribute (儿童 in 儿童牛仔裤)
            if mention.value.casefold() not in chosen_levels and (
                builtin_group(mention.text) or AUDIENCE_WORDS.get(mention.text)
            ):
                _add(required, mention.text)
        elif (
            mention.kind in ("value", "colour", "audience", "material", "size")
            and mention.value.casefold() not in chosen_levels
        ):
            _add(required, mention.value)
    for b in lex_brands:
        _add(brands, b)
    brands = [b for b in brands if b.casefold() not in {x.casefold() for x in st.exclude_brands}]
    required = [r for r in required if r.casefold() not in {x.casefold() for x in st.excluded}]

    # -- query -----------------------------------------------------------------------------
    query = _clean_query(positive, mentions)
    if not query and category_words:
        query = category_words[0]
    elif category_words and not says(query, category_words[0]) and not any(says(query, w) for w in product_words):
        query = f"{query} {category_words[0]}".strip()

    # -- relation --------------------------------------------------------------------------
    constraints = bool(
        required
        or brands
        or st.excluded
        or st.exclude_brands
        or st.price_min is not None
        or st.price_max is not None
        or st.price_change
        or st.sort != Sort.relevance
        or st.clear_price
        or st.clear_brands
        or st.other_brand
    )
    has_product = bool(category or product_words)
    relation, refs = _relation(st, shown, previous, category, product_words, has_product, constraints, positive)

    if relation in (Relation.pick, Relation.compare) and not has_product:
        query = _clean_query(_REFERENCE_TALK.sub(" ", positive), [])

    return ShoppingIntent(
        query=query,
        category=category,
        required=required,
        excluded=st.excluded,
        price_min=st.price_min,
        price_max=st.price_max,
        currency=st.currency,
        price_change=st.price_change,
        brands=brands,
        exclude_brands=st.exclude_brands,
        sort=st.sort,
        language=language,
        relation=relation,
        references=refs,
        clear_brands=st.clear_brands,
        clear_price=st.clear_price,
        avoid_shown_brands=st.other_brand,
    )


def _add(items: list[str], value: str) -> None:
    value = value.strip()
    if value and value.casefold() not in {x.casefold() for x in items}:
        items.append(value)


# -- step 1: references ---------------------------------------------------------------------------
def _references(st: _State, shown: int) -> None:
    """Ordinals and numbered references to shown products; comparison cues."""
    text = st.text()
    compare_hits = list(_COMPARE.finditer(text))
    st.compare = bool(compare_hits)
    refs: list[tuple[int, int]] = []  # (position, reference)

    def take(m: re.Match[str], values: Iterable[int]) -> None:
        for v in values:
            refs.append((m.start(), v))
        st.blank(m.start(), m.end())

    for m in _ZH_ORDINAL.finditer(text):
        n = _ordinal(m.group("n"))
        if n is None or n <= 0:
            continue
        if m.group("back"):
            if shown:
                take(m, [shown - n + 1])
            else:
                st.blank(m.start(), m.end())
            continue
        take(m, [n])
    text = st.text()
    for m in _ZH_FIRST_N.finditer(text):
        n = _ordinal(m.group("n")) or 0
        take(m, range(1, n + 1))
    for m in _EN_FIRST_N.finditer(st.text()):
        n = _ordinal(m.group("n")) or 0
        take(m, range(1, n + 1))
    for pattern in (_ZH_LAST, _EN_LAST):
        for m in pattern.finditer(st.text()):
            take(m, [shown] if shown else [])
            st.pick_cue = True
    for m in _EN_ORDINAL.finditer(st.text()):
        if not (m.group("the") or m.group("noun") or st.compare):
            continue  # "first time buyer" is no reference
        n = _ordinal(m.group("n"))
        if n:
            take(m, [n])
    for m in _NUMBERED.finditer(st.text()):
        take(m, [int(m.group("n"))])
    if st.compare:
        for m in _BARE_RANGE.finditer(st.text()):
            a, b = int(m.group("a")), int(m.group("b"))
            if 1 <= a < b <= 20:
                take(m, range(a, b + 1))
        for m in _BARE_REF.finditer(st.text()):
            n = int(m.group("n"))
            if 1 <= n <= 20:
                take(m, [n])
        for m in compare_hits:
            st.blank(m.start(), m.end())
    refs.sort()
    out: list[int] = []
    for _, v in refs:
        if v >= 1 and (not shown or v <= shown) and v not in out:
            out.append(v)
    st.refs = out
    if refs:
        st.pick_cue = True
    text = st.text()
    st.detail = bool(_PICK_DETAIL.search(text))
    st.deictic = bool(_DEICTIC.search(text))


# -- step 2: prices, sort, relative price --------------------------------------------------------
def _prices(st: _State) -> None:
    for kind, pattern in _PRICE_PATTERNS:
        for m in pattern.finditer(st.text()):
            a = _number(m.group("a")) if m.group("a") else None
            b = _number(m.group("b")) if "b" in pattern.groupindex and m.group("b") else None
            if a is None:
                continue
            span = m.group(0)
            currency = next((code for rx, code in _CURRENCIES if rx.search(span)), None)
            if kind == "range":
                if b is None:
                    continue
                lo, hi = min(a, b), max(a, b)
                if currency is None and hi < 10 and not span.startswith(("between", "从", "在", "介于")):
                    continue  # "1-3" is more likely a reference or a size than a price
                st.price_min, st.price_max = lo, hi
            elif kind == "approx":
                st.price_min, st.price_max = round(a * (1 - APPROX_BAND), 2), round(a * (1 + APPROX_BAND), 2)
            elif kind == "max":
                st.price_max = a
            else:
                st.price_min = a
            st.currency = st.currency or currency
            st.blank(m.start(), m.end())


def _sort_and_relative(st: _State) -> None:
    for sort, pattern in _SORT_PATTERNS:
        for m in pattern.finditer(st.text()):
            if st.sort == Sort.relevance:
                st.sort = sort
            st.blank(m.start(), m.end())
    for change, pattern in ((PriceChange.pricier, _PRICIER), (PriceChange.cheaper, _CHEAPER)):
        for m in pattern.finditer(st.text()):
            st.price_change = st.price_change or change
            st.blank(m.start(), m.end())


# -- step 3: negations ----------------------------------------------------------------------------
def _negations(st: _State, facets: FacetIndex | None) -> list[str]:
    """Fill ``excluded``/``exclude_brands``; return product words found at the end of a negated
    phrase, which stay positive (their span is left unblanked)."""
    kept: list[str] = []
    text = st.text()
    spans: list[tuple[int, int, int, str]] = []  # (trigger start, x start, x end, language)
    for m in _NEG_ZH_HAVE.finditer(text):
        spans.append((m.start(), m.start("x"), m.end("x"), "zh"))
    for m in _NEG_ZH.finditer(text):
        x = _ZH_X.match(text, m.end())
        if not x:
            if m.group(0) not in ("别", "非"):
                st.blank(m.start(), m.end())
            continue
        stop = _ZH_X_STOP.search(x.group(0))
        end = x.start() + (stop.start() if stop else len(x.group(0)))
        if m.group(0) == "非" and end > x.start():
            # 非 is a prefix of one word: 非转基因大豆油 is soybean oil that is not GM
            end = x.start() + len(_jieba().lcut(text[x.start() : end], HMM=False)[0])
        if end > x.start():
            spans.append((m.start(), x.start(), min(end, x.start() + 12), "zh"))
    for m in _NEG_EN.finditer(text):
        if m.group(0) == "no" and (m.start() == 0 or not text[: m.start()].strip(BLANK + " ")):
            rest = text[m.end() : m.end() + 2]
            if rest.strip().startswith((",", "!", ".")) or not rest.strip():
                continue  # "No, ..." answers a question; it negates nothing
        x = _EN_X.match(text, m.end())
        if not x:
            continue
        stop = _EN_X_STOP.search(x.group(0))
        end = x.start() + (stop.start() if stop else len(x.group(0)))
        if x.group(0)[: end - x.start()].strip():
            spans.append((m.start(), x.start(), end, "en"))
    spans.sort()
    last_end = -1
    for trigger, xs, xe, lang in spans:
        if trigger < last_end:
            continue  # a trigger inside an earlier negated phrase ("不要非...")
        phrase = st.norm[xs:xe]
        keep_from = _classify_negated(st, facets, phrase, lang, kept)
        end = xs + keep_from if keep_from is not None else xe
        st.blank(trigger, end)
        last_end = xe
    return kept


def _classify_negated(st: _State, facets: FacetIndex | None, phrase: str, lang: str, kept: list[str]) -> int | None:
    """Sort the pieces of a negated phrase into excluded values, excluded brands and a trailing
    product word; return the offset in ``phrase`` where that product word starts (or None)."""
    keep_from: int | None = None
    # a product word at the end of the phrase stays positive: 不要破洞牛仔裤 -> exclude 破洞
    mentions = facets.scan(phrase) if facets is not None else scan_builtins(phrase)
    tail = mentions[-1] if mentions else None
    if tail is not None and tail.kind in ("category", "product") and not phrase[tail.end :].strip(" 的"):
        if tail.start > 0 and phrase[: tail.start].strip(" 的"):
            keep_from = tail.start
            kept.append(tail.value)
    elif lang == "zh":
        words = _jieba().lcut(phrase, HMM=False)
        lex = _lexicon()
        if len(words) > 1 and words[-1] in lex.products:
            start = len(phrase) - len(words[-1])
            if phrase[:start].strip(" 的"):
                keep_from = start
                kept.append(words[-1])
    body = phrase[:keep_from] if keep_from is not None else phrase
    pieces = (_SPLIT_ZH if lang == "zh" else _SPLIT_EN).split(body)
    for piece in pieces:
        piece = piece.strip(" " + BLANK)
        piece = (_STRIP_ZH if lang == "zh" else _STRIP_EN).sub("", piece).strip()
        if not piece:
            continue
        if _NEG_PRICE_CHEAPER.match(piece):
            st.price_change = st.price_change or PriceChange.cheaper
            continue
        if _NEG_PRICE_PRICIER.match(piece):
            st.price_change = st.price_change or PriceChange.pricier
            continue
        if lang == "en":
            words = piece.split()
            if len(words) > 3 or all(w in EN_STOPWORDS or w in _EN_JUNK for w in words):
                continue
        found = facets.scan(piece) if facets is not None else scan_builtins(piece)
        brand_hits = [m for m in found if m.kind == "brand"]
        if brand_hits and len(brand_hits) == len(found) and _covers(piece, brand_hits):
            for m in brand_hits:
                _add(st.exclude_brands, m.value)
            continue
        lex_brand = piece if piece in _lexicon().brands else None
        if lex_brand:
            _add(st.exclude_brands, lex_brand)
            continue
        if found and _covers(piece, found):
            for m in found:
                if m.kind == "brand":
                    _add(st.exclude_brands, m.value)
                else:
                    _add(st.excluded, m.value if m.kind == "value" else m.text)
            continue
        _add(st.excluded, piece)
    return keep_from


def _covers(text: str, mentions: list[Mention]) -> bool:
    """Whether the mentions cover all of the text but spaces and 的."""
    rest = list(text)
    for m in mentions:
        for i in range(m.start, m.end):
            rest[i] = " "
    return not "".join(rest).strip(" 的-")


# -- step 4: lexicon words ------------------------------------------------------------------------
def _lexicon_words(text: str, mentions: list[Mention]) -> tuple[list[str], list[tuple[int, int]]]:
    """Brands and product words (as spans) of the shipped lexicons, read from jieba words so
    that 破洞 inside 破洞牛仔裤 is not taken for something it shares characters with. Brands only
    where the catalog vocabulary explained nothing; product words anywhere except inside a
    catalog phrase, since a lexicon product word may contain a built-in word (羽绒服)."""
    if not _HAS_CJK.search(text):
        return [], []
    catalog = [(m.start, m.end) for m in mentions if m.kind in ("category", "brand", "product", "value")]
    others = [(m.start, m.end) for m in mentions]
    lex = _lexicon()
    brands: list[str] = []
    products: list[tuple[int, int]] = []
    pos = 0
    for word in _jieba().lcut(text, HMM=False):
        start, pos = pos, pos + len(word)
        if len(word) < 2 or not _ONLY_CJK.match(word):
            continue
        if word in lex.products:
            if not any(s < pos and start < e for s, e in catalog):
                products.append((start, pos))
        elif word in lex.brands and not any(s < pos and start < e for s, e in others):
            _add(brands, word)
    return brands, products


# -- step 5: relation and query -------------------------------------------------------------------
def _relation(
    st: _State,
    shown: int,
    previous: ShoppingIntent | None,
    category: str | None,
    product_words: list[str],
    has_product: bool,
    constraints: bool,
    positive: str,
) -> tuple[Relation, list[int]]:
    refs = st.refs
    if st.compare and (len(refs) >= 2 or (shown and not has_product)):
        return Relation.compare, refs
    if len(refs) >= 2 and not has_product:
        return Relation.compare, refs
    if refs or (st.pick_cue and shown and not has_product):
        return Relation.pick, refs[:1] if refs else ([1] if shown == 1 else [])
    # "详细说说" / "tell me more about it" / "这款" with products on screen: the one in focus
    talks_about_one = (st.detail and (st.deictic or not constraints)) or (
        st.deictic and not constraints and not _content_words(positive)
    )
    if shown and not has_product and talks_about_one:
        return Relation.pick, [1] if shown == 1 else []
    if previous is None:
        return Relation.new, []
    new_product = _is_new_product(previous, category, product_words)
    if st.replace:
        return Relation.replace, []
    if st.soft_replace and not new_product:
        return Relation.replace, []
    if new_product:
        return Relation.new, []
    if not has_product and _ADDON.match(positive):
        return Relation.refine, []
    if not has_product and not constraints:
        leftover = _content_words(positive)
        if leftover and not (set(leftover) & (_EN_ANAPHORA | _EN_COMPARATIVES)) and not _HAS_CJK.search(positive):
            return Relation.new, []  # "show me tents": an English product word the catalog lacks
    return Relation.refine, []


def _is_new_product(previous: ShoppingIntent, category: str | None, product_words: list[str]) -> bool:
    """A product/category word that the previous intent did not already have."""
    said = [w for w in [category, *product_words] if w]
    if not said:
        return False
    before = " ".join(x for x in (previous.category or "", previous.query) if x)
    if not before:
        return True
    return not any(says(before, (split_category(word) or [word])[-1]) for word in said)


def _content_words(text: str) -> list[str]:
    """English words left after fillers and stop words: what the rules did not understand."""
    cleaned = _FILLER_EN.sub(" ", text.replace(BLANK, " "))
    return [w for w in re.findall(r"[a-z][a-z'-]+", cleaned) if w not in EN_STOPWORDS and w not in _EN_JUNK]


def _strip_zh_fillers(text: str) -> str:
    """Chinese fillers removed only where they are whole jieba words (or runs of them), so 的
    goes from 自然堂的面霜 but stays in 美的空调 and 目的地."""
    if not _HAS_CJK.search(text):
        return text
    bounds = {0}
    pos = 0
    for word in _jieba().lcut(text, HMM=False):
        pos += len(word)
        bounds.add(pos)
    return _FILLER_ZH.sub(lambda m: " " if m.start() in bounds and m.end() in bounds else m.group(0), text)


def _clean_query(text: str, mentions: list[Mention]) -> str:
    """The free-text query: the positive text without fillers and punctuation. Recognised
    phrases are kept verbatim, so the filler 的 is not cut out of the brand 美的."""
    parts: list[str] = []
    pos = 0
    for m in [*mentions, None]:
        end = m.start if m is not None else len(text)
        if end < pos:
            continue
        gap = text[pos:end].replace(BLANK, " ")
        gap = _FILLER_EN.sub(" ", _strip_zh_fillers(gap))
        parts.append(_PUNCT.sub(" ", gap))
        if m is not None:
            parts.append(m.text)
            pos = m.end
    return " ".join("".join(parts).split())

"""Numbers and ordinals as shoppers write them: 1.5k, 3千, 2万, 两百, 三百五; second, 3rd, 二."""

from __future__ import annotations

import math
import re

__all__ = ["model_names", "parse_number", "parse_ordinal", "zh_int"]

_ZH_DIGITS = dict(zip("零〇一二两三四五六七八九", (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
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


def zh_int(text: str) -> int | None:
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


def parse_number(text: str) -> float | None:
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
        n = zh_int(t)
        value = float(n) if n is not None else math.nan
    if not math.isfinite(value) or value < 0 or value > 1e9:
        return None
    return value


def parse_ordinal(text: str) -> int | None:
    t = text.strip()
    if t.isdigit():
        return int(t)
    if t in _EN_ORDINALS:
        return _EN_ORDINALS[t]
    if t in _EN_SMALL:
        return _EN_SMALL[t]
    return zh_int(t)


# a product line and its generation: "iphone 15", "iPhone13pro", "mate60" (not "size 38", "256g")
_MODEL = re.compile(
    r"(?<![a-z0-9])(?P<name>[a-z]{3,})\s?(?P<num>\d{1,3})(?![\d.])"
    r"(?!\s?(?:g|gb|tb|ml|l|kg|mm|cm|m|w|mah|hz|寸|斤|元|块|个|件|岁|码|号|米|克|毫升|英寸|寸)(?![a-z]))",
)
_NOT_MODELS = frozenset(
    [
        "size",
        "under",
        "over",
        "below",
        "above",
        "around",
        "about",
        "top",
        "pack",
        "set",
        "for",
        "with",
        "and",
        "the",
        "in",
        "at",
        "to",
        "usd",
        "cny",
        "rmb",
        "yuan",
        "dollar",
        "dollars",
        "bucks",
        "price",
        "budget",
        "max",
        "pro",
        "plus",
        "ultra",
        "mini",
        "lite",
        "not",
        "only",
        "version",
        "gen",
        "series",
        "model",
        "number",
        "age",
        "aged",
        "year",
        "years",
        "old",
        "day",
        "days",
        "month",
        "months",
        "week",
        "weeks",
        "hour",
        "hours",
        "page",
        "pages",
        "item",
        "items",
        "pcs",
        "piece",
        "pieces",
    ]
)


def model_names(query: str) -> list[tuple[str, str]]:
    """(name, number) pairs of the query that name a product generation."""
    out = []
    for m in _MODEL.finditer((query or "").casefold()):
        name, num = m.group("name"), m.group("num")
        if name not in _NOT_MODELS and (name, num) not in out:
            out.append((name, num))
    return out

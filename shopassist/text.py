"""Text helpers for mixed Chinese/English input: the one home of the CJK character class.

``CJK_CLASS`` is the body of a regex character class (use it as ``f"[{CJK_CLASS}]"``): the CJK
Unified Ideographs, their Extension A and the CJK Compatibility Ideographs. Every module that
needs to tell Chinese from other text builds its patterns from it or uses the compiled patterns
and helpers below, so the tokenizer, the rule parser, the facet vocabulary and the language
detection all agree on what a Chinese character is.
"""

from __future__ import annotations

import re

__all__ = [
    "CJK_CLASS",
    "CJK_RUN",
    "HAS_CJK",
    "ONLY_CJK",
    "detect_language",
    "has_cjk",
    "is_cjk",
    "word_set",
]

CJK_CLASS = "\u3400-\u9fff\uf900-\ufaff"
# one CJK ideograph: ``HAS_CJK.search`` tells whether a text holds any
HAS_CJK = re.compile(f"[{CJK_CLASS}]")
# a text made of CJK ideographs only (use with ``match``)
ONLY_CJK = re.compile(f"^[{CJK_CLASS}]+$")
# a run of CJK ideographs
CJK_RUN = re.compile(f"[{CJK_CLASS}]+")


def has_cjk(text: str | None) -> bool:
    """Whether the text holds any CJK ideograph."""
    return HAS_CJK.search(text or "") is not None


def is_cjk(text: str | None) -> bool:
    """Whether the text is non-empty and made of CJK ideographs only."""
    return ONLY_CJK.match(text or "") is not None


def detect_language(text: str | None) -> str:
    """'zh' when the text holds any CJK ideograph, else 'en'."""
    return "zh" if has_cjk(text) else "en"


def word_set(text: str) -> frozenset[str]:
    """A word list written as one whitespace-separated string (easier to read and extend)."""
    return frozenset(text.split())


def money(amount: float) -> str:
    """A price as the records and template lines write it: 24999.99, 29.90, 200 (never the six
    significant digits of ``:g``, which turn 24999.99 into 25000)."""
    text = f"{amount:.2f}"
    return text[:-3] if text.endswith(".00") else text

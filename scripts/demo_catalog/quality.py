"""Quality filters (generic rules only): title checks and the service / virtual-goods test."""

from __future__ import annotations

import re

from .tables import SERVICE_TITLE_PHRASES, SERVICE_WORDS, VIRTUAL_HEADS
from .text import cjk_count

MIN_LEN = {"en": 3, "zh": 5}
MIN_CJK = 5
# A long digit run (part, model or phone numbers) with little Chinese text around it is a code
# dump, not a title; a book title with its ISBN keeps enough text to pass.
MAX_DIGIT_RUN = 9
PART_NUMBER_MIN_CJK = 8
_DIGIT_RUN_RE = re.compile(rf"\d{{{MAX_DIGIT_RUN + 1},}}")
_LABEL_LEAK_RE = re.compile(r"\[\d+_\d+\]:")  # NER annotation leaked into the title text
_RENTAL_RE = re.compile(r"出租(?![屋房车])")  # 出租 = for rent; 出租屋 is a rented flat


def zh_quality_reject(title: str, lang: str = "zh") -> str | None:
    """Generic title checks; returns a reject reason or None."""
    if not title:
        return "empty_title"
    if "\ufffd" in title or _LABEL_LEAK_RE.search(title):
        return "garbled_text"
    if len(title) < MIN_LEN[lang]:
        return "too_short"
    if lang == "zh":
        if cjk_count(title) < MIN_CJK:
            return "too_few_chinese_chars"
        if _DIGIT_RUN_RE.search(title) and cjk_count(title) < PART_NUMBER_MIN_CJK:
            return "part_number_heavy"
    return None


def is_service(title: str, product_words: list[str]) -> bool:
    """Services, virtual goods and logistics: not products a shopping assistant should recommend.

    Title phrases are matched anywhere in the title; a product word is service-like only if it
    contains a service noun, or ends with a virtual-goods head (电影票, 优惠券, 素材; not 资料册).
    """
    low = title.casefold()
    if any(p in low for p in SERVICE_TITLE_PHRASES) or _RENTAL_RE.search(low):
        return True
    if any(any(s in w for s in SERVICE_WORDS) for w in product_words):
        return True
    return any(w.endswith(VIRTUAL_HEADS) for w in product_words)

"""Small text helpers shared by the loaders, plus the per-record seeded RNG."""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WS_RE = re.compile(r"\s+")
_INVISIBLE_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\ufeff]")


def clean_title(title: Any) -> str:
    """Drop invisible control characters and collapse whitespace; no other change."""
    if not isinstance(title, str):
        return ""
    return _WS_RE.sub(" ", _INVISIBLE_RE.sub("", title)).strip()


def title_key(title: str) -> str:
    """Key for exact-duplicate detection: NFKC, case-folded, whitespace removed."""
    return _WS_RE.sub("", unicodedata.normalize("NFKC", title)).casefold()


def stable_hash(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def cjk_count(text: str) -> int:
    return len(_CJK_RE.findall(text))


def dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for it in items:
        if it and it not in seen:
            seen.add(it)
            out.append(it)
    return out


def record_rng(seed: int, record_id: str, field: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{record_id}:{field}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))

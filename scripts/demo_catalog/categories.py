"""Category mapping: DummyJSON slugs, Taobao beauty keyword rules, Chinese keyword -> top level,
and OpenBG fine-label names learned as title keywords (with their agreement check)."""

from __future__ import annotations

import collections
import re
from typing import Any

from .tables import (
    BEAUTY_FALLBACK_CATEGORY,
    BEAUTY_RULES,
    BEAUTY_SET_CATEGORY,
    BEAUTY_SET_WORDS,
    BEAUTY_SUFFIX_RULES,
    DUMMYJSON_CATEGORIES,
    DUMMYJSON_TYPE_FROM_TAG,
    ZH_TOP_KEYWORDS,
)
from .text import stable_hash


def dummyjson_category(slug: str, tags: list[str]) -> str:
    base = (
        DUMMYJSON_CATEGORIES.get(slug)
        or " > ".join(w.capitalize() for w in slug.replace("_", "-").split("-") if w)
        or "Other"
    )
    if slug in DUMMYJSON_TYPE_FROM_TAG:
        sub = [t for t in tags if t and t.lower() != slug]
        if sub:
            base += " > " + sub[0].title()
    return base


def _beauty_hits(text: str) -> list[str]:
    hits = []
    for keywords, path in BEAUTY_RULES:
        if any(k in text for k in keywords):
            hits.append(path)
    return hits


def beauty_category(title: str) -> str:
    text = title.casefold() + " "
    hits = _beauty_hits(text)
    # A set that spans several product types is a set, not its first type.
    is_set = any(w in text for w in BEAUTY_SET_WORDS)
    if is_set and (len(set(hits)) >= 2 or "水乳" in text):
        return BEAUTY_SET_CATEGORY
    if hits:
        return hits[0]
    for pattern, path in BEAUTY_SUFFIX_RULES:
        if pattern.search(title):
            return path
    if any(w in text for w in BEAUTY_SET_WORDS):
        return BEAUTY_SET_CATEGORY
    return BEAUTY_FALLBACK_CATEGORY


def zh_keyword_top(text: str, whole_word: bool = False) -> tuple[str, str] | None:
    """(top, keyword) for a keyword found in ``text``, or None.

    Free text (a title): the longest keyword wins, the earliest on a tie (on OpenBG's labelled
    titles "earliest" agrees with the labels more often than "latest"); single-character
    keywords are ignored. A product word (``whole_word=True``): Chinese compounds are head-final,
    so the longest keyword the word *ends* with wins (红酒柜 -> 柜, not 红酒), single characters
    included; failing that, the longest multi-character keyword it contains.
    """
    low = text.casefold()
    if whole_word:
        suffix = [kw for kw in ZH_TOP_KEYWORDS if low.endswith(kw)]
        if suffix:
            kw = max(suffix, key=len)
            return ZH_TOP_KEYWORDS[kw], kw
    best: tuple[int, int, str] | None = None
    for kw in ZH_TOP_KEYWORDS:
        if len(kw) == 1:
            continue
        pos = low.find(kw)
        if pos < 0:
            continue
        cand = (len(kw), -pos, kw)
        if best is None or cand > best:
            best = cand
    if best is None:
        return None
    return ZH_TOP_KEYWORDS[best[2]], best[2]


LABEL_TOKEN_MIN_PRECISION = 0.5


def learn_label_tokens(labelled: list[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    """Fine-label names as title keywords: token -> (coarse, fine).

    ``labelled`` is [(title, coarse, fine)]. A fine label such as ``麦克风/话筒`` gives the tokens
    麦克风 and 话筒. A token is kept only if, among the labelled titles that contain it, at least
    ``LABEL_TOKEN_MIN_PRECISION`` carry that label (so 内存, which mostly occurs in phone titles,
    does not turn phones into memory sticks).
    """
    counts = collections.Counter((c, f) for _, c, f in labelled)
    tokens: dict[str, tuple[str, str]] = {}
    for (coarse, fine), _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        for tok in re.split(r"[/（）()、]", fine):
            tok = tok.strip().casefold()
            if len(tok) >= 2 and tok not in tokens:
                tokens[tok] = (coarse, fine)
    lowered = [(t.casefold(), f) for t, _, f in labelled]
    kept = {}
    for tok, (coarse, fine) in tokens.items():
        occ = [f for t, f in lowered if tok in t]
        if occ and sum(f == fine for f in occ) / len(occ) >= LABEL_TOKEN_MIN_PRECISION:
            kept[tok] = (coarse, fine)
    return kept


def match_label_tokens(tokens: dict[str, tuple[str, str]], title: str) -> tuple[str, str] | None:
    """The label whose token occurs first in the title (longer token on a tie)."""
    low = title.casefold()
    best = None
    for tok in tokens:
        pos = low.find(tok)
        if pos >= 0:
            cand = (-pos, len(tok), tok)
            if best is None or cand > best:
                best = cand
    return tokens[best[2]] if best else None


def rule_agreement(labelled: list[tuple[str, str, str]], folds: int = 5) -> dict[str, Any]:
    """How often the fallback rules agree with OpenBG's own labels (k-fold for the learned rule)."""
    out: dict[str, Any] = {"labelled": len(labelled)}
    order = sorted(labelled, key=lambda x: stable_hash(x[0]))
    cov = coarse_ok = fine_ok = 0
    for k in range(folds):
        test = order[k::folds]
        train = [x for i, x in enumerate(order) if i % folds != k]
        toks = learn_label_tokens(train)
        for t, c, f in test:
            hit = match_label_tokens(toks, t)
            if hit:
                cov += 1
                coarse_ok += hit[0] == c
                fine_ok += hit[1] == f
    out["label_name"] = (cov, coarse_ok, fine_ok)
    cov = ok = 0
    for t, c, _f in labelled:
        kw = zh_keyword_top(t)
        if kw:
            cov += 1
            ok += kw[0] == c
    out["keyword"] = (cov, ok)
    return out

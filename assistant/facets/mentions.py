"""Mentions: the known phrases a scan of a message finds, and the scan for built-in words."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.facets.phrases import tokens_and_words
from assistant.facets.vocabulary import BUILTIN_GROUPS, BUILTIN_MATCHER, GROUP_SIZE, SIZE_PATTERN

__all__ = ["Mention", "display_surface", "scan_builtin_tokens", "scan_builtins"]


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


def scan_builtins(text: str, taken: Sequence[bool] | None = None) -> list[Mention]:
    """Built-in colour/audience/material/size words in a normalised text."""
    toks, words = tokens_and_words(text)
    return scan_builtin_tokens(text, toks, words, list(taken) if taken is not None else [False] * len(toks))


def scan_builtin_tokens(
    text: str, toks: list[tuple[str, int, int]], words: list[str], taken: list[bool]
) -> list[Mention]:
    """``scan_builtins`` over tokens already cut (``tokens_and_words``); marks what it takes in
    ``taken`` and skips what is already taken there."""
    out: list[Mention] = []
    for i, j in BUILTIN_MATCHER.find(words, taken):
        kind, group = BUILTIN_GROUPS[tuple(words[i:j])]
        start, end = toks[i][1], toks[j - 1][2]
        surface = text[start:end]
        out.append(Mention(kind, start, end, surface, display_surface(surface), group))
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
        elif not SIZE_PATTERN.match(tok):
            continue
        taken[k] = True
        out.append(Mention("size", start, end, surface, surface, GROUP_SIZE))
    out.sort(key=lambda m: m.start)
    return out


def display_surface(surface: str) -> str:
    """Possessives dropped from a surface word ("men's" -> "men") so it reads as a value."""
    return re.sub(r"['’]s\b", "", surface).strip()

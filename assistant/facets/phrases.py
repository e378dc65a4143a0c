"""Phrase tokens and phrase matching: how a vocabulary phrase is found in a message.

Matching works on *phrase tokens* (``phrase_tokens``): NFKC, case-folded, one token per CJK
character and one per Latin word (possessive "'s" dropped, plural folded to singular), so
"men's coat" meets the level "Coats" and "牛仔 裤" meets "牛仔裤" while "red" never matches inside
"shredded". Each vocabulary is a ``PhraseMatcher`` (a dict of token tuples, indexed by first token)
kept up to date by reference counts. Where a phrase could be read two ways ("清洁面膜": 洁面 or
面膜) the reading that falls on jieba word boundaries (``word_bounds``) wins.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from retrieval.tokenize import jieba_tokenizer
from shopassist.text import CJK_CLASS, HAS_CJK

__all__ = [
    "PhraseMatcher",
    "fold_word",
    "normalise_text",
    "phrase_key",
    "phrase_tokens",
    "says",
    "says_normalised",
    "select_spans",
    "tokens_and_words",
    "word_bounds",
]

_TOKEN = re.compile(rf"[{CJK_CLASS}]|[^\W_{CJK_CLASS}]+(?:['’][^\W_{CJK_CLASS}]+)*|[^\s]")


def normalise_text(text: str) -> str:
    """NFKC (full-width to half-width) and case-folded: the one form every vocabulary uses.
    NFKC can change a string's length, so offsets always refer to this normalised text."""
    return unicodedata.normalize("NFKC", text or "").casefold()


def fold_word(word: str) -> str:
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
    return [(fold_word(m.group(0)), m.start(), m.end()) for m in _TOKEN.finditer(text)]


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


def tokens_and_words(text: str) -> tuple[list[tuple[str, int, int]], list[str]]:
    """The phrase tokens of a normalised text (with offsets) and the bare token strings."""
    toks = phrase_tokens(text)
    return toks, [t for t, _, _ in toks]


def word_bounds(text: str, toks: list[tuple[str, int, int]]) -> set[int] | None:
    """Token indices where a jieba word starts (plus the end), or None for text without CJK,
    where every token is a word anyway."""
    if not HAS_CJK.search(text):
        return None
    starts: set[int] = set()
    pos = 0
    for word in jieba_tokenizer().lcut(text, HMM=False):
        starts.add(pos)
        pos += len(word)
    starts.add(pos)
    out = {i for i, (_, start, _) in enumerate(toks) if start in starts}
    out.add(len(toks))
    return out


def says(text: str, value: str) -> bool:
    """Whether ``text`` already says ``value`` (substring, or whole folded words: "men's coat"
    says "Coats")."""
    norm = normalise_text(text)
    return says_normalised(norm, phrase_key(norm), normalise_text(value))


def says_normalised(query_norm: str, query_key: tuple[str, ...], value_norm: str) -> bool:
    """Whether the query already says the value, as a run of phrase tokens (so any substring for
    CJK, whole folded words for Latin: "red" is not in "shredded")."""
    if not query_norm or not value_norm:
        return False
    vkey = phrase_key(value_norm)
    n = len(vkey)
    return any(query_key[i : i + n] == vkey for i in range(len(query_key) - n + 1)) if n else False

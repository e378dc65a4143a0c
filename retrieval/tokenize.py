"""Mixed Chinese/English tokenization for the lexical leg.

* Text is NFKC-normalised (full-width -> half-width) and case-folded.
* Runs of CJK ideographs are cut by jieba, whose dictionary is extended with the brand and
  product-word lexicons shipped in ``retrieval/resources/lexicons`` (from the MultiDigraphNER
  work), and optionally also emitted as character bigrams (robust to segmentation mismatches
  between a short query and a long title).
* Latin/digit runs are split into words, English stop words dropped, and Snowball-stemmed
  ("boots" -> "boot"); tokens like "50ml" or "i5" stay whole.

Tokens never contain whitespace, so a token list round-trips through ``" ".join``.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from functools import lru_cache
from importlib import resources

TOKENIZER_VERSION = "zh-jieba-lex+bigram/en-snowball-v1"

_RUNS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[a-z0-9]+(?:[.'][a-z0-9]+)*")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_CJK_PUNCT_ONLY = re.compile(r"^[\W_]+$")

EN_STOPWORDS = frozenset(
    """a an and are as at be but by for from has have in into is it its of on or that the this
    to was were will with without not no under over than i me my we our you your he she they them
    their what which who whom these those am been being do does did so such very can just
    about above below between up down out off again further then once here there when where why
    how all any both each few more most other some own same too s t""".split()
)

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


def _lexicon_words() -> list[str]:
    words: list[str] = []
    folder = resources.files("retrieval") / "resources" / "lexicons"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".dic"):
            continue
        for line in entry.read_text(encoding="utf-8").splitlines():
            word = line.strip()
            # Keep multi-character words only; a lexicon entry with spaces is not one token.
            if len(word) >= 2 and " " not in word:
                words.append(word.lower())
    return words


@lru_cache(maxsize=1)
def _jieba():  # type: ignore[no-untyped-def]
    """One jieba tokenizer per process, with the shipped lexicons added (about 1 s, once)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()
    for word in _lexicon_words():
        # An explicit frequency makes add_word O(1); jieba's own suggestion costs a cut per word.
        if word not in tok.FREQ or tok.FREQ[word] == 0:
            tok.add_word(word, freq=20)
    return tok


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").lower()


class Tokenizer:
    """Callable tokenizer; the instance is cheap, the jieba model behind it is shared."""

    def __init__(self, *, cjk_bigrams: bool = True, cjk_words: bool = True, stem: bool = True) -> None:
        self.cjk_bigrams = cjk_bigrams
        self.cjk_words = cjk_words
        self.stem = stem

    @property
    def version(self) -> str:
        return f"{TOKENIZER_VERSION}:w{int(self.cjk_words)}b{int(self.cjk_bigrams)}s{int(self.stem)}"

    def __call__(self, text: str) -> list[str]:
        return self.tokenize(text)

    def tokenize(self, text: str) -> list[str]:
        text = normalise(text)
        tokens: list[str] = []
        english: list[str] = []
        for match in _RUNS.finditer(text):
            run = match.group(0)
            if _CJK_RUN.fullmatch(run):
                if self.cjk_words:
                    with _lock:
                        words = _jieba().lcut(run, HMM=True)
                    tokens.extend(w for w in words if w.strip() and not _CJK_PUNCT_ONLY.match(w))
                if self.cjk_bigrams:
                    if len(run) == 1:
                        if not self.cjk_words:
                            tokens.append(run)
                    else:
                        tokens.extend("#" + run[i : i + 2] for i in range(len(run) - 1))
            else:
                if run in EN_STOPWORDS:
                    continue
                english.append(run)
        if english:
            if self.stem:
                english = _stemmer().stemWords(english)
            tokens.extend(english)
        return tokens


@lru_cache(maxsize=1)
def default_tokenizer() -> Tokenizer:
    return Tokenizer()

"""An incremental in-memory BM25 index: the lexical leg Chroma does not have.

bm25s builds a static sparse matrix, which makes every catalog change a full re-index. The
product promises that an upsert is searchable at once, so this index keeps postings per term
(term -> {slot: tf}) and updates them in place; per-term numpy arrays are built lazily and
dropped when the term's postings change. Scoring is the Lucene BM25 variant (the bm25s default):

    idf(t)   = ln(1 + (N - df + 0.5) / (df + 0.5))
    s(d, q)  = sum_t idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))

Slots of deleted documents are recycled, so the arrays stay as large as the live catalog.

``BM25View`` is the read-only face of an index (lookups and scoring, no updates) that the catalog
hands to readers; it shares the index's storage, so it costs nothing per search.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

import numpy as np


class BM25Index:
    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1 (got k1={k1}, b={b})")
        self.k1 = k1
        self.b = b
        self._postings: dict[str, dict[int, int]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._doc_terms: list[dict[str, int] | None] = []
        self._doc_len = np.zeros(1024, dtype=np.float32)
        self._slot_of: dict[str, int] = {}
        self.slot_ids: list[str | None] = []
        self._free: list[int] = []
        self._total_len = 0

    # -- size --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def capacity(self) -> int:
        return len(self.slot_ids)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._slot_of

    def slot(self, doc_id: str) -> int | None:
        return self._slot_of.get(doc_id)

    # -- updates -------------------------------------------------------------------------------
    def upsert(self, doc_id: str, tokens: Iterable[str]) -> int:
        """Add or replace a document; returns its slot."""
        if doc_id in self._slot_of:
            self.remove(doc_id)
        # interned: a term is one string shared by every document that holds it (a catalog's tokens
        # come from the store as fresh strings per row: ~1.1 KB a product otherwise)
        counts = dict(Counter(map(sys.intern, tokens)))
        if self._free:
            slot = self._free.pop()
            self.slot_ids[slot] = doc_id
            self._doc_terms[slot] = counts
        else:
            slot = len(self.slot_ids)
            self.slot_ids.append(doc_id)
            self._doc_terms.append(counts)
            if slot >= len(self._doc_len):
                grown = np.zeros(max(1024, 2 * len(self._doc_len)), dtype=np.float32)
                grown[: len(self._doc_len)] = self._doc_len
                self._doc_len = grown
        length = sum(counts.values())
        self._doc_len[slot] = length
        self._total_len += length
        for term, tf in counts.items():
            self._postings.setdefault(term, {})[slot] = tf
            self._arrays.pop(term, None)
        self._slot_of[doc_id] = slot
        return slot

    def remove(self, doc_id: str) -> bool:
        slot = self._slot_of.pop(doc_id, None)
        if slot is None:
            return False
        counts = self._doc_terms[slot] or {}
        for term in counts:
            posting = self._postings.get(term)
            if posting is not None:
                posting.pop(slot, None)
                if not posting:
                    del self._postings[term]
            self._arrays.pop(term, None)
        self._total_len -= int(self._doc_len[slot])
        self._doc_len[slot] = 0
        self._doc_terms[slot] = None
        self.slot_ids[slot] = None
        self._free.append(slot)
        return True

    # -- scoring -------------------------------------------------------------------------------
    def _term_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        arrays = self._arrays.get(term)
        if arrays is None:
            posting = self._postings.get(term)
            if not posting:
                return None
            slots = np.fromiter(posting.keys(), dtype=np.int64, count=len(posting))
            tfs = np.fromiter(posting.values(), dtype=np.float32, count=len(posting))
            arrays = (slots, tfs)
            self._arrays[term] = arrays
        return arrays

    def df(self, term: str) -> int:
        """How many documents hold ``term``."""
        return len(self._postings.get(term, ()))

    def idf(self, term: str) -> float:
        df = len(self._postings.get(term, ()))
        n = len(self._slot_of)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def doc_terms(self, doc_id: str) -> dict[str, int]:
        slot = self._slot_of.get(doc_id)
        return {} if slot is None else (self._doc_terms[slot] or {})

    def score(self, query_tokens: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(slots, scores) of every document that shares a term with the query, unsorted.

        A repeated query term counts once per occurrence (as in bm25s and Lucene).
        """
        slots, acc = self.score_all(query_tokens)
        return slots, acc[slots]

    def score_all(self, query_tokens: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(touched slots, a score array over every slot): for looking up any document's score."""
        n = len(self._slot_of)
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(len(self.slot_ids), dtype=np.float32)
        avgdl = max(self._total_len / n, 1e-9)
        k1, b = self.k1, self.b
        acc = np.zeros(len(self.slot_ids), dtype=np.float32)
        touched: list[np.ndarray] = []
        for term, qtf in Counter(query_tokens).items():
            arrays = self._term_arrays(term)
            if arrays is None:
                continue
            slots, tfs = arrays
            idf = self.idf(term)
            norm = k1 * (1.0 - b + b * self._doc_len[slots] / avgdl)
            acc[slots] += qtf * idf * tfs * (k1 + 1.0) / (tfs + norm)
            touched.append(slots)
        if not touched:
            return np.zeros(0, dtype=np.int64), acc
        if len(touched) == 1:
            return touched[0], acc
        # the union of the postings, sorted: a mark per slot is O(catalog) but ~10x cheaper than
        # np.unique's sort of the concatenation when common characters touch most of the catalog
        marks = np.zeros(len(acc), dtype=bool)
        for slots in touched:
            marks[slots] = True
        return np.flatnonzero(marks), acc

    def top(self, query_tokens: Iterable[str], k: int) -> list[tuple[str, float]]:
        slots, scores = self.score(query_tokens)
        if len(slots) == 0:
            return []
        order = np.argsort(-scores, kind="stable")[:k]
        out = []
        for i in order:
            doc_id = self.slot_ids[int(slots[i])]
            if doc_id is not None:
                out.append((doc_id, float(scores[i])))
        return out


class BM25View:
    """Read-only view of a ``BM25Index``: the same lookups and scoring, no updates, no copies.

    ``slot_ids`` is the index's own list (typed read-only: do not change it); ``doc_terms``
    returns a read-only mapping over the index's own counts.
    """

    __slots__ = ("_index",)

    def __init__(self, index: BM25Index) -> None:
        self._index = index

    @property
    def k1(self) -> float:
        return self._index.k1

    @property
    def b(self) -> float:
        return self._index.b

    def __len__(self) -> int:
        """How many documents are indexed."""
        return len(self._index)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._index

    @property
    def capacity(self) -> int:
        """How many slots exist (live or free): the length of ``slot_ids`` and of score arrays."""
        return self._index.capacity

    @property
    def slot_ids(self) -> Sequence[str | None]:
        """The document id in each slot (None for a free slot)."""
        return self._index.slot_ids

    def slot(self, doc_id: str) -> int | None:
        """The slot of a document, None if it is not indexed."""
        return self._index.slot(doc_id)

    def doc_terms(self, doc_id: str) -> Mapping[str, int]:
        """The terms of a document and their counts (empty if it is not indexed)."""
        return MappingProxyType(self._index.doc_terms(doc_id))

    def idf(self, term: str) -> float:
        return self._index.idf(term)

    def df(self, term: str) -> int:
        return self._index.df(term)

    def score(self, query_tokens: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(slots, scores) of every document that shares a term with the query, unsorted."""
        return self._index.score(query_tokens)

    def score_all(self, query_tokens: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(touched slots, a score array over every slot): for looking up any document's score."""
        return self._index.score_all(query_tokens)

    def top(self, query_tokens: Iterable[str], k: int) -> list[tuple[str, float]]:
        """The ``k`` best (id, score) for the query."""
        return self._index.top(query_tokens, k)

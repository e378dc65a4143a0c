"""Hybrid retrieval: a BM25 leg and a Chroma dense leg, filtered alike, fused by features.

Both legs honour every filter: the lexical leg with a vectorised scalar mask plus the per-item
check, the dense leg with a Chroma ``where`` plus the same per-item check (see filters.py).

Fusion (chosen by measurement, see README "Retrieval quality"): the candidates are the union of
each leg's top 100; every candidate gets every feature, computed exactly (its BM25 score even if
only the dense leg found it, its cosine even if only BM25 found it):

    bm25        BM25 (Lucene form, k1=0.3, b=0.5) of the query against the product's tokens
    dense       cosine of the query and the product's main vector (title, brand, leaf category)
    doc         cosine of the query and the title+description vector (falls back to ``dense``)
    coverage    share of the query's terms present in the product's terms
    pairs       share of the query's adjacent term pairs present, adjacent, in the title

Each feature is z-scored over the candidates and the fused score is their weighted sum. The
weights depend on the query's language because the dense model is much weaker on Chinese
product titles than on English (Multi-CPR: dense alone MRR@10 0.35 vs BM25 0.80; CrowdFlower:
dense alone nDCG@10 0.81 = BM25): Chinese 0.8·bm25 + 0.2·dense, English all five equally.
RRF was measured too and lost on both sets (it gives the weak leg an equal vote).

Learned ranker (optional, ``HybridConfig.learned_model``): a LightGBM lambdarank model over the
same features plus a few cheap extras (retrieval/ltr.py) replaces the weighted sum for queries in
a language it was trained on; with no model configured, or a missing/unreadable one, or a query in
another language, the fusion above ranks. ``candidate_features`` returns its inputs.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrieval.catalog import Catalog
from retrieval.filters import needs_item_check
from retrieval.ltr import EXTRA_FEATURES, LearnedRanker, feature_matrix
from retrieval.mirror import CatalogView
from shopassist.models import Candidate, Product, SearchFilters, detect_language

FEATURES = ("bm25", "dense", "doc", "coverage", "pairs")
_ONLY_CJK = re.compile(r"[\u4e00-\u9fff]+")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusionWeights:
    bm25: float = 1.0
    dense: float = 1.0
    doc: float = 1.0
    coverage: float = 1.0
    pairs: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return {f: getattr(self, f) for f in FEATURES}


ZH_WEIGHTS = FusionWeights(bm25=0.8, dense=0.2, doc=0.0, coverage=0.0, pairs=0.0)
EN_WEIGHTS = FusionWeights()
# EmbeddingGemma (``--embedder gemma``) is a much stronger dense leg in Chinese: on the Multi-CPR
# pool the per-fold grid chose 0.3 bm25 / 0.7 dense in 4 of 5 folds (out-of-fold MRR@10 0.859
# against 0.842 with the USE weights above; `shopassist eval retrieval --embedder gemma`)
ZH_WEIGHTS_BY_EMBEDDER = {"gemma": FusionWeights(bm25=0.3, dense=0.7, doc=0.0, coverage=0.0, pairs=0.0)}


@dataclass(frozen=True)
class HybridConfig:
    lexical_depth: int = 100
    dense_depth: int = 100
    zh_weights: FusionWeights = ZH_WEIGHTS
    en_weights: FusionWeights = EN_WEIGHTS
    use_dense: bool = True
    use_lexical: bool = True
    # a learned ranker (retrieval/ltr.py, LightGBM text model); None: the fusion ranks
    learned_model: str | None = None
    # a search scores the fusion's best ``learned_depth`` candidates with the learned ranker (a
    # cascade): its features cost ~0.1 ms a candidate, the fusion's ~0.01 ms (0: every candidate)
    learned_depth: int = 50

    def __post_init__(self) -> None:
        if self.lexical_depth < 1 or self.dense_depth < 1:
            raise ValueError("search depths must be at least 1")
        if not (self.use_dense or self.use_lexical):
            raise ValueError("at least one retrieval leg must be on")

    @classmethod
    def for_embedder(cls, embedder: str, **overrides: Any) -> HybridConfig:
        """The default configuration for a catalog embedded with ``embedder`` (a settings name)."""
        overrides.setdefault("zh_weights", ZH_WEIGHTS_BY_EMBEDDER.get(embedder, ZH_WEIGHTS))
        return cls(**overrides)

    def weights_for(self, query: str) -> FusionWeights:
        return self.zh_weights if detect_language(query) == "zh" else self.en_weights


def _z(values: np.ndarray) -> np.ndarray:
    sd = float(values.std())
    if sd < 1e-12:
        return np.zeros_like(values)
    return (values - float(values.mean())) / sd


TITLE_PAIRS_CACHE = 20_000


class _Unset:
    """A leg's ``held`` argument when the caller did not compute it."""


_UNSET = _Unset()
# a catalog this small is scored exactly over every vector (~1 ms at 10k products, 512-d), which is
# cheaper than an HNSW query (~2.7 ms) and exact
EXACT_DENSE_BELOW = 20_000
# a filter that keeps more than this many products (but too few for the graph) is ranked on the
# mirror's 64-d projection first and only its best PROJECTED_CANDIDATES are scored exactly: at 1M
# products a filter keeping 10% would otherwise read 200 MB of vectors per search
PROJECT_ABOVE = 4_000
PROJECTED_CANDIDATES = 1_000


def best_first(scores: np.ndarray, first: int) -> Iterator[int]:
    """Indices of ``scores`` from the highest down, ties by index: exactly the order of a stable
    descending argsort, but only the best ``first`` (and whatever ties with the last of them) are
    sorted unless the caller reads past them. At 1M products a common character touches ~half the
    catalog, and sorting every scored product cost more than the rest of the lexical leg."""
    n = len(scores)
    if n <= 2 * first or first < 1:
        yield from np.argsort(-scores, kind="stable").tolist()
        return
    kth = np.partition(scores, n - first)[n - first]  # the first-th highest score
    head = np.flatnonzero(scores >= kth)  # ascending indices: a stable sort keeps ties by index
    yield from head[np.argsort(-scores[head], kind="stable")].tolist()
    tail = np.flatnonzero(scores < kth)
    yield from tail[np.argsort(-scores[tail], kind="stable")].tolist()


def _fitting(view: CatalogView, qvec: np.ndarray) -> np.ndarray | None:
    """``qvec`` when it has the view's vector size; None (no dense leg) for a search that straddled
    an embedder switch: its view is the old mirror, its query vector the new embedder's."""
    dim = view.dim
    return qvec if dim is None or len(qvec) == dim else None


def _pairs(tokens: Sequence[str]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in itertools.pairwise(tokens)}


@dataclass
class _Scored:
    pid: str
    features: dict[str, float] = field(default_factory=dict)
    lexical_rank: int | None = None
    dense_rank: int | None = None
    score: float = 0.0


class HybridRetriever:
    def __init__(
        self, catalog: Catalog, config: HybridConfig | None = None, *, learned_model: str | None = None
    ) -> None:
        """``config`` fixes the configuration; without it, the default for the catalog's embedder is
        used, and follows it when an embedder upgrade switches the catalog (with ``learned_model``)."""
        self.catalog = catalog
        self._fixed = config
        self._learned_model = config.learned_model if config is not None else learned_model
        self._auto: tuple[str, HybridConfig] | None = None
        self._pairs_cache: OrderedDict[str, tuple[Product, set[tuple[str, str]]]] = OrderedDict()
        self._pairs_lock = threading.Lock()
        self.learned: LearnedRanker | None = None
        if self._learned_model:
            try:
                self.learned = LearnedRanker.load(self._learned_model)
            except (OSError, ValueError, ImportError) as exc:  # fall back to the fusion, loudly
                log.warning("learned ranker not loaded, using the fusion: %s", exc)

    @property
    def config(self) -> HybridConfig:
        if self._fixed is not None:
            return self._fixed
        backend = self.catalog.embedder_backend
        if self._auto is None or self._auto[0] != backend:
            self._auto = (backend, HybridConfig.for_embedder(backend, learned_model=self._learned_model))
        return self._auto[1]

    @config.setter
    def config(self, value: HybridConfig) -> None:
        self._fixed = value

    # -- legs ----------------------------------------------------------------------------------
    def lexical(self, query: str, filters: SearchFilters, depth: int) -> list[tuple[str, float]]:
        view = self.catalog.view()
        return self._lexical(view, self.catalog.tokenizer(query), filters, depth)[0]

    def _lexical(
        self,
        view: CatalogView,
        tokens: list[str],
        filters: SearchFilters,
        depth: int,
        held: np.ndarray | _Unset | None = _UNSET,
    ) -> tuple[list[tuple[str, float]], np.ndarray]:
        """Top ``depth`` products by BM25 that pass ``filters``; ``held``: ``_required_slots``
        when the caller has it already (a search computes it once for both legs)."""
        catalog = self.catalog
        bm25 = view.bm25
        slots, acc = bm25.score_all(tokens)
        if len(slots) == 0:
            return [], acc
        scores = acc[slots]
        mask = view.scalar_mask(filters)
        if mask is not None:
            keep = mask[slots]
            slots, scores = slots[keep], scores[keep]
        if isinstance(held, _Unset):
            held = self._required_slots(view, filters)
        if held is not None:  # only products that can hold the required Chinese words are checked
            keep = np.isin(slots, held, assume_unique=True)
            slots, scores = slots[keep], scores[keep]
        out: list[tuple[str, float]] = []
        check_rest = needs_item_check(filters)
        products = view.products
        slot_ids = bm25.slot_ids
        for i in best_first(scores, 4 * depth):
            pid = slot_ids[int(slots[i])]
            if pid is None:
                continue
            if check_rest:
                product = products.get(pid)
                if product is None or not catalog.passes_rest(product, filters):
                    continue
            out.append((pid, float(scores[i])))
            if len(out) >= depth:
                break
        return out, acc

    def dense(self, query: str, filters: SearchFilters, depth: int) -> list[tuple[str, float]]:
        catalog = self.catalog
        view = catalog.view()
        qvec = _fitting(view, catalog.embedder.embed_query(query))
        return [] if qvec is None else self._dense(view, qvec, filters, depth)

    def _dense(
        self,
        view: CatalogView,
        qvec: np.ndarray,
        filters: SearchFilters,
        depth: int,
        held: np.ndarray | _Unset | None = _UNSET,
    ) -> list[tuple[str, float]]:
        """Top ``depth`` products by cosine that pass ``filters``.

        The plan depends on how much of the catalog the filters keep (known exactly from the
        in-memory columns): no filter, or a loose one, asks Chroma's HNSW graph (over-fetching
        by 1.5/share, at most 1,000) and drops what fails; a selective filter (under 15% of the
        catalog) or an over-fetch that came back short is scored exactly over the products that
        pass, from the vector copies (above ``PROJECT_ABOVE`` of them, only the best 1,000 on the
        mirror's 64-d projection are). Products another process changed since this process
        opened the graph are always scored exactly.
        """
        catalog = self.catalog
        n_live = len(view)
        if n_live == 0:
            return []
        allowed = view.allowed(filters)
        mask = view.scalar_mask(filters)
        live = view.live
        matched = n_live if mask is None else int((mask & live).sum())
        if matched == 0:
            return []
        share = matched / n_live
        if share >= 0.15 and n_live > EXACT_DENSE_BELOW:
            n = min(n_live, depth if filters.is_empty() else int(np.ceil(depth / share * 1.5)))
            if n <= 1000:
                hits = [(pid, s) for pid, s in catalog.vectors.query(qvec, n) if allowed(pid)]
                stale = catalog.vectors.stale
                if stale:
                    hits.extend(self._exact_for(view, [pid for pid in stale if allowed(pid)], qvec))
                    hits.sort(key=lambda h: -h[1])
                if len(hits) >= depth or n >= n_live:
                    return hits[:depth]
        slots = np.flatnonzero(live if mask is None else (mask & live))
        if isinstance(held, _Unset):
            held = self._required_slots(view, filters)
        if held is not None:  # only products that can hold the required Chinese words are scored
            slots = np.intersect1d(slots, held)
        check_rest = needs_item_check(filters)
        if len(slots) > PROJECT_ABOVE:
            nearest = view.nearest_by_projection(qvec, slots, max(PROJECTED_CANDIDATES, 10 * depth))
            if nearest is not None and len(nearest) < len(slots):
                out = self._exact_top(view, qvec, nearest, depth, allowed if check_rest else None)
                if len(out) >= depth:
                    return out
                # the item checks dropped too many of the candidates: score everything kept
        return self._exact_top(view, qvec, slots, depth, allowed if check_rest else None)

    @staticmethod
    def _exact_top(
        view: CatalogView,
        qvec: np.ndarray,
        slots: np.ndarray,
        depth: int,
        allowed: Callable[[str], bool] | None,
    ) -> list[tuple[str, float]]:
        """The best ``depth`` of ``slots`` by exact cosine; ``allowed`` checks what the mask cannot."""
        scores = view.exact_dense(qvec, slots)
        check_rest = allowed is not None
        if not check_rest and len(scores) > depth:  # the mask was the whole filter: the top alone
            top = np.argpartition(-scores, depth - 1)[:depth]
            order: Iterable[int] = top[np.argsort(-scores[top], kind="stable")]
        else:
            order = best_first(scores, 4 * depth)
        out: list[tuple[str, float]] = []
        slot_ids = view.bm25.slot_ids
        for i in order:
            pid = slot_ids[int(slots[i])]
            if pid is not None and (allowed is None or allowed(pid)):
                out.append((pid, float(scores[i])))
                if len(out) >= depth:
                    break
        return out

    def _exact_for(self, view: CatalogView, ids: list[str], qvec: np.ndarray) -> list[tuple[str, float]]:
        out = []
        for pid in ids:
            v = view.vector_of(pid)
            if v is not None:
                out.append((pid, float(v @ qvec)))
        return out

    # -- features and fusion ---------------------------------------------------------------------
    def _featurise(
        self,
        view: CatalogView,
        query: str,
        tokens: list[str],
        qvec: np.ndarray | None,
        rows: dict[str, _Scored],
        bm25_all: np.ndarray | None,
        weights: FusionWeights,
    ) -> None:
        bm25 = view.bm25
        ids = list(rows)
        if not ids:
            return
        if bm25_all is None:
            _, bm25_all = bm25.score_all(tokens)
        for pid in ids:
            slot = bm25.slot(pid)
            rows[pid].features["bm25"] = float(bm25_all[slot]) if slot is not None and slot < len(bm25_all) else 0.0
        if qvec is not None and (weights.dense or weights.doc):
            for pid in ids:
                if "dense" not in rows[pid].features:
                    v = view.vector_of(pid)
                    rows[pid].features["dense"] = float(v @ qvec) if v is not None else 0.0
                if weights.doc:
                    d = view.vector_of(pid, "doc")
                    rows[pid].features["doc"] = float(d @ qvec) if d is not None else rows[pid].features["dense"]
        if weights.coverage or weights.pairs:
            qset = set(tokens)
            qpairs = _pairs(tokens)
            products = view.products
            for pid in ids:
                terms = bm25.doc_terms(pid)
                rows[pid].features["coverage"] = len(qset & terms.keys()) / len(qset) if qset else 0.0
                if weights.pairs:
                    if qpairs:
                        title_pairs = self._title_pairs(products[pid])
                        rows[pid].features["pairs"] = len(qpairs & title_pairs) / len(qpairs)
                    else:
                        rows[pid].features["pairs"] = rows[pid].features["coverage"]
        wd = weights.as_dict()
        fused = np.zeros(len(ids))
        for name, w in wd.items():
            if not w:
                continue
            values = np.array([rows[pid].features.get(name, 0.0) for pid in ids], dtype=np.float64)
            fused += w * _z(values)
        for pid, s in zip(ids, fused, strict=True):
            rows[pid].score = float(s)

    def _title_pairs(self, product: Product) -> set[tuple[str, str]]:
        """Adjacent token pairs of a product's title, cached for the last ``TITLE_PAIRS_CACHE``
        products seen (tokenizing a Chinese title costs ~70 us; a search looks at ~150)."""
        cache = self._pairs_cache
        with self._pairs_lock:  # searches run in many threads at once
            hit = cache.get(product.id)
            if hit is not None and hit[0] is product:
                cache.move_to_end(product.id)
                return hit[1]
        pairs = _pairs(self.catalog.tokenizer(product.title))
        with self._pairs_lock:
            cache[product.id] = (product, pairs)
            if len(cache) > TITLE_PAIRS_CACHE:
                cache.popitem(last=False)
        return pairs

    def _required_slots(self, view: CatalogView, filters: SearchFilters) -> np.ndarray | None:
        """A superset of the slots whose products hold every required Chinese term, from the
        character postings (a product holding 猫砂 is indexed under #猫 and #砂), or None when no
        required term is all-Chinese (Latin terms match whole words, which tokens cannot promise).
        Spares the exact dense path a per-product text check over the whole catalog."""
        tokenizer = self.catalog.tokenizer
        if not filters.require_terms or not getattr(tokenizer, "cjk_chars", False):
            return None
        bm25 = view.bm25
        result: np.ndarray | None = None
        for term in filters.require_terms:
            alts = [a.strip() for a in term.split("|") if a.strip()]
            if not alts or not all(_ONLY_CJK.fullmatch(a) for a in alts):
                continue
            union: np.ndarray | None = None
            for alt in alts:
                inter: np.ndarray | None = None
                for ch in dict.fromkeys(alt):
                    posting = bm25.score_all([f"#{ch}"])[0]
                    inter = posting if inter is None else np.intersect1d(inter, posting)
                    if len(inter) == 0:
                        break
                if inter is not None:
                    union = inter if union is None else np.union1d(union, inter)
            if union is None:
                continue
            result = union if result is None else np.intersect1d(result, union)
        return result

    def _learned_rows(
        self,
        view: CatalogView,
        query: str,
        tokens: list[str],
        qvec: np.ndarray | None,
        rows: dict[str, _Scored],
        bm25_all: np.ndarray | None = None,
    ) -> np.ndarray:
        """Every feature for every row, as the learned ranker's matrix (rows in ``rows`` order)."""
        self._featurise(view, query, tokens, qvec, rows, bm25_all, FusionWeights())
        bm25 = view.bm25
        qset = set(tokens)
        idf = {t: max(bm25.idf(t), 0.0) for t in qset}
        idf_total = sum(idf.values())
        head = tokens[-1] if tokens else None
        raw: dict[str, list[float]] = {k: [] for k in EXTRA_FEATURES}
        for pid in rows:
            terms = bm25.doc_terms(pid)
            raw["idf_coverage"].append(sum(idf[t] for t in qset if t in terms) / idf_total if idf_total else 0.0)
            raw["title_terms"].append(float(sum(terms.values())))
            raw["head_in_title"].append(1.0 if head is not None and head in terms else 0.0)
        cols = {f: np.array([r.features.get(f, 0.0) for r in rows.values()]) for f in FEATURES}
        cols.update({k: np.array(v) for k, v in raw.items()})
        return feature_matrix(cols, len(tokens), detect_language(query) == "zh")

    def _use_learned(self, query: str, qvec: np.ndarray | None) -> bool:
        cfg = self.config
        return (
            self.learned is not None
            and qvec is not None
            and cfg.use_lexical
            and cfg.use_dense
            and self.learned.applies(detect_language(query))
        )

    def _cascade(
        self,
        view: CatalogView,
        query: str,
        tokens: list[str],
        qvec: np.ndarray | None,
        rows: dict[str, _Scored],
        bm25_all: np.ndarray | None,
        cfg: HybridConfig,
    ) -> None:
        """The fusion orders every candidate, the learned ranker re-orders its best
        ``cfg.learned_depth``, which stay above the rest (in the fusion's order)."""
        depth = cfg.learned_depth
        if depth <= 0 or len(rows) <= depth:
            self._score_learned(view, query, tokens, qvec, rows, bm25_all)
            return
        self._featurise(view, query, tokens, qvec, rows, bm25_all, cfg.weights_for(query))
        ordered = sorted(rows.values(), key=lambda r: (-r.score, r.pid))
        head = {r.pid: r for r in ordered[:depth]}
        self._score_learned(view, query, tokens, qvec, head, bm25_all)
        floor = min(r.score for r in head.values())
        for i, r in enumerate(ordered[depth:], 1):
            r.score = floor - i  # below every re-ranked candidate, fusion order kept

    def _score_learned(
        self,
        view: CatalogView,
        query: str,
        tokens: list[str],
        qvec: np.ndarray | None,
        rows: dict[str, _Scored],
        bm25_all: np.ndarray | None = None,
    ) -> None:
        assert self.learned is not None
        scores = self.learned.score(self._learned_rows(view, query, tokens, qvec, rows, bm25_all))
        for row, s in zip(rows.values(), scores, strict=True):
            row.score = float(s)

    def candidate_features(self, query: str, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The learned ranker's features (``retrieval.ltr.FEATURE_NAMES`` columns) of the given
        products for ``query``: (the ids kept, in order: known and deduplicated; the matrix)."""
        view = self.catalog.view()
        products = view.products
        rows = {pid: _Scored(pid) for pid in dict.fromkeys(ids) if pid in products}
        query = (query or "").strip()
        tokens = self.catalog.tokenizer(query)
        qvec = _fitting(view, self.catalog.embedder.embed_query(query)) if query else None
        return list(rows), self._learned_rows(view, query, tokens, qvec, rows)

    def _candidates(
        self, view: CatalogView, rows: dict[str, _Scored], query: str, limit: int | None = None
    ) -> list[Candidate]:
        """The scored rows as candidates, best first; only the first ``limit`` are built (a
        Candidate is a validated model: building all ~200 rows cost ~1.5 ms a search at 100k)."""
        products = view.products
        ordered = sorted(
            rows.values(),
            key=lambda r: (-r.score, -r.features.get("dense", 0.0), r.lexical_rank or 10**9, r.pid),
        )
        out: list[Candidate] = []
        for r in ordered:
            if limit is not None and len(out) >= limit:
                break
            product = products.get(r.pid)
            if product is None:
                continue
            out.append(
                Candidate(
                    product=product,
                    score=r.score,
                    lexical_score=r.features.get("bm25"),
                    dense_score=r.features.get("dense"),
                    lexical_rank=r.lexical_rank,
                    dense_rank=r.dense_rank,
                    reasons=_reasons(r, query),
                )
            )
        return out

    # -- public ------------------------------------------------------------------------------------
    def search(self, query: str, filters: SearchFilters | None = None, top_k: int = 10) -> list[Candidate]:
        """Top ``top_k`` products for ``query`` that pass ``filters`` (empty query: browse)."""
        filters = filters or SearchFilters()
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        cfg = self.config
        view = self.catalog.view()
        query = (query or "").strip()
        tokens = self.catalog.tokenizer(query) if query else []
        if not tokens:
            return self.browse(filters, top_k)
        held = self._required_slots(view, filters)  # once, for both legs
        lexical, bm25_all = (
            self._lexical(view, tokens, filters, max(cfg.lexical_depth, top_k), held) if cfg.use_lexical else ([], None)
        )
        qvec = _fitting(view, self.catalog.embedder.embed_query(query)) if cfg.use_dense else None
        dense = self._dense(view, qvec, filters, max(cfg.dense_depth, top_k), held) if qvec is not None else []
        rows: dict[str, _Scored] = {}
        for rank, (pid, s) in enumerate(lexical, 1):
            rows[pid] = _Scored(pid, {"bm25": s}, lexical_rank=rank)
        for rank, (pid, s) in enumerate(dense, 1):
            row = rows.setdefault(pid, _Scored(pid))
            row.features["dense"] = s
            row.dense_rank = rank
        if self._use_learned(query, qvec):
            self._cascade(view, query, tokens, qvec, rows, bm25_all, cfg)
        elif cfg.use_lexical and cfg.use_dense:
            self._featurise(view, query, tokens, qvec, rows, bm25_all, cfg.weights_for(query))
        else:  # a single leg ranks by its own score
            for row in rows.values():
                row.score = row.features.get("bm25" if cfg.use_lexical else "dense", 0.0)
        return self._candidates(view, rows, query, top_k)

    def rank(self, query: str, ids: Sequence[str]) -> list[Candidate]:
        """Order the given products for ``query`` with the same features and weights as search."""
        view = self.catalog.view()
        products = view.products
        rows = {pid: _Scored(pid) for pid in dict.fromkeys(ids) if pid in products}
        if not rows:
            return []
        query = (query or "").strip()
        tokens = self.catalog.tokenizer(query)
        qvec = _fitting(view, self.catalog.embedder.embed_query(query)) if query and self.config.use_dense else None
        weights = self.config.weights_for(query)
        if not self.config.use_lexical:
            weights = FusionWeights(bm25=0, dense=1, doc=0, coverage=0, pairs=0)
        elif not self.config.use_dense:
            qvec = None
            weights = FusionWeights(bm25=1, dense=0, doc=0, coverage=0, pairs=0)
        if self._use_learned(query, qvec):
            self._score_learned(view, query, tokens, qvec, rows)
        else:
            self._featurise(view, query, tokens, qvec, rows, None, weights)
        return self._candidates(view, rows, query)

    def browse(self, filters: SearchFilters, top_k: int) -> list[Candidate]:
        """No query text: the products that pass the filters, best selling / best rated first."""
        ranked = self.catalog.view().by_popularity(filters, top_k)
        return [Candidate(product=p, score=0.0, reasons=[REASON_FILTERS]) for p in ranked]


# Reason codes: machine-readable and language-neutral; the assistant turns them into plain words
# in the shopper's language (``assistant.tools.reason_phrases``). Retrieval's own evidence:
REASON_ALL_WORDS = "all_words"  # the product holds every term of the query
REASON_KEYWORD = "keyword"  # it holds some of the query's terms
REASON_MEANING = "meaning"  # the embedding search found it (close in meaning)
REASON_FILTERS = "filters"  # no query: it passes the filters
REASON_LISTED = "listed"  # neither search found it among the given products


def _reasons(row: _Scored, query: str) -> list[str]:
    """What found the product, as reason codes (ranks and scores stay on the candidate)."""
    reasons = []
    if row.lexical_rank is not None:
        reasons.append(REASON_ALL_WORDS if row.features.get("coverage", 0.0) >= 1.0 else REASON_KEYWORD)
    if row.dense_rank is not None:
        reasons.append(REASON_MEANING)
    if not reasons:
        reasons.append(REASON_LISTED)
    return reasons

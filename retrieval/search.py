"""Hybrid retrieval: a BM25 leg and a Chroma dense leg, filtered alike, fused.

Both legs honour every filter: the lexical leg with a vectorised scalar mask plus the per-item
check, the dense leg with a Chroma ``where`` plus the same per-item check (see filters.py). The
fusion method and its parameters were chosen by measurement on the retrieval evals (see the
README's figures and ``shopassist eval retrieval``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from retrieval.catalog import Catalog
from retrieval.vector import chroma_where
from shopassist.models import Candidate, Product, SearchFilters


@dataclass(frozen=True)
class HybridConfig:
    """Search parameters. ``fusion='rrf'``: sum of weight/(rrf_k + rank) over the legs;
    ``fusion='weighted'``: weighted sum of per-query max-normalised scores."""

    lexical_depth: int = 200
    dense_depth: int = 100
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = 60
    lexical_weight: float = 1.0
    dense_weight: float = 1.0
    use_dense: bool = True
    use_lexical: bool = True

    def __post_init__(self) -> None:
        if self.lexical_depth < 1 or self.dense_depth < 1:
            raise ValueError("search depths must be at least 1")
        if self.fusion not in ("rrf", "weighted"):
            raise ValueError(f"fusion must be 'rrf' or 'weighted' (got {self.fusion!r})")
        if not (self.use_dense or self.use_lexical):
            raise ValueError("at least one retrieval leg must be on")


@dataclass
class SearchTimings:
    lexical_ms: float = 0.0
    dense_ms: float = 0.0
    fusion_ms: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class HybridRetriever:
    def __init__(self, catalog: Catalog, config: HybridConfig | None = None) -> None:
        self.catalog = catalog
        self.config = config or HybridConfig()
        self.last_timings = SearchTimings()

    # -- legs ----------------------------------------------------------------------------------
    def lexical(self, query: str, filters: SearchFilters, depth: int) -> list[tuple[str, float]]:
        catalog = self.catalog
        tokens = catalog.tokenizer(query)
        bm25 = catalog.bm25  # refreshes the mirror
        slots, scores = bm25.score(tokens)
        if len(slots) == 0:
            return []
        mask = catalog.scalar_mask(filters)
        if mask is not None:
            keep = mask[slots]
            slots, scores = slots[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")
        out: list[tuple[str, float]] = []
        check_rest = bool(filters.attributes or filters.exclude_attributes or filters.exclude_terms or filters.exclude_ids)
        for i in order:
            pid = bm25.slot_ids[int(slots[i])]
            if pid is None:
                continue
            if check_rest:
                product = catalog._mirror.products.get(pid)
                if product is None or not catalog.passes_rest(product, filters):
                    continue
            out.append((pid, float(scores[i])))
            if len(out) >= depth:
                break
        return out

    def dense(self, query: str, filters: SearchFilters, depth: int) -> list[tuple[str, float]]:
        catalog = self.catalog
        catalog.refresh()
        vector = catalog.embedder.embed_query(query)
        where = chroma_where(filters)
        allowed = catalog.allowed(filters)
        n = depth
        total = len(catalog)
        while True:
            hits = catalog.vectors.query(vector, n, where=where, allowed=allowed)
            kept = [(pid, s) for pid, s in hits if allowed(pid)]
            # Per-item filters (attributes, excluded terms) can empty a page: widen and retry.
            if len(kept) >= depth or len(hits) < n or n >= min(total, 8 * depth):
                return kept[:depth]
            n = min(n * 2, total)

    # -- fusion ----------------------------------------------------------------------------------
    def _fuse(
        self, lexical: list[tuple[str, float]], dense: list[tuple[str, float]]
    ) -> list[tuple[str, float, float | None, float | None, int | None, int | None]]:
        cfg = self.config
        table: dict[str, list] = {}
        for rank, (pid, s) in enumerate(lexical, 1):
            table.setdefault(pid, [0.0, None, None, None, None])
            table[pid][1], table[pid][3] = s, rank
        for rank, (pid, s) in enumerate(dense, 1):
            table.setdefault(pid, [0.0, None, None, None, None])
            table[pid][2], table[pid][4] = s, rank
        lex_max = max((s for _, s in lexical), default=0.0) or 1.0
        for row in table.values():
            _, ls, ds, lr, dr = row
            if cfg.fusion == "rrf":
                score = 0.0
                if lr is not None:
                    score += cfg.lexical_weight / (cfg.rrf_k + lr)
                if dr is not None:
                    score += cfg.dense_weight / (cfg.rrf_k + dr)
            else:
                score = cfg.lexical_weight * ((ls or 0.0) / lex_max) + cfg.dense_weight * (ds or 0.0)
            row[0] = score
        fused = [(pid, *row) for pid, row in table.items()]
        fused.sort(key=lambda r: (-r[1], r[4] or 10**9, r[5] or 10**9))
        return fused  # type: ignore[return-value]

    # -- public ------------------------------------------------------------------------------------
    def search(
        self, query: str, filters: SearchFilters | None = None, top_k: int = 10
    ) -> list[Candidate]:
        """Top ``top_k`` products for ``query`` that pass ``filters`` (empty query: browse)."""
        filters = filters or SearchFilters()
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        cfg = self.config
        timings = SearchTimings()
        query = (query or "").strip()
        if not query or not self.catalog.tokenizer(query):
            return self.browse(filters, top_k)
        t0 = time.perf_counter()
        lexical = self.lexical(query, filters, max(cfg.lexical_depth, top_k)) if cfg.use_lexical else []
        t1 = time.perf_counter()
        dense = self.dense(query, filters, max(cfg.dense_depth, top_k)) if cfg.use_dense else []
        t2 = time.perf_counter()
        fused = self._fuse(lexical, dense)[:top_k]
        products = self.catalog._mirror.products
        out: list[Candidate] = []
        for pid, score, ls, ds, lr, dr in fused:
            product = products.get(pid)
            if product is None:
                continue
            reasons = []
            if lr is not None:
                reasons.append(f"keyword match (rank {lr})")
            if dr is not None:
                reasons.append(f"semantic match (rank {dr})")
            out.append(
                Candidate(
                    product=product,
                    score=score,
                    lexical_score=ls,
                    dense_score=ds,
                    lexical_rank=lr,
                    dense_rank=dr,
                    reasons=reasons,
                )
            )
        t3 = time.perf_counter()
        timings.lexical_ms = (t1 - t0) * 1000
        timings.dense_ms = (t2 - t1) * 1000
        timings.fusion_ms = (t3 - t2) * 1000
        self.last_timings = timings
        return out

    def browse(self, filters: SearchFilters, top_k: int) -> list[Candidate]:
        """No query text: the products that pass the filters, best rated / best selling first."""
        catalog = self.catalog
        allowed = catalog.allowed(filters)
        pool: Sequence[Product] = [p for p in catalog.products() if allowed(p.id)]

        def popularity(p: Product) -> tuple[float, float, str]:
            extra = p.model_extra or {}
            sales = extra.get("sale_count") or 0
            return (-float(sales if isinstance(sales, int | float) else 0), -(p.rating or 0.0), p.id)

        ranked = sorted(pool, key=popularity)[:top_k]
        return [
            Candidate(product=p, score=0.0, reasons=["matches the filters (no query text)"]) for p in ranked
        ]

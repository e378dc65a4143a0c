"""The dense leg: product vectors in Chroma (embedded ``PersistentClient`` or a ``chroma run`` server).

The same code serves both: ``ChromaVectorIndex.open(settings)`` picks ``HttpClient`` when a host
is configured. Scalar filters (price range, currency, stock, brand names, category levels) are
pushed down as a Chroma ``where``; the rest is checked by the caller on the returned ids.

An embedded Chroma keeps its HNSW graph in the memory of the process that opened it and does not
see vectors another process wrote afterwards (measured with chromadb 1.5). The catalog's change
sequence tells the searching process which ids changed elsewhere; ``query`` scores those ids
exactly from their stored vectors and merges them in, and ``reopen`` reloads the graph once the
set grows large. A Chroma server has no such gap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from shopassist.config import Settings
from shopassist.errors import BackendError, UsageError
from retrieval.filters import MAX_BRAND_NAMES, brand_names
from shopassist.models import Product, SearchFilters

log = logging.getLogger(__name__)

MAX_LEVELS = 6


def _brand_keys(brand: str | None) -> list[str]:
    names = brand_names(brand)
    return (names + [""] * MAX_BRAND_NAMES)[:MAX_BRAND_NAMES]


def product_metadata(product: Product) -> dict[str, Any]:
    """Flat, always-present scalar metadata (Chroma cannot filter on a missing key reliably)."""
    levels = [lv.casefold() for lv in product.category_levels][:MAX_LEVELS]
    meta: dict[str, Any] = {
        "price": float(product.price) if product.price is not None else -1.0,
        "has_price": product.price is not None,
        "currency": product.currency,
        "stock": int(product.stock) if product.stock is not None else -1,
        "language": product.language or "",
    }
    for i, key in enumerate(_brand_keys(product.brand)):
        meta[f"brand{i}"] = key
    for i in range(MAX_LEVELS):
        meta[f"catp{i}"] = " > ".join(levels[: i + 1]) if i < len(levels) else ""
        meta[f"catn{i}"] = levels[i] if i < len(levels) else ""
    return meta


def chroma_where(filters: SearchFilters) -> dict[str, Any] | None:
    """The part of the filters Chroma can evaluate; None when there is nothing to push down."""
    clauses: list[dict[str, Any]] = []
    if filters.min_price is not None or filters.max_price is not None:
        clauses.append({"has_price": True})
        if filters.min_price is not None:
            clauses.append({"price": {"$gte": float(filters.min_price)}})
        if filters.max_price is not None:
            clauses.append({"price": {"$lte": float(filters.max_price)}})
    if filters.currency:
        clauses.append({"currency": filters.currency.upper()})
    if filters.in_stock:
        clauses.append({"stock": {"$ne": 0}})
    keys = [f"brand{i}" for i in range(MAX_BRAND_NAMES)]
    if filters.brands:
        wanted = sorted({b.strip().casefold() for b in filters.brands if b.strip()})
        if wanted:
            clauses.append({"$or": [{k: {"$in": wanted}} for k in keys]})
    if filters.exclude_brands:
        unwanted = sorted({b.strip().casefold() for b in filters.exclude_brands if b.strip()})
        for k in keys:
            clauses.append({k: {"$nin": unwanted}})
    if filters.category:
        cat = filters.category.casefold()
        depth = min(cat.count(" > ") + 1, MAX_LEVELS)
        options: list[dict[str, Any]] = [{f"catp{depth - 1}": cat}]
        if depth == 1:
            options += [{f"catn{i}": cat} for i in range(1, MAX_LEVELS)]
        clauses.append(options[0] if len(options) == 1 else {"$or": options})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _client(settings: Settings) -> Any:
    try:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
    except ImportError as exc:  # pragma: no cover - core dependency
        raise UsageError("chromadb is not installed: pip install 'chromadb>=1.5,<1.6'") from exc
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_host:
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
        except Exception as exc:
            raise BackendError(
                f"Cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({exc}). "
                "Start one with `chroma run --path DIR --port PORT`, or drop --chroma-host to use embedded Chroma."
            ) from exc
    settings.ensure_home()
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


class ChromaVectorIndex:
    def __init__(self, settings: Settings, embedder_name: str, dim: int) -> None:
        self.settings = settings
        self.embedder_name = embedder_name
        self.dim = dim
        self.remote = bool(settings.chroma_host)
        self._lock = threading.RLock()
        self._stale: set[str] = set()  # ids changed by other processes since the graph was opened
        self._stale_vectors: dict[str, np.ndarray] = {}
        # ids -> vectors for products changed by other processes (set by the Catalog)
        self.vector_source: Callable[[list[str]], dict[str, np.ndarray]] | None = None
        self._open()

    def _open(self) -> None:
        self._client = _client(self.settings)
        try:
            self._collection = self._client.get_or_create_collection(
                self.settings.collection,
                metadata={"hnsw:space": "cosine", "embedder": self.embedder_name, "dim": self.dim},
                embedding_function=None,
            )
        except Exception as exc:
            raise BackendError(f"Chroma could not open the '{self.settings.collection}' collection: {exc}") from exc
        meta = self._collection.metadata or {}
        if meta.get("embedder") not in (None, self.embedder_name) or meta.get("dim") not in (None, self.dim):
            raise UsageError(
                f"The vector index under {self.settings.home} was built with embedder "
                f"{meta.get('embedder')!r} ({meta.get('dim')}-d), not {self.embedder_name!r} ({self.dim}-d). "
                "Run `shopassist catalog reindex` to rebuild it with the current embedder, or use the "
                "embedder it was built with."
            )

    def reopen(self) -> None:
        """Reload the HNSW graph from disk (embedded mode) so that other processes' writes are in it."""
        if self.remote:
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        with self._lock:
            SharedSystemClient.clear_system_cache()
            self._open()
            self._stale.clear()
            self._stale_vectors.clear()

    def drop(self) -> None:
        with self._lock:
            try:
                self._client.delete_collection(self.settings.collection)
            except Exception:  # noqa: BLE001 - absent is fine
                pass
            self._open()

    # -- writes -------------------------------------------------------------------------------
    def upsert(self, products: Sequence[Product], vectors: np.ndarray) -> None:
        if not products:
            return
        with self._lock:
            try:
                self._collection.upsert(
                    ids=[p.id for p in products],
                    embeddings=np.asarray(vectors, dtype=np.float32),
                    metadatas=[product_metadata(p) for p in products],
                    documents=[p.search_text()[:2000] for p in products],
                )
            except Exception as exc:
                raise BackendError(f"Chroma rejected an upsert of {len(products)} products: {exc}") from exc
            for p in products:
                self._stale.discard(p.id)
                self._stale_vectors.pop(p.id, None)

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._lock:
            try:
                self._collection.delete(ids=list(ids))
            except Exception as exc:
                raise BackendError(f"Chroma could not delete {len(ids)} products: {exc}") from exc

    def count(self) -> int:
        return int(self._collection.count())

    # -- freshness across processes --------------------------------------------------------------
    def mark_changed_elsewhere(self, ids: Iterable[str], reopen_above: int = 500) -> None:
        if self.remote:
            return
        with self._lock:
            for pid in ids:
                self._stale.add(pid)
                self._stale_vectors.pop(pid, None)
            if len(self._stale) > reopen_above:
                self.reopen()

    def _vectors_for(self, ids: list[str]) -> dict[str, np.ndarray]:
        """Vectors of ids changed elsewhere. The stale graph cannot serve them (Chroma answers
        'Error finding id'), so they come from ``vector_source``: the catalog re-embeds the
        current record with the same embedder, which gives the vector Chroma stored."""
        missing = [i for i in ids if i not in self._stale_vectors]
        if missing and self.vector_source is not None:
            self._stale_vectors.update(self.vector_source(missing))
        return {i: self._stale_vectors[i] for i in ids if i in self._stale_vectors}

    # -- reads ----------------------------------------------------------------------------------
    def query(
        self,
        vector: np.ndarray,
        n: int,
        where: dict[str, Any] | None = None,
        allowed: Any = None,
    ) -> list[tuple[str, float]]:
        """Top ``n`` (id, cosine similarity) for ``vector``; ``allowed(id)`` vets the stale set."""
        with self._lock:
            total = self.count()
            if total == 0 or n <= 0:
                return []
            try:
                result = self._collection.query(
                    query_embeddings=np.asarray(vector, dtype=np.float32)[None, :],
                    n_results=min(n, total),
                    where=where,
                    include=["distances"],
                )
            except Exception as exc:
                raise BackendError(f"Chroma query failed: {exc}") from exc
            hits = [
                (pid, 1.0 - float(dist))
                for pid, dist in zip(result["ids"][0], result["distances"][0], strict=True)
                if pid not in self._stale
            ]
            if self._stale:
                candidates = [pid for pid in self._stale if allowed is None or allowed(pid)]
                if candidates:
                    vectors = self._vectors_for(candidates)
                    if vectors:
                        ids = list(vectors)
                        sims = np.stack([vectors[i] for i in ids]) @ np.asarray(vector, dtype=np.float32)
                        hits.extend(zip(ids, (float(s) for s in sims), strict=True))
                        hits.sort(key=lambda h: -h[1])
                        hits = hits[:n]
            return hits

"""The dense leg: product vectors in Chroma (embedded ``PersistentClient`` or a ``chroma run`` server).

The same code serves both: ``ChromaVectorIndex.open(settings)`` picks ``HttpClient`` when a host
is configured. Each vector carries flat scalar metadata (price, stock, brand names, category
levels) for operators and other Chroma clients; the retriever does not use Chroma's ``where``:
measured at 100k products with chromadb 1.5.9, any metadata filter (even one matching 186
products) made a query take 80-900 ms against 6-8 ms unfiltered, so filtered searches are planned
by the retriever (see search.py).

An embedded Chroma keeps its HNSW graph in the memory of the process that opened it and does not
see vectors another process wrote afterwards (measured with chromadb 1.5). The catalog's change
sequence tells the searching process which ids changed elsewhere (``stale``); ``query`` leaves
them out, the retriever scores them exactly from the catalog's vector copies, and ``reopen``
reloads the graph once the set grows large. A Chroma server has no such gap.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from retrieval.filters import MAX_BRAND_NAMES, brand_names
from shopassist.config import Settings
from shopassist.errors import BackendError, UsageError
from shopassist.models import Product

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


def drop_collection(settings: Settings, name: str) -> None:
    """Delete the collection ``name`` (an embedder upgrade replaced it); BackendError if Chroma fails."""
    try:
        _client(settings).delete_collection(name)
    except Exception as exc:
        raise BackendError(f"Chroma could not drop the '{name}' collection: {exc}") from exc


class ChromaVectorIndex:
    """The ANN index over the main product vectors (exact copies live in the catalog store)."""

    def __init__(self, settings: Settings, embedder_name: str, dim: int) -> None:
        self.settings = settings
        self.embedder_name = embedder_name
        self.dim = dim
        self.remote = bool(settings.chroma_host)
        self._lock = threading.RLock()
        self.stale: set[str] = set()  # ids changed by other processes since the graph was opened
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
            self.stale.clear()

    def remove(self) -> None:
        """Delete the collection for good (an embedder upgrade replaced it)."""
        with self._lock, contextlib.suppress(Exception):
            self._client.delete_collection(self.settings.collection)

    def drop(self) -> None:
        with self._lock:
            with contextlib.suppress(Exception):
                self._client.delete_collection(self.settings.collection)
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
            self.stale.difference_update(p.id for p in products)

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

    def ids(self) -> set[str]:
        """Every id the index holds (no vectors read)."""
        with self._lock:
            try:
                return set(self._collection.get(include=[])["ids"])
            except Exception as exc:
                raise BackendError(f"Chroma could not list the '{self.settings.collection}' collection: {exc}") from exc

    def mark_changed_elsewhere(self, ids: Iterable[str], reopen_above: int = 2000) -> None:
        """Ids another process changed: the searcher scores them exactly until the next reopen."""
        if self.remote:
            return
        with self._lock:
            self.stale.update(ids)
            if len(self.stale) > reopen_above:
                self.reopen()

    # -- reads ----------------------------------------------------------------------------------
    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """Approximate top ``n`` (id, cosine similarity), stale ids left out (the caller scores them)."""
        if n <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32)[None, :]
        with self._lock:
            collection = self._collection
        try:
            # outside the lock: Chroma answers queries from several threads at once; no count()
            # first (at 100k products it costs ~8 ms, as much as the query): callers ask for at
            # most the live catalog's size
            result = collection.query(query_embeddings=query, n_results=n, include=["distances"])
        except Exception as first:
            # a reopen swapped the collection meanwhile, or the index holds fewer than ``n`` (a
            # partly built one): ask again under the lock, for what it has
            with self._lock:
                try:
                    total = self.count()
                    if total == 0:
                        return []
                    result = self._collection.query(
                        query_embeddings=query, n_results=min(n, total), include=["distances"]
                    )
                except Exception as exc:
                    raise BackendError(f"Chroma query failed: {exc}") from first
        with self._lock:
            return [
                (pid, 1.0 - float(dist))
                for pid, dist in zip(result["ids"][0], result["distances"][0], strict=True)
                if pid not in self.stale
            ]

"""The in-memory mirror of the live catalog, and the read-only view searches read it through.

``Mirror`` is the catalog's working copy of the products, indexed by BM25 slot: the BM25
postings, the filter columns (price, stock, currency, brand and category slots), the vectors and
a mask of live slots. Only ``Catalog`` changes it, while applying the change feed (``put`` and
``remove``); nothing outside ``catalog.py`` should hold a ``Mirror``.

``CatalogView`` is what everything else reads (``Catalog.view()``): exactly what the retriever
needs, read-only, and sharing the mirror's storage, so that asking for it costs nothing per
search. Mappings are ``MappingProxyType``s, arrays are read-only numpy views, the lexical index is
a ``BM25View``. A view is live: it shows the mirror as of the catalog's last ``refresh()``
(``Catalog.view()`` refreshes first), so take one per operation rather than keeping it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from retrieval.filters import brand_names, matches
from retrieval.lexical import BM25Index, BM25View
from shopassist.models import Product, SearchFilters, split_category

_INT64_MAX = int(np.iinfo(np.int64).max)


BROWSE_TIE_WINDOW = 20

# A filtered search that keeps too much of the catalog for an exact pass but too little for the
# HNSW graph (see retrieval/search.py) ranks the products it keeps on a 64-d projection of their
# vectors first (PCA, fitted on a sample of the catalog: 256 bytes a product instead of 2 KB to
# read), then scores the best ``candidates`` exactly. Measured on a 100k catalog with USE vectors
# and 1,000 candidates: recall@10 1.00, recall@100 0.995-0.998 of the exact ranking (5-15% kept).
REDUCED_DIM = 64
REDUCE_ABOVE = 50_000  # products with vectors before a projection is fitted (refitted as it doubles)
REDUCE_SAMPLE = 20_000


def popularity(product: Product) -> tuple[float, float]:
    """(units sold, rating): what browsing sorts by, best first; 0 where unknown or not a number."""
    sales = (product.model_extra or {}).get("sale_count") or 0
    sales = float(sales) if isinstance(sales, int | float) and not isinstance(sales, bool) else 0.0
    rating = float(product.rating or 0.0)
    return (sales if np.isfinite(sales) else 0.0, rating if np.isfinite(rating) else 0.0)


class Mirror:
    """In-memory copy of the live catalog, indexed by BM25 slot; written by ``Catalog`` only."""

    def __init__(self, k1: float, b: float) -> None:
        self.bm25 = BM25Index(k1=k1, b=b)
        self.products: dict[str, Product] = {}
        self.price = np.full(1024, np.nan, dtype=np.float64)
        self.stock = np.full(1024, -1, dtype=np.int64)
        self.currency: list[str] = []
        self.brand_slots: dict[str, set[int]] = {}
        self.category_slots: dict[str, set[int]] = {}
        self.vectors: np.ndarray | None = None  # (capacity, dim) float32, main vectors by slot
        self.has_vector = np.zeros(1024, dtype=bool)
        self.live = np.zeros(1024, dtype=bool)
        # what browsing (no query text) sorts by: units sold, then rating (0 where unknown)
        self.sales = np.zeros(1024, dtype=np.float64)
        self.rating = np.zeros(1024, dtype=np.float64)
        self.doc_vectors: dict[int, np.ndarray] = {}
        self.seq = 0
        self.vector_count = 0  # slots with a main vector
        # (basis (dim, REDUCED_DIM), projected vectors by slot): one tuple, so a reader never sees
        # a basis with another basis's projections
        self.reduction: tuple[np.ndarray, np.ndarray] | None = None
        self._reduced_at = 0  # vector_count when the projection was fitted

    def _grow(self, slot: int) -> None:
        if slot >= len(self.price):
            size = max(2 * len(self.price), slot + 1)
            price = np.full(size, np.nan, dtype=np.float64)
            price[: len(self.price)] = self.price
            stock = np.full(size, -1, dtype=np.int64)
            stock[: len(self.stock)] = self.stock
            self.price, self.stock = price, stock
            has = np.zeros(size, dtype=bool)
            has[: len(self.has_vector)] = self.has_vector
            self.has_vector = has
            live = np.zeros(size, dtype=bool)
            live[: len(self.live)] = self.live
            self.live = live
            for name in ("sales", "rating"):
                column = np.zeros(size, dtype=np.float64)
                old = getattr(self, name)
                column[: len(old)] = old
                setattr(self, name, column)
        if self.vectors is not None and slot >= len(self.vectors):
            grown = np.zeros((max(2 * len(self.vectors), slot + 1), self.vectors.shape[1]), dtype=np.float32)
            grown[: len(self.vectors)] = self.vectors
            self.vectors = grown
        if self.reduction is not None and slot >= len(self.reduction[1]):
            basis, reduced = self.reduction
            grown = np.zeros((max(2 * len(reduced), slot + 1), reduced.shape[1]), dtype=np.float32)
            grown[: len(reduced)] = reduced
            self.reduction = (basis, grown)
        while len(self.currency) <= slot:
            self.currency.append("")

    @staticmethod
    def _category_keys(product: Product) -> set[str]:
        levels = [lv.casefold() for lv in split_category(product.category)]
        keys = {"p:" + " > ".join(levels[: i + 1]) for i in range(len(levels))}
        keys |= {"n:" + lv for lv in levels}
        return keys

    def remove(self, product_id: str) -> None:
        old = self.products.pop(product_id, None)
        slot = self.bm25.slot(product_id)
        if slot is None:
            return
        if old is not None:
            for name in brand_names(old.brand):
                self.brand_slots.get(name, set()).discard(slot)
            for key in self._category_keys(old):
                self.category_slots.get(key, set()).discard(slot)
        self.price[slot] = np.nan
        self.stock[slot] = -1
        self.currency[slot] = ""
        if self.has_vector[slot]:
            self.vector_count -= 1
        self.has_vector[slot] = False
        self.live[slot] = False
        self.sales[slot] = 0.0
        self.rating[slot] = 0.0
        self.doc_vectors.pop(slot, None)
        self.bm25.remove(product_id)

    def put(
        self,
        product: Product,
        tokens: list[str],
        vector: np.ndarray | None = None,
        doc_vector: np.ndarray | None = None,
    ) -> None:
        """Put (or replace) a product. ValueError, with nothing changed, when a value does not fit
        the columns (a row from before a limit existed); a vector of the wrong shape is left out."""
        price = np.nan if product.price is None else float(product.price)
        stock = -1 if product.stock is None else product.stock
        if not (np.isnan(price) or np.isfinite(price)):
            raise ValueError(f"price {price} is not a finite number")
        if not (-1 <= stock <= _INT64_MAX):
            raise ValueError("stock does not fit a 64-bit integer")
        vector = self._fitting(vector, None if self.vectors is None else self.vectors.shape[1])
        doc_vector = self._fitting(doc_vector, None if vector is None else len(vector))
        self.remove(product.id)
        slot = self.bm25.upsert(product.id, tokens)
        if vector is not None and self.vectors is None:
            self.vectors = np.zeros((max(1024, len(self.price)), len(vector)), dtype=np.float32)
        self._grow(slot)
        if vector is not None and self.vectors is not None:
            self.vectors[slot] = vector
            self.has_vector[slot] = True
            self.vector_count += 1
            if self.reduction is not None:
                basis, reduced = self.reduction
                reduced[slot] = vector @ basis
            if self.vector_count >= max(REDUCE_ABOVE, 2 * self._reduced_at):
                self.fit_reduction()
        if doc_vector is not None:
            self.doc_vectors[slot] = _read_only(doc_vector)
        self.products[product.id] = product
        self.live[slot] = True
        self.price[slot] = price
        self.stock[slot] = stock
        self.sales[slot], self.rating[slot] = popularity(product)
        self.currency[slot] = product.currency
        for name in brand_names(product.brand):
            self.brand_slots.setdefault(name, set()).add(slot)
        for key in self._category_keys(product):
            self.category_slots.setdefault(key, set()).add(slot)

    def fit_reduction(self) -> None:
        """Fit the 64-d projection on a sample of the vectors and project every slot (about a
        second at 1M products); refitted each time the catalog doubles."""
        if self.vectors is None:
            return
        n = self.bm25.capacity
        have = np.flatnonzero(self.has_vector[:n])
        if len(have) <= REDUCED_DIM:
            return
        rng = np.random.default_rng(0)
        sample = self.vectors[rng.choice(have, min(len(have), REDUCE_SAMPLE), replace=False)].astype(np.float64)
        sample -= sample.mean(axis=0)
        _, eigvecs = np.linalg.eigh(sample.T @ sample)  # ascending: the last columns explain most
        basis = np.ascontiguousarray(eigvecs[:, ::-1][:, :REDUCED_DIM], dtype=np.float32)
        # ranking by (q . basis) . (v . basis) equals ranking on the centred projection: the mean's
        # share is the same for every product
        reduced = np.zeros((len(self.vectors), basis.shape[1]), dtype=np.float32)
        for start in range(0, n, 65_536):
            stop = min(start + 65_536, n)
            reduced[start:stop] = self.vectors[start:stop] @ basis
        self.reduction = (basis, reduced)
        self._reduced_at = self.vector_count

    @staticmethod
    def _fitting(vector: np.ndarray | None, dim: int | None) -> np.ndarray | None:
        """``vector`` when it is one finite row of ``dim`` values (any length when ``dim`` is None)."""
        if vector is None:
            return None
        vector = np.asarray(vector, dtype=np.float32)
        if vector.ndim != 1 or len(vector) == 0 or (dim is not None and len(vector) != dim):
            return None
        return vector if np.isfinite(vector).all() else None

    def scalar_mask(self, filters: SearchFilters) -> np.ndarray | None:
        """Boolean mask over slots for the scalar filters; None when there are none."""
        f = filters
        n = self.bm25.capacity
        mask: np.ndarray | None = None

        def both(m: np.ndarray) -> None:
            nonlocal mask
            mask = m if mask is None else (mask & m)

        price = self.price[:n]
        if f.min_price is not None or f.max_price is not None:
            with np.errstate(invalid="ignore"):
                m = ~np.isnan(price)
                if f.min_price is not None:
                    m &= price >= f.min_price
                if f.max_price is not None:
                    m &= price <= f.max_price
            both(m)
        if f.currency:
            cur = f.currency.upper()
            both(np.fromiter((c == cur for c in self.currency[:n]), dtype=bool, count=n))
        if f.in_stock:
            both(self.stock[:n] != 0)
        if f.brands:
            m = np.zeros(n, dtype=bool)
            for b in f.brands:
                slots = self.brand_slots.get(b.strip().casefold())
                if slots:
                    m[_slot_array(slots)] = True
            both(m)
        if f.exclude_brands:
            m = np.ones(n, dtype=bool)
            for b in f.exclude_brands:
                slots = self.brand_slots.get(b.strip().casefold())
                if slots:
                    m[_slot_array(slots)] = False
            both(m)
        if f.category:
            levels = [lv.casefold() for lv in split_category(f.category)]
            keys = ["p:" + " > ".join(levels)]
            if len(levels) == 1:
                keys.append("n:" + levels[0])
            m = np.zeros(n, dtype=bool)
            for key in keys:
                slots = self.category_slots.get(key)
                if slots:
                    m[_slot_array(slots)] = True
            both(m)
        return mask


def _slot_array(slots: set[int]) -> np.ndarray:
    return np.fromiter(slots, dtype=np.int64, count=len(slots))


def _mask_key(filters: SearchFilters) -> tuple[object, ...]:
    f = filters
    return (f.min_price, f.max_price, f.currency, f.in_stock, tuple(f.brands), tuple(f.exclude_brands), f.category)


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (no copy)."""
    view = array.view()
    view.flags.writeable = False
    return view


class CatalogView:
    """Read-only, live view of a catalog's mirror: what searches read (``Catalog.view()``).

    Nothing is copied: ``products`` is a ``MappingProxyType`` over the mirror's dict, ``bm25`` a
    ``BM25View`` over its index, arrays are read-only views. Slots index every per-slot array
    and ``bm25.slot_ids``; ``capacity`` slots exist, of which ``live`` marks the occupied ones.
    """

    __slots__ = ("_bm25", "_frozen", "_mask", "_mirror", "_products")

    def __init__(self, mirror: Mirror) -> None:
        self._mirror = mirror
        self._products: Mapping[str, Product] = MappingProxyType(mirror.products)
        self._bm25 = BM25View(mirror.bm25)
        self._frozen: tuple[np.ndarray | None, np.ndarray | None] = (None, None)  # (mirror array, its view)
        # the last scalar mask, keyed by the mirror's seq and size and the filters: both legs of a
        # search ask for it (a category over 1M products costs ~10 ms to build)
        self._mask: tuple[tuple[object, ...], np.ndarray | None] | None = None

    # -- products and the lexical index ------------------------------------------------------
    @property
    def products(self) -> Mapping[str, Product]:
        """The live products by id (read-only; reflects later refreshes)."""
        return self._products

    @property
    def bm25(self) -> BM25View:
        """The BM25 index over the live products (read-only): scoring, slots, terms."""
        return self._bm25

    @property
    def seq(self) -> int:
        """The change sequence number the mirror was last refreshed to."""
        return self._mirror.seq

    @property
    def capacity(self) -> int:
        """How many slots exist (live or free): the length of ``live`` and of BM25 score arrays."""
        return self._mirror.bm25.capacity

    @property
    def live(self) -> np.ndarray:
        """Boolean mask over the ``capacity`` slots: True where a live product sits (read-only)."""
        return _read_only(self._mirror.live[: self._mirror.bm25.capacity])

    def __len__(self) -> int:
        """How many live products."""
        return len(self._mirror.products)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._mirror.products

    def get(self, product_id: str) -> Product | None:
        return self._mirror.products.get(product_id)

    def doc_terms(self, product_id: str) -> Mapping[str, int]:
        """The indexed terms of a product and their counts (empty if it is not live)."""
        return self._bm25.doc_terms(product_id)

    # -- filters -----------------------------------------------------------------------------
    def scalar_mask(self, filters: SearchFilters) -> np.ndarray | None:
        """Boolean mask over the ``capacity`` slots for the scalar filters (price, currency, stock,
        brands, category); None when there are none. ``filters.matches_rest`` covers the rest.
        Read-only, and shared by the searches that ask for the same filters in between changes."""
        m = self._mirror
        key = (m.seq, m.bm25.capacity, len(m.products), *_mask_key(filters))
        cached = self._mask  # one tuple: a concurrent search never sees a key with another's mask
        if cached is not None and cached[0] == key:
            return cached[1]
        mask = m.scalar_mask(filters)
        if mask is not None:
            mask.flags.writeable = False
        self._mask = (key, mask)
        return mask

    def by_popularity(self, filters: SearchFilters, top_k: int) -> list[Product]:
        """The ``top_k`` live products that pass ``filters``, most sold first, then best rated, then
        by id: the scalar filters and the order on the columns, the rest checked on the few walked.
        Ties with the k-th are broken by id among the next ``BROWSE_TIE_WINDOW`` x k products walked
        (a catalog without sales or ratings ties everywhere: browsing it stays ~1 ms at 100k)."""
        m = self._mirror
        n = m.bm25.capacity
        mask = m.scalar_mask(filters)
        slots = np.flatnonzero(m.live[:n] if mask is None else (mask & m.live[:n]))
        if len(slots) == 0 or top_k < 1:
            return []
        sales, rating = m.sales[slots], m.rating[slots]
        order = slots[np.lexsort((-rating, -sales))]
        ids = m.bm25.slot_ids
        kept: list[tuple[float, float, str]] = []
        window = top_k * BROWSE_TIE_WINDOW
        for walked, slot in enumerate(order):
            key = (-float(m.sales[slot]), -float(m.rating[slot]))
            if len(kept) >= top_k and (key != kept[-1][:2] or walked >= window):
                break  # past the last tie of the k-th product
            pid = ids[int(slot)]
            p = m.products.get(pid) if pid is not None else None
            if p is not None and matches(p, filters):
                kept.append((*key, p.id))
        kept.sort()
        return [m.products[pid] for _, _, pid in kept[:top_k]]

    def allowed(self, filters: SearchFilters) -> Callable[[str], bool]:
        """A predicate on ids: the product is live and passes every filter."""
        products = self._mirror.products

        def check(pid: str) -> bool:
            p = products.get(pid)
            return p is not None and matches(p, filters)

        return check

    # -- vectors -----------------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        """The size of the main vectors (None before any)."""
        vectors = self._mirror.vectors
        return None if vectors is None else int(vectors.shape[1])

    def _vectors(self) -> np.ndarray | None:
        """A read-only view of the main vectors by slot (rebuilt when the mirror grows)."""
        vectors = self._mirror.vectors
        source, frozen = self._frozen  # one tuple, so a concurrent reader never sees a mismatch
        if vectors is not source:
            frozen = None if vectors is None else _read_only(vectors)
            self._frozen = (vectors, frozen)
        return frozen

    def vector_of(self, product_id: str, kind: str = "main") -> np.ndarray | None:
        """The stored vector of a product ('main' or 'doc'), read-only; None if it has none."""
        m = self._mirror
        slot = m.bm25.slot(product_id)
        if slot is None:
            return None
        if kind == "doc":
            return m.doc_vectors.get(slot)
        vectors = self._vectors()
        if vectors is None or not m.has_vector[slot]:
            return None
        return vectors[slot]

    def exact_dense(self, qvec: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Cosine of ``qvec`` with the main vectors at ``slots`` (0 where a vector is missing)."""
        m = self._mirror
        if m.vectors is None or len(slots) == 0:
            return np.zeros(len(slots), dtype=np.float32)
        capacity = m.bm25.capacity
        if len(slots) * 4 > capacity:  # most of the catalog: one product over all rows, no gather copy
            return (m.vectors[:capacity] @ qvec)[slots] * m.has_vector[slots]
        return (m.vectors[slots] @ qvec) * m.has_vector[slots]

    def nearest_by_projection(self, qvec: np.ndarray, slots: np.ndarray, n: int) -> np.ndarray | None:
        """The ``n`` of ``slots`` nearest ``qvec`` on the 64-d projection (unordered), for an exact
        pass over those only; None before a projection is fitted (a small catalog)."""
        reduction = self._mirror.reduction
        if reduction is None:
            return None
        basis, reduced = reduction
        if len(slots) == 0 or int(slots.max()) >= len(reduced) or basis.shape[0] != len(qvec):
            return None
        if len(slots) <= n:
            return slots
        scores = reduced[slots] @ (qvec @ basis)
        return slots[np.argpartition(-scores, n - 1)[:n]]

"""The catalog a process works with: the SQLite source of truth, its in-memory mirror (products,
BM25 postings, filter columns) and the Chroma vectors, kept in step.

The mirror also holds every product's vectors (float32, 2 KB a product at 512-d: 200 MB at
100k products), read from the store, so filtered searches score exactly and products changed
by another process are scored without asking Chroma.

Writes (``upsert``/``delete``) go to Chroma first and then to SQLite in one transaction; what
SQLite holds is what counts, so a crash between the two leaves at most an orphan vector that the
next search ignores and the next ingest overwrites. Writers on one home take a file lock, so
two ingests never interleave their batches.

Reads call ``refresh()`` first: one indexed SQLite read of the change sequence, and only the rows
changed since the last refresh are applied. That is what makes an upsert by any process visible
to the next search of every process on the same home. The mirror is built by the first read, not
by a write: a process that only writes (a bulk ingest) never holds it (13 GB at 1M products).

Readers outside this module never touch the mirror: ``view()`` refreshes and returns a
``CatalogView`` (retrieval/mirror.py), the read-only interface searches use; ``get``,
``doc_terms``, ``vectors_for`` and ``nearest`` serve single lookups.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import IO, TYPE_CHECKING

import numpy as np

from retrieval import lexical as _lexical_module
from retrieval import mirror as _mirror_module
from retrieval import store as _store_module
from retrieval.filters import matches_rest
from retrieval.lexical import BM25View
from retrieval.mirror import CatalogView, Mirror
from retrieval.store import Change, StoreItem, change_pages, open_store, product_hash
from retrieval.tokenize import Tokenizer, default_tokenizer
from shopassist import models as _models_module
from shopassist import snapshot
from shopassist.config import Settings
from shopassist.errors import UsageError
from shopassist.memory import release_free_memory
from shopassist.models import Product, SearchFilters

if TYPE_CHECKING:
    from retrieval.embedders import Embedder
    from retrieval.vector import ChromaVectorIndex

log = logging.getLogger(__name__)

# A process that had to apply at least this many changes on its first refresh saves the mirror
# (shopassist.snapshot), so the next process loads it in ~0.4 s instead of ~2.6 s (10k products).
SNAPSHOT_MIN_CHANGES = 2000
# After applying this many changes at once (a first load, a worker far behind a bulk ingest) the
# process hands the heap it freed meanwhile back to the system: building a 100k mirror leaves
# ~0.7 GB of freed-but-held heap behind (1.55 -> 0.86 GB resident after malloc_trim).
RELEASE_AFTER_CHANGES = 20_000
_MIRROR_CODE = snapshot.code_fingerprint([_mirror_module, _lexical_module, _store_module, _models_module])


@dataclass
class UpsertResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    seq: int = 0


class Catalog:
    """Products under one home: get, upsert, delete, and the indexes searches read."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        tokenizer: Tokenizer | None = None,
        k1: float = 0.3,
        b: float = 0.5,
    ) -> None:
        self.settings = settings
        settings.ensure_home()
        self.store = open_store(settings)  # SQLite under the home, or PostgreSQL at settings.database_url
        self.tokenizer = tokenizer or default_tokenizer()
        self._embedder = embedder
        self._vectors: ChromaVectorIndex | None = None
        self._mirror = Mirror(k1, b)
        self._bm25_params = (k1, b)
        self.snapshot_used = False  # the first refresh started from a saved mirror
        self._view = CatalogView(self._mirror)
        self._lock = threading.RLock()
        self._open_lock = threading.RLock()
        # a private ANN index (see ``_ann_is_private``) is written by every worker of its home:
        # the writes take a file lock under the home (held once per process, re-entrantly)
        self._ann_lock = threading.RLock()
        self._ann_depth = 0
        self._ann_handle: IO[str] | None = None
        self._loaded = False
        self._own_seqs: set[int] = set()  # sequences this process wrote (its Chroma graph has them)
        self._unreadable: dict[str, str] = {}  # stored rows that cannot be read: id -> reason
        # the embedder backend the catalog's vectors come from (store meta "embedder"), resolved on
        # first use; an upgrade (retrieval/upgrade.py) switches it and every process follows
        self._backend: str | None = None
        self._mirror_backend: str | None = None  # what the store named when the mirror was loaded
        self._given_embedders: dict[str, Embedder] = {}
        self.embedder_factory: Callable[[str], Embedder] | None = None  # backend name -> embedder
        self._check_tokenizer()

    # -- components --------------------------------------------------------------------------
    # both are opened on first use, once, whichever of many concurrent requests comes first (two
    # Chroma clients opened at once on one path fail with "could not connect to tenant")
    @property
    def embedder_backend(self) -> str:
        """The embedder backend this catalog's vectors come from: what the store records (set by the
        first write, a reindex or an embedder upgrade), else the settings' (``use`` by default).
        Settings naming another backend than the stored one is an error, not a silent mix."""
        if self._backend is None:
            with self._open_lock:
                if self._backend is None:
                    stored = self.store.meta("embedder")
                    wanted = self.settings.embedder
                    if stored is not None and wanted is not None and wanted != stored:
                        raise UsageError(
                            f"The catalog under {self.settings.home} is embedded with {stored!r}, not {wanted!r}. "
                            f"Leave out --embedder (SHOPASSIST_EMBEDDER) to use {stored!r}, or switch: "
                            f"`shopassist embedder upgrade --to {wanted}` (searchable throughout) or "
                            "`shopassist catalog reindex`."
                        )
                    self._backend = stored or wanted or "use"
        return self._backend

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            backend = self.embedder_backend
            with self._open_lock:
                if self._embedder is None:
                    self._embedder = self._make_embedder(backend)
        return self._embedder

    def _make_embedder(self, backend: str) -> Embedder:
        if backend in self._given_embedders:
            return self._given_embedders[backend]
        if self.embedder_factory is not None:
            return self.embedder_factory(backend)
        from retrieval.embedders import make_embedder

        return make_embedder(replace(self.settings, embedder=backend))

    def _collection(self) -> str:
        """The Chroma collection of the active vectors (an upgrade builds a new one beside it)."""
        return self.store.meta("collection") or self.settings.collection

    @property
    def vectors(self) -> ChromaVectorIndex:
        opened = None
        if self._vectors is None:
            with self._open_lock:
                if self._vectors is None:
                    from retrieval.vector import ChromaVectorIndex

                    opened = self._vectors = ChromaVectorIndex(
                        replace(self.settings, collection=self._collection()), self.embedder.name, self.embedder.dim
                    )
        if opened is not None and self._ann_is_private:
            # after _open_lock is released: syncing refreshes under self._lock, which a writer holds
            # while it opens the index (taking _lock inside _open_lock would deadlock with it)
            with self._lock:
                self._sync_ann(opened)
        return self._vectors  # type: ignore[return-value]

    @property
    def _ann_is_private(self) -> bool:
        """The catalog is shared (PostgreSQL) but the ANN index is this home's embedded Chroma:
        it holds only what this home wrote, so other workers' writes are added to it here."""
        return self.settings.database_url is not None and not self.settings.chroma_host

    @contextlib.contextmanager
    def _private_ann_writes(self) -> Iterator[None]:
        """Around writes to a private ANN index: one process of the home at a time (the workers of
        ``serve --workers N`` share the home's embedded Chroma, which takes no concurrent writers;
        two syncing it at once at start broke its segment). Nothing when the index is not private.
        Taken innermost, with ``_lock`` held."""
        if not self._ann_is_private:
            yield
            return
        with self._ann_lock:
            if self._ann_depth == 0:
                handle = open(self.settings.home / ".ann.lock", "a+")  # noqa: SIM115 - held across the yield
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                self._ann_handle = handle
            self._ann_depth += 1
            try:
                yield
            finally:
                self._ann_depth -= 1
                if self._ann_depth == 0 and self._ann_handle is not None:
                    fcntl.flock(self._ann_handle.fileno(), fcntl.LOCK_UN)
                    self._ann_handle.close()
                    self._ann_handle = None

    def _sync_ann(self, index: ChromaVectorIndex) -> None:
        """Add to ``index`` every live product it lacks (from the store's vector copies) and drop
        what the catalog no longer has: a worker that starts on a fresh home after others wrote
        the catalog finds those products through the dense leg too."""
        with self._private_ann_writes():
            self._sync_ann_locked(index)

    def _sync_ann_locked(self, index: ChromaVectorIndex) -> None:
        self.refresh()
        have = index.ids()
        view = self._view
        live = set(view.products)
        gone = sorted(have - live)
        if gone:
            index.delete(gone)
        missing = sorted(pid for pid in live - have if view.vector_of(pid, "main") is not None)
        for i in range(0, len(missing), 1000):
            chunk = [view.products[pid] for pid in missing[i : i + 1000]]
            index.upsert(chunk, np.stack([view.vector_of(p.id, "main") for p in chunk]))  # type: ignore[misc]
        if missing or gone:
            log.info("ANN index under %s: added %d products, dropped %d", self.settings.home, len(missing), len(gone))

    def _index_elsewhere(self, changes: Sequence[Change]) -> None:
        """Other workers' changes into this home's private ANN index (see ``_ann_is_private``)."""
        assert self._vectors is not None
        deleted = [c.id for c in changes if c.deleted or c.product is None]
        live = [
            (c.product, c.vector) for c in changes if not c.deleted and c.product is not None and c.vector is not None
        ]
        with self._private_ann_writes():
            if deleted:
                self._vectors.delete(deleted)
            if live:
                self._vectors.upsert([p for p, _ in live], np.stack([v for _, v in live]))

    @property
    def bm25(self) -> BM25View:
        """The BM25 index, refreshed and read-only (the same as ``view().bm25``)."""
        self.refresh()
        return self._view.bm25

    def _check_tokenizer(self) -> None:
        stored = self.store.meta("tokenizer")
        if stored is None:
            self.store.set_meta("tokenizer", self.tokenizer.version)
        elif stored != self.tokenizer.version:
            log.warning(
                "catalog was tokenized with %s, this process uses %s: re-tokenizing in memory; "
                "run `shopassist catalog reindex` to store the new tokens",
                stored,
                self.tokenizer.version,
            )

    # -- the in-memory mirror ----------------------------------------------------------------------
    def view(self) -> CatalogView:
        """Refresh, then the read-only view of the live catalog that searches read (see mirror.py).

        The view is live and shares the mirror's storage: take one per operation (a search), it
        costs one refresh and copies nothing."""
        self.refresh()
        return self._view

    def refresh(self) -> int:
        """Apply changes other processes (or this one) committed; returns how many."""
        with self._lock:
            seq = self.store.seq()
            if self._loaded and seq == self._mirror.seq:
                return 0
            if not self._loaded:
                self._mirror_backend = self.store.meta("embedder")
                self._load_snapshot(seq)
            first_load = not self._loaded
            new_seq, pages = change_pages(self.store, self._mirror.seq)
            # read after the changes: a switch committed before them is seen here at the latest (an
            # upgrade writes every vector and the new name in one transaction)
            stored = self.store.meta("embedder")
            if stored is not None and stored != (self._mirror_backend or self.settings.embedder_backend):
                self._switch_embedder(stored)
                return self.refresh()
            self._mirror_backend = stored
            retokenize = self.store.meta("tokenizer") != self.tokenizer.version
            follow = not first_load and self._vectors is not None
            newly_unreadable: list[str] = []
            applied = missing = 0
            for changes in pages:  # page by page: a first load never holds every change at once
                for change in changes:
                    if not self._apply(change, retokenize):
                        newly_unreadable.append(change.id)
                applied += len(changes)
                missing += sum(1 for c in changes if not c.deleted and c.error is None and c.vector is None)
                if follow and changes:
                    if self._ann_is_private:
                        self._index_elsewhere([c for c in changes if c.seq not in self._own_seqs])
                    elif elsewhere := [c.id for c in changes if c.seq not in self._own_seqs]:
                        self._vectors.mark_changed_elsewhere(elsewhere)  # type: ignore[union-attr]
            if newly_unreadable:
                shown = "; ".join(f"{pid!r}: {self._unreadable[pid]}" for pid in newly_unreadable[:5])
                more = f" (and {len(newly_unreadable) - 5} more)" if len(newly_unreadable) > 5 else ""
                log.warning(
                    "%d catalog row(s) under %s cannot be read and are left out of search: %s%s. "
                    "Fix them in the source and ingest them again, or `shopassist catalog delete` them "
                    "(`shopassist catalog stats` lists them)",
                    len(newly_unreadable),
                    self.settings.home,
                    shown,
                    more,
                )
            if missing:
                log.warning(
                    "%d products under %s have no stored vector (built by an older version): "
                    "run `shopassist catalog reindex`",
                    missing,
                    self.settings.home,
                )
            self._mirror.seq = new_seq
            self._loaded = True
            self._own_seqs.clear()
            if first_load and applied >= SNAPSHOT_MIN_CHANGES:
                snapshot.save(self._snapshot_path(), self._snapshot_key(), (self._mirror, dict(self._unreadable)))
            if applied >= RELEASE_AFTER_CHANGES or (first_load and self.snapshot_used):
                release_free_memory()  # building the mirror freed many small blocks: hand them back
            return applied

    def _switch_embedder(self, backend: str) -> None:
        """The catalog's vectors now come from ``backend`` (an upgrade finished, in this process or
        another): drop the mirror and the ANN handle and load again from the store. Views handed out
        before keep the old mirror; a search that straddles the switch skips its dense leg."""
        log.info("catalog under %s switched embedder %s -> %s: reloading", self.settings.home, self._backend, backend)
        with self._open_lock:
            if self._embedder is not None:  # kept, should the catalog switch back
                previous = self._backend or self._mirror_backend or self.settings.embedder_backend
                self._given_embedders.setdefault(previous, self._embedder)
            if self._vectors is not None and self._ann_is_private:
                self._vectors.remove()  # this home's own copy of the old vectors
            self._backend = backend
            self._embedder = None
            self._vectors = None
        self._mirror = Mirror(*self._bm25_params)
        self._view = CatalogView(self._mirror)
        self._loaded = False
        self._unreadable.clear()
        self._own_seqs.clear()

    # -- the mirror's snapshot (shopassist.snapshot) -----------------------------------------------
    def _snapshot_path(self) -> Path:
        return snapshot.cache_path(self.settings.home, "catalog-mirror")

    def _snapshot_key(self) -> dict[str, object]:
        return {
            "kind": "catalog-mirror",
            "store": self.store.instance_id(),
            "db": str(self.store.path.resolve()),
            "tokenizer": self.tokenizer.version,
            "stored_tokenizer": self.store.meta("tokenizer"),
            "embedder": self.store.meta("embedder"),
            "bm25": self._bm25_params,
            "code": _MIRROR_CODE,
        }

    def _load_snapshot(self, seq: int) -> None:
        loaded = snapshot.load(self._snapshot_path(), self._snapshot_key())
        if loaded is None:
            return
        try:
            mirror, unreadable = loaded
            ok = isinstance(mirror, Mirror) and isinstance(unreadable, dict) and 0 <= mirror.seq <= seq
        except (TypeError, ValueError, AttributeError):
            ok = False
        if not ok:
            log.warning("catalog snapshot under %s does not fit this catalog: rebuilding it", self.settings.home)
            return
        # before the first refresh no view has been handed out: both are replaced
        self._mirror = mirror
        self._view = CatalogView(mirror)
        self._unreadable.update(unreadable)
        self.snapshot_used = True

    def catalog_fingerprint(self) -> str:
        """Which catalog, at which change: a key for indexes built from it (the facet index)."""
        self.refresh()
        return f"{self.store.instance_id()}:{self._mirror.seq}"

    def _apply(self, change: Change, retokenize: bool = False) -> bool:
        """Apply one change to the mirror; False when its row cannot be read (the product is then
        left out, and listed in ``unreadable``): no stored row can stop a load."""
        self._unreadable.pop(change.id, None)
        if change.error is not None:
            self._mirror.remove(change.id)
            self._unreadable[change.id] = change.error
            return False
        if change.deleted or change.product is None:
            self._mirror.remove(change.id)
            return True
        try:
            tokens = self.tokenizer(change.product.search_text()) if retokenize else change.tokens
            self._mirror.put(change.product, tokens, change.vector, change.doc_vector)
        except (ValueError, OverflowError, TypeError) as exc:
            self._mirror.remove(change.id)
            self._unreadable[change.id] = f"{exc}"
            return False
        return True

    @property
    def unreadable(self) -> Mapping[str, str]:
        """Stored rows left out because they cannot be read (id -> reason), as of the last refresh."""
        self.refresh()
        return MappingProxyType(dict(self._unreadable))

    def __len__(self) -> int:
        self.refresh()
        return len(self._mirror.products)

    def get(self, product_id: str) -> Product | None:
        self.refresh()
        return self._mirror.products.get(product_id)

    def get_many(self, ids: Sequence[str]) -> list[Product]:
        self.refresh()
        return [p for p in (self._mirror.products.get(i) for i in ids) if p is not None]

    def products(self) -> Iterator[Product]:
        self.refresh()
        yield from list(self._mirror.products.values())

    def term_count(self, term: str) -> int:
        """How many products hold the indexed (tokenized) ``term``."""
        self.refresh()
        return self._view.bm25.df(term)

    def doc_terms(self, product_id: str) -> Mapping[str, int]:
        """The indexed (tokenized) terms of a product and their counts, read-only; empty if unknown."""
        self.refresh()
        return self._view.doc_terms(product_id)

    # -- writes ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """One writer per catalog at a time: across processes (a file lock under the home), or
        across machines (a PostgreSQL advisory lock) when the catalog is in PostgreSQL."""
        if self.settings.database_url is not None:
            from retrieval.pg_store import PostgresProductStore

            if isinstance(self.store, PostgresProductStore):
                with self.store.write_lock():
                    yield
                return
        path = self.settings.home / ".write.lock"
        with open(path, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def upsert(self, products: Sequence[Product], *, force: bool = False) -> UpsertResult:
        """Insert or replace products by id; identical records are left alone (idempotent)."""
        result = UpsertResult()
        if not products:
            return result
        latest: dict[str, Product] = {}
        for p in products:  # the last record of an id in one batch wins
            latest[p.id] = p
        with self._lock, self.write_lock():
            self._follow_embedder()
            existing = self.store.hashes(list(latest))
            todo: list[tuple[Product, str]] = []
            for pid, p in latest.items():
                h = product_hash(p)
                if not force and existing.get(pid) == h:
                    result.unchanged.append(pid)
                    continue
                (result.updated if pid in existing else result.added).append(pid)
                todo.append((p, h))
            if todo:
                items = [p for p, _ in todo]
                vectors = self.embedder.embed_documents([p.embedding_text() for p in items])
                docs = [(p.id, t) for p in items if (t := p.document_text())]
                doc_vectors = (
                    dict(
                        zip((pid for pid, _ in docs), self.embedder.embed_documents([t for _, t in docs]), strict=True)
                    )
                    if docs
                    else {}
                )
                index = self.vectors
                with self._private_ann_writes():
                    index.upsert(items, vectors)
                result.seq = self.store.upsert(
                    StoreItem(p, self.tokenizer(p.search_text()), h, vec, doc_vectors.get(p.id))
                    for (p, h), vec in zip(todo, vectors, strict=True)
                )
                if self._loaded:
                    self._own_seqs.add(result.seq)
        if self._loaded:  # a process that has not read yet (a bulk ingest) never builds the mirror
            self.refresh()
        return result

    def _follow_embedder(self) -> None:
        """Under the write lock: embed with the backend the store names (an upgrade may have switched
        it since this process last looked), and record the backend on a catalog's first write."""
        stored = self.store.meta("embedder")
        if stored is None:
            self.store.set_meta("embedder", self.embedder_backend)
        elif self._backend is not None and stored != self._backend:
            if self._loaded:
                self.refresh()  # sees the switch and reloads
            else:  # a process that has only written holds no mirror to reload: switch at once
                self._switch_embedder(stored)

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete products by id; returns the ids that existed."""
        with self._lock, self.write_lock():
            deleted = self.store.delete(list(ids))
            if deleted:
                index = self.vectors
                with self._private_ann_writes():
                    index.delete(deleted)
                if self._loaded:
                    self._own_seqs.add(self.store.seq())
        if self._loaded:
            self.refresh()
        return deleted

    def reindex(self, progress: bool = False) -> int:
        """Rebuild vectors and tokens of every product (after changing the embedder or tokenizer)."""
        from tqdm import tqdm

        products = list(self.store.iter_products())
        wanted = self.settings.embedder
        with self.write_lock():
            if wanted is not None and wanted != self.store.meta("embedder"):
                # a reindex is how an explicit --embedder replaces the stored one in place
                self.store.set_meta("embedder", wanted)
                with self._lock:
                    self._switch_embedder(wanted)
            self.vectors.drop()
        self.store.set_meta("tokenizer", self.tokenizer.version)
        bar = tqdm(total=len(products), unit="product", desc="reindex", disable=not progress)
        for i in range(0, len(products), 256):
            chunk = products[i : i + 256]
            self.upsert(chunk, force=True)
            bar.update(len(chunk))
        bar.close()
        return len(products)

    # -- what the retriever reads (see CatalogView for the whole read-only interface) ---------------
    def scalar_mask(self, filters: SearchFilters) -> np.ndarray | None:
        """Refresh, then the boolean mask over slots for the scalar filters (None: there are none)."""
        self.refresh()
        return self._view.scalar_mask(filters)

    def allowed(self, filters: SearchFilters) -> Callable[[str], bool]:
        """A predicate on ids: the product is live and passes every filter."""
        self.refresh()
        return self._view.allowed(filters)

    def passes_rest(self, product: Product, filters: SearchFilters) -> bool:
        return matches_rest(product, filters)

    def vector_of(self, product_id: str, kind: str = "main") -> np.ndarray | None:
        """The stored vector of a product ('main' or 'doc'), read-only; None if it has none."""
        self.refresh()
        return self._view.vector_of(product_id, kind)

    def vectors_for(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Main vectors of ``ids`` as rows (zeros where missing) and a mask of which exist."""
        self.refresh()
        m = self._mirror
        if m.vectors is None or not ids:
            return np.zeros((len(ids), self.embedder.dim if m.vectors is None else m.vectors.shape[1])), np.zeros(
                len(ids), dtype=bool
            )
        slot_of = m.bm25.slot
        slots = np.array([-1 if (x := slot_of(i)) is None else x for i in ids], dtype=np.int64)
        ok = slots >= 0
        ok[ok] = m.has_vector[slots[ok]]
        out = np.zeros((len(ids), m.vectors.shape[1]), dtype=np.float32)
        out[ok] = m.vectors[slots[ok]]
        return out, ok

    def nearest(self, vector: np.ndarray, k: int, exclude: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` live products whose main vector is closest (cosine) to ``vector``; exact."""
        self.refresh()
        m = self._mirror
        if m.vectors is None:
            return []
        n = m.bm25.capacity
        sims = m.vectors[:n] @ np.asarray(vector, dtype=np.float32)
        sims[~(m.live[:n] & m.has_vector[:n])] = -np.inf
        want = min(n, k + len(exclude or ()))
        top = np.argpartition(-sims, want - 1)[:want] if want < n else np.arange(n)
        out = []
        for slot in top[np.argsort(-sims[top])]:
            pid = m.bm25.slot_ids[slot]
            if pid is None or not np.isfinite(sims[slot]) or (exclude and pid in exclude):
                continue
            out.append((pid, float(sims[slot])))
            if len(out) == k:
                break
        return out

    def exact_dense(self, qvec: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Cosine of ``qvec`` with the main vectors at ``slots`` (0 where a vector is missing)."""
        return self._view.exact_dense(qvec, slots)

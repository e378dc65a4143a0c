"""Upgrade a live catalog to another embedder in the background, searchable throughout.

A shop's catalog is embedded with the fast default (USE, ~700 titles/s) so it is searchable at
once; EmbeddingGemma ranks better but embeds ~4-10 texts/s on 2 cores, hours for a large catalog.
``EmbedderUpgrade`` embeds every product again with the target embedder beside the live catalog,
while searches keep using the current vectors:

1. **Stage.** Every live product's main text (and description text) is embedded with the target
   and kept in a staging database under the home (``upgrade/<target>.sqlite``, keyed by product
   id and content hash), so a stopped upgrade resumes where it was. Products ingested or changed
   meanwhile are caught up from the catalog's change sequence, pass after pass.
2. **Build** the target's ANN collection (``<collection>-<target>``) from the staged vectors,
   beside the live one.
3. **Switch**, under the catalog's write lock (ingests wait; searches go on): the last changes are
   embedded, then every product's vectors *and* the catalog's embedder name are written in one
   transaction. Each process sees the new name at its next refresh (the next search), reloads its
   mirror and embeds queries with the target from then on, with the target's fusion weights; a
   search that straddles the switch answers from BM25 alone. The old collection is dropped.

Progress (products done, rate, time left) is written to ``HOME/embedder-upgrade.json`` as it goes:
``shopassist embedder status`` and the API's ``/healthz`` show it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.store import Change, StoreItem, pack_vector, product_hash, unpack_vector
from shopassist.errors import UsageError

if TYPE_CHECKING:
    from retrieval.catalog import Catalog
    from retrieval.embedders import Embedder

log = logging.getLogger(__name__)

STATUS_FILE = "embedder-upgrade.json"
# a catch-up pass this small goes straight to the switch (embedded under the write lock)
SWITCH_BELOW = 64
# how long the old collection stays after the switch, for searches already under way
OLD_COLLECTION_GRACE_S = 2.0


@dataclass
class UpgradeProgress:
    """What ``HOME/embedder-upgrade.json`` holds."""

    source: str
    target: str
    state: str  # embedding | building | switching | done | failed
    done: int = 0
    total: int = 0
    embedded_now: int = 0  # texts embedded by this run (a resumed run skips what was staged)
    texts_per_s: float = 0.0
    eta_s: float | None = None
    started_at: float = 0.0
    updated_at: float = 0.0
    pid: int = 0
    error: str | None = None

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.done / self.total


def status_path(home: Path) -> Path:
    return home / STATUS_FILE


def read_status(home: Path) -> UpgradeProgress | None:
    """The last upgrade's progress under ``home`` (None: none was run or the file is unreadable)."""
    try:
        data = json.loads(status_path(home).read_text(encoding="utf-8"))
        return UpgradeProgress(**data)
    except (OSError, ValueError, TypeError):
        return None


def _live(changes: Iterable[Change]) -> dict[str, Change | None]:
    """id -> its latest change (None when deleted or unreadable: left out of the upgrade)."""
    out: dict[str, Change | None] = {}
    for c in changes:
        ok = not c.deleted and c.error is None and c.product is not None
        out[c.id] = c if ok else None
    return out


class _Staging:
    """Target vectors by product id and content hash, in a SQLite file (resumable)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(str(path), isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS staged(id TEXT PRIMARY KEY, hash TEXT, vec BLOB, dvec BLOB)")

    def hashes(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT id, hash FROM staged").fetchall())

    def put(self, rows: Sequence[tuple[str, str, np.ndarray, np.ndarray | None]]) -> None:
        self._conn.execute("BEGIN")
        self._conn.executemany(
            "INSERT OR REPLACE INTO staged(id, hash, vec, dvec) VALUES (?, ?, ?, ?)",
            [(pid, h, pack_vector(v), pack_vector(d)) for pid, h, v, d in rows],
        )
        self._conn.execute("COMMIT")

    def vectors(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for i in range(0, len(ids), 500):
            chunk = list(ids[i : i + 500])
            marks = ",".join("?" * len(chunk))
            for pid, vec, dvec in self._conn.execute(f"SELECT id, vec, dvec FROM staged WHERE id IN ({marks})", chunk):
                v = unpack_vector(vec)
                if v is not None:
                    out[pid] = (v, unpack_vector(dvec))
        return out

    def close(self) -> None:
        self._conn.close()

    def remove(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(str(self.path) + suffix).unlink()


class EmbedderUpgrade:
    """Re-embed ``catalog`` with ``target`` (a backend name: use, gemma, transformers, openai)
    beside the live vectors, then switch every process over (see the module docstring).

    ``embedder`` overrides the target's embedder (tests, or a preconfigured one); ``on_progress``
    is called after every batch; ``batch`` texts are embedded at a time."""

    def __init__(
        self,
        catalog: Catalog,
        target: str,
        *,
        embedder: Embedder | None = None,
        batch: int = 32,
        on_progress: Callable[[UpgradeProgress], None] | None = None,
    ) -> None:
        from shopassist.config import EMBEDDER_BACKENDS

        if target not in EMBEDDER_BACKENDS:
            raise UsageError(f"Unknown embedder {target!r}: choose one of {', '.join(EMBEDDER_BACKENDS)}.")
        self.catalog = catalog
        self.target = target
        self._embedder = embedder
        self.batch = max(1, batch)
        self.on_progress = on_progress
        home = catalog.settings.home
        self.progress = UpgradeProgress(source="?", target=target, state="embedding", pid=os.getpid())
        self._status = status_path(home)
        self._staging_path = home / "upgrade" / f"{target}.sqlite"

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from retrieval.embedders import make_embedder

            self._embedder = make_embedder(replace(self.catalog.settings, embedder=self.target))
        return self._embedder

    # -- progress ----------------------------------------------------------------------------------
    def _report(self, **changes: Any) -> None:
        p = self.progress
        for key, value in changes.items():
            setattr(p, key, value)
        now = time.time()
        p.updated_at = now
        elapsed = now - p.started_at
        if p.embedded_now and elapsed > 0:
            p.texts_per_s = round(p.embedded_now / elapsed, 2)
        if p.state == "embedding" and p.texts_per_s > 0:
            p.eta_s = round((p.total - p.done) * self._texts_per_product / p.texts_per_s, 1)
        elif p.state != "embedding":
            p.eta_s = 0.0 if p.state == "done" else p.eta_s
        tmp = self._status.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(asdict(p)), encoding="utf-8")
            tmp.replace(self._status)
        except OSError as exc:  # progress is a courtesy: never the reason an upgrade fails
            log.warning("could not write upgrade progress to %s: %s", self._status, exc)
        if self.on_progress is not None:
            self.on_progress(p)

    _texts_per_product = 1.0

    # -- the three steps -----------------------------------------------------------------------------
    def run(self) -> UpgradeProgress:
        catalog = self.catalog
        source = catalog.embedder_backend
        self.progress.source = source
        self.progress.started_at = time.time()
        if source == self.target:
            self._report(state="done")
            return self.progress
        if catalog.store.meta("embedder") is None:  # a catalog from before the name was recorded
            catalog.store.set_meta("embedder", source)
        staging = _Staging(self._staging_path)
        try:
            live, seq = self._stage_all(staging)
            collection, index = self._build(staging, live)
            self._switch(staging, live, seq, collection, index)
        except BaseException as exc:
            self._report(state="failed", error=f"{type(exc).__name__}: {exc}")
            staging.close()
            raise
        staging.remove()
        self._report(state="done", done=self.progress.total)
        return self.progress

    def _embed_into(self, staging: _Staging, changes: Sequence[Change]) -> None:
        """Embed ``changes``' products with the target and stage them, ``batch`` products at a time."""
        for i in range(0, len(changes), self.batch):
            chunk = [c.product for c in changes[i : i + self.batch] if c.product is not None]
            mains = self.embedder.embed_documents([p.embedding_text() for p in chunk])
            docs = [(j, t) for j, p in enumerate(chunk) if (t := p.document_text())]
            doc_vecs: dict[int, np.ndarray] = {}
            if docs:
                doc_vecs = dict(
                    zip((j for j, _ in docs), self.embedder.embed_documents([t for _, t in docs]), strict=True)
                )
            staging.put([(p.id, product_hash(p), mains[j], doc_vecs.get(j)) for j, p in enumerate(chunk)])
            self._report(
                done=min(self.progress.total, self.progress.done + len(chunk)),
                embedded_now=self.progress.embedded_now + len(chunk) + len(docs),
            )

    def _todo(self, staging: _Staging, live: dict[str, Change | None], ids: Iterable[str]) -> list[Change]:
        staged = staging.hashes()
        out = []
        for pid in ids:
            c = live.get(pid)
            if c is not None and c.product is not None and staged.get(pid) != product_hash(c.product):
                out.append(c)
        return out

    def _stage_all(self, staging: _Staging) -> tuple[dict[str, Change | None], int]:
        store = self.catalog.store
        seq, changes = store.changes_since(0)
        live = _live(changes)
        n_live = sum(1 for c in live.values() if c is not None)
        with_docs = sum(1 for c in live.values() if c is not None and c.product and c.product.document_text())
        self._texts_per_product = 1.0 + with_docs / max(n_live, 1)
        todo = self._todo(staging, live, list(live))
        self._report(state="embedding", total=n_live, done=n_live - len(todo))
        log.info(
            "embedder upgrade %s -> %s: %d of %d products to embed",
            self.progress.source,
            self.target,
            len(todo),
            n_live,
        )
        self._embed_into(staging, todo)
        while True:  # products written meanwhile, until what is left is small enough for the switch
            seq, changes = store.changes_since(seq)
            if not changes:
                break
            live.update(_live(changes))
            todo = self._todo(staging, live, [c.id for c in changes])
            n_live = sum(1 for c in live.values() if c is not None)
            self._report(total=n_live, done=n_live - len(todo))
            if len(todo) < SWITCH_BELOW:
                break
            self._embed_into(staging, todo)
        return live, seq

    def _build(self, staging: _Staging, live: dict[str, Change | None]) -> tuple[str, Any]:
        """The target's ANN collection, filled from the staged vectors, beside the live one."""
        from retrieval.vector import ChromaVectorIndex

        self._report(state="building")
        settings = self.catalog.settings
        current = self.catalog.store.meta("collection") or settings.collection
        name = f"{settings.collection}-{self.target}"
        if name == current:
            name = f"{settings.collection}-{self.target}-2"
        index = ChromaVectorIndex(replace(settings, collection=name), self.embedder.name, self.embedder.dim)
        index.drop()  # what a failed run left
        ids = [pid for pid, c in live.items() if c is not None]
        for i in range(0, len(ids), 1000):
            vecs = staging.vectors(ids[i : i + 1000])
            chunk = [c.product for pid in ids[i : i + 1000] if pid in vecs and (c := live[pid]) and c.product]
            if chunk:
                index.upsert(chunk, np.stack([vecs[p.id][0] for p in chunk]))
        return name, index

    def _switch(self, staging: _Staging, live: dict[str, Change | None], seq: int, collection: str, index: Any) -> None:
        catalog = self.catalog
        store = catalog.store
        self._report(state="switching")
        old_collection = store.meta("collection") or catalog.settings.collection
        with catalog.write_lock():
            seq, changes = store.changes_since(seq)
            live.update(_live(changes))
            late = self._todo(staging, live, list(live))  # the last pass's few and anything since
            self._embed_into(staging, late)
            gone = [c.id for c in changes if live.get(c.id) is None]
            if gone:
                index.delete(gone)
            late_products = [c.product for c in late if c.product is not None]
            if late_products:
                vecs = staging.vectors([p.id for p in late_products])
                index.upsert(late_products, np.stack([vecs[p.id][0] for p in late_products]))
            ids = [pid for pid, c in live.items() if c is not None]
            vectors = staging.vectors(ids)
            missing = [pid for pid in ids if pid not in vectors]
            if missing:  # cannot happen unless the staging file was damaged: refuse to switch
                raise RuntimeError(f"{len(missing)} products have no staged vector (e.g. {missing[0]!r})")
            items = []
            for pid in ids:
                c = live[pid]
                assert c is not None and c.product is not None
                vec, dvec = vectors[pid]
                items.append(StoreItem(c.product, c.tokens, product_hash(c.product), vec, dvec))
            store.upsert(items, meta={"embedder": self.target, "collection": collection})
        catalog.refresh()  # this process follows at once; the others at their next search
        log.info("embedder upgrade %s -> %s: switched %d products", self.progress.source, self.target, len(items))
        if old_collection != collection:
            time.sleep(OLD_COLLECTION_GRACE_S)
            _drop_collection(catalog, old_collection)


def _drop_collection(catalog: Catalog, name: str) -> None:
    from retrieval.vector import drop_collection

    try:
        drop_collection(catalog.settings, name)
    except Exception as exc:  # a leftover collection costs disk, not correctness
        log.warning("could not drop the old collection %r: %s", name, exc)


def upgrade_summary(progress: UpgradeProgress | None) -> dict[str, Any] | None:
    """A short, JSON-ready view of an upgrade's progress (for status commands and /healthz)."""
    if progress is None:
        return None
    return {
        "from": progress.source,
        "to": progress.target,
        "state": progress.state,
        "done": progress.done,
        "total": progress.total,
        "percent": round(100 * progress.fraction, 1),
        "texts_per_s": progress.texts_per_s,
        "eta_s": progress.eta_s,
        "error": progress.error,
    }


__all__ = ["EmbedderUpgrade", "UpgradeProgress", "read_status", "upgrade_summary"]

"""The catalog's source of truth: one SQLite file (WAL mode) under SHOPASSIST_HOME.

Every write bumps a global sequence number, and each product row remembers the sequence of its
last change (deletes leave a tombstone row). Any process that mirrors the catalog in memory asks
``changes_since(seq)`` before a search and applies only what changed, which is how an upsert made
by one process is visible to the next search of another without a re-index.

Each row also keeps its vectors (float16): the main one and, for products with a description,
the title+description one. Chroma is the ANN index over the main vectors; the copies here let
every process hold exact vectors for filtered search and for products another process just
changed, without re-embedding anything.

A batch is committed in one transaction, so a process killed mid-ingest loses nothing that was
reported as committed, and never leaves half a batch behind.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shopassist.errors import UsageError
from shopassist.models import Product

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id      TEXT PRIMARY KEY,
    data    TEXT NOT NULL,
    tokens  TEXT NOT NULL,
    hash    TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    vec     BLOB,
    dvec    BLOB
);
CREATE INDEX IF NOT EXISTS products_seq ON products(seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('seq', '0');
"""


def product_hash(product: Product) -> str:
    """A content hash of the whole record (extras included), stable across key order."""
    blob = json.dumps(product.record(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def pack_vector(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype=np.float16).tobytes()


def unpack_vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float16).astype(np.float32)


@dataclass(frozen=True)
class Change:
    id: str
    seq: int
    deleted: bool
    product: Product | None
    tokens: list[str]
    vector: np.ndarray | None = None
    doc_vector: np.ndarray | None = None


@dataclass(frozen=True)
class StoreItem:
    product: Product
    tokens: list[str]
    hash: str
    vector: np.ndarray | None = None
    doc_vector: np.ndarray | None = None


class ProductStore:
    """Thread-safe access to the catalog database; one connection per instance."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"Cannot open the catalog database {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(products)")}
            for column in ("vec", "dvec"):  # catalogs from before vectors were kept here
                if column not in columns:
                    self._conn.execute(f"ALTER TABLE products ADD COLUMN {column} BLOB")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- reads -------------------------------------------------------------------------------
    def seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
        return int(row[0])

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
            self._conn.commit()

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM products WHERE deleted=0").fetchone()[0])

    def get(self, product_id: str) -> Product | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM products WHERE id=? AND deleted=0", (product_id,)).fetchone()
        return None if row is None else Product.model_validate_json(row[0])

    def hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of the live products among ``ids``."""
        out: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = list(ids[i : i + 500])
                marks = ",".join("?" * len(chunk))
                for pid, h in self._conn.execute(
                    f"SELECT id, hash FROM products WHERE deleted=0 AND id IN ({marks})", chunk
                ):
                    out[pid] = h
        return out

    def changes_since(self, seq: int) -> tuple[int, list[Change]]:
        """(current seq, every row changed after ``seq``) in one consistent read."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN")
            try:
                now = int(cur.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0])
                rows = cur.execute(
                    "SELECT id, seq, deleted, data, tokens, vec, dvec FROM products "
                    "WHERE seq > ? AND seq <= ? ORDER BY seq",
                    (seq, now),
                ).fetchall()
            finally:
                cur.execute("COMMIT")
        changes = [
            Change(
                id=pid,
                seq=s,
                deleted=bool(d),
                product=None if d else Product.model_validate_json(data),
                tokens=[] if d else tokens.split(" ") if tokens else [],
                vector=None if d else unpack_vector(vec),
                doc_vector=None if d else unpack_vector(dvec),
            )
            for pid, s, d, data, tokens, vec, dvec in rows
        ]
        return now, changes

    def iter_products(self, batch: int = 1000) -> Iterator[Product]:
        last = ""
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT id, data FROM products WHERE deleted=0 AND id > ? ORDER BY id LIMIT ?", (last, batch)
                ).fetchall()
            if not rows:
                return
            for _pid, data in rows:
                yield Product.model_validate_json(data)
            last = rows[-1][0]

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, items: Iterable[StoreItem]) -> int:
        """Write rows in one transaction; returns the new seq."""
        items = list(items)
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                seq = int(cur.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]) + 1
                cur.executemany(
                    "INSERT INTO products(id, data, tokens, hash, seq, deleted, vec, dvec) VALUES (?, ?, ?, ?, ?, 0, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET data=excluded.data, tokens=excluded.tokens, "
                    "hash=excluded.hash, seq=excluded.seq, deleted=0, vec=excluded.vec, dvec=excluded.dvec",
                    [
                        (
                            it.product.id,
                            it.product.model_dump_json(),
                            " ".join(it.tokens),
                            it.hash,
                            seq,
                            pack_vector(it.vector),
                            pack_vector(it.doc_vector),
                        )
                        for it in items
                    ],
                )
                cur.execute("UPDATE meta SET value=? WHERE key='seq'", (str(seq),))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return seq

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Tombstone the live products among ``ids``; returns the ids actually deleted."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                live = [
                    pid
                    for pid in dict.fromkeys(ids)
                    if cur.execute("SELECT 1 FROM products WHERE id=? AND deleted=0", (pid,)).fetchone()
                ]
                if live:
                    seq = int(cur.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]) + 1
                    cur.executemany(
                        "UPDATE products SET deleted=1, data='{}', tokens='', hash='', vec=NULL, dvec=NULL, seq=? "
                        "WHERE id=?",
                        [(seq, pid) for pid in live],
                    )
                    cur.execute("UPDATE meta SET value=? WHERE key='seq'", (str(seq),))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return live

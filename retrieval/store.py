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
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import ValidationError

from shopassist.errors import UsageError
from shopassist.models import Product

if TYPE_CHECKING:
    from shopassist.config import Settings

log = logging.getLogger(__name__)

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
    """The stored float16 vector as float32; None when there is none or the blob is not one
    (a stored value must never stop a load: the product is then kept without its vector)."""
    if blob is None:
        return None
    if not isinstance(blob, bytes) or len(blob) == 0 or len(blob) % 2:
        return None
    vector = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
    return vector if np.isfinite(vector).all() else None


def load_product(product_id: str, data: str | bytes) -> Product:
    """A stored row's product; ValueError (with the reason) when the row does not hold a valid one.

    Rows are validated on the way in, but a row written by an older version (before a limit
    existed) or by hand may not validate now: callers skip such rows with a warning."""
    if not isinstance(data, str | bytes):
        raise ValueError(f"the stored record is a {type(data).__name__}, not JSON text")
    try:
        product = Product.model_validate_json(data)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'record'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()[:3]
        )
        raise ValueError(reasons) from None
    except (RecursionError, OverflowError, UnicodeError) as exc:  # pragma: no cover - pydantic catches most
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    if product.id != product_id:
        raise ValueError(f"the stored record's id {product.id!r} differs from the row's")
    return product


def product_of_row(product_id: str, row: Sequence[Any] | None) -> Product | None:
    """The product in a ``(data, ...)`` row, or None when there is no row or it cannot be read
    (logged: one damaged row never stops a lookup)."""
    if row is None:
        return None
    try:
        return load_product(product_id, row[0])
    except ValueError as exc:
        log.warning("catalog row %r cannot be read and is skipped: %s", product_id, exc)
        return None


@dataclass(frozen=True)
class Change:
    """One changed row. ``error`` says why a live row could not be read (``product`` is then
    None): whoever mirrors the catalog treats the product as absent and says so."""

    id: str
    seq: int
    deleted: bool
    product: Product | None
    tokens: list[str]
    vector: np.ndarray | None = None
    doc_vector: np.ndarray | None = None
    error: str | None = None


@dataclass(frozen=True)
class StoreItem:
    product: Product
    tokens: list[str]
    hash: str
    vector: np.ndarray | None = None
    doc_vector: np.ndarray | None = None


class CatalogStore(Protocol):
    """What the catalog needs of its source of truth: ``ProductStore`` (SQLite, the default) and
    ``retrieval.pg_store.PostgresProductStore`` (PostgreSQL, when ``settings.database_url`` is set)
    behave the same (tests/contracts/test_catalog_store_contract.py holds them to it)."""

    path: Path

    def close(self) -> None: ...
    def seq(self) -> int: ...
    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def instance_id(self) -> str: ...
    def count(self) -> int: ...
    def get(self, product_id: str) -> Product | None: ...
    def hashes(self, ids: Sequence[str]) -> dict[str, str]: ...
    def changes_since(
        self, seq: int, *, limit: int | None = None, after: tuple[int, str] | None = None, upto: int | None = None
    ) -> tuple[int, list[Change]]: ...
    def iter_products(self, batch: int = 1000) -> Iterator[Product]: ...
    def upsert(self, items: Iterable[StoreItem], meta: Mapping[str, str] | None = None) -> int: ...
    def delete(self, ids: Sequence[str]) -> list[str]: ...


def open_store(settings: Settings) -> CatalogStore:
    """The catalog store ``settings`` ask for: PostgreSQL at ``database_url`` when it is set (every
    worker on every machine then shares one catalog), else the SQLite file under the home.
    psycopg is imported only here, so a SQLite-only process never loads it."""
    if settings.database_url is not None:
        from retrieval.pg_store import PostgresProductStore

        return PostgresProductStore(settings.database_url)
    return ProductStore(settings.catalog_db)


def page_condition(seq: int, after: tuple[int, str] | None, mark: str = "?") -> tuple[str, tuple[object, ...]]:
    """The SQL condition (and its parameters) for rows changed after ``seq``, or, paging, after the
    row ``after`` = (seq, id) in (seq, id) order; ``mark`` is the driver's placeholder."""
    if after is None:
        return f"seq > {mark}", (seq,)
    return f"seq >= {mark} AND (seq > {mark} OR id > {mark})", (after[0], after[0], after[1])


CHANGE_PAGE = 20_000


def change_pages(store: CatalogStore, seq: int, page: int | None = None) -> tuple[int, Iterator[list[Change]]]:
    """(current seq, the rows changed after ``seq`` page by page): what a process applies without
    holding every change of a large catalog in memory at once (a first load reads them all). The
    pages end at the returned seq; a row changed meanwhile is read by the next refresh."""
    page = page or CHANGE_PAGE
    now, first = store.changes_since(seq, limit=page)

    def pages() -> Iterator[list[Change]]:
        changes = first
        while True:
            yield changes
            if len(changes) < page:
                return
            last = changes[-1]
            _, changes = store.changes_since(seq, limit=page, after=(last.seq, last.id), upto=now)

    return now, pages()


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

    def instance_id(self) -> str:
        """A random id this database got when first asked: tells its snapshots (shopassist.snapshot)
        from those of a catalog that was deleted and built again, whose sequence starts over."""
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('instance', ?)", (uuid.uuid4().hex,))
            self._conn.commit()
            row = self._conn.execute("SELECT value FROM meta WHERE key='instance'").fetchone()
        return str(row[0])

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM products WHERE deleted=0").fetchone()[0])

    def get(self, product_id: str) -> Product | None:
        """The live product ``product_id``; None when there is none or its row cannot be read."""
        with self._lock:
            row = self._conn.execute("SELECT data FROM products WHERE id=? AND deleted=0", (product_id,)).fetchone()
        return product_of_row(product_id, row)

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

    def changes_since(
        self, seq: int, *, limit: int | None = None, after: tuple[int, str] | None = None, upto: int | None = None
    ) -> tuple[int, list[Change]]:
        """(current seq, every row changed after ``seq``, in (seq, id) order) in one consistent read.

        Paged (see ``change_pages``): at most ``limit`` rows; ``after`` = (seq, id) of the last row
        of the previous page, ``upto`` = the seq the first page returned (rows changed since then
        are left to the next refresh, and that seq is returned again)."""
        where, params = page_condition(seq, after)
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN")
            try:
                now = int(cur.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]) if upto is None else upto
                rows = cur.execute(
                    "SELECT id, seq, deleted, data, tokens, vec, dvec FROM products "
                    f"WHERE {where} AND seq <= ? ORDER BY seq, id" + ("" if limit is None else f" LIMIT {int(limit)}"),
                    (*params, now),
                ).fetchall()
            finally:
                cur.execute("COMMIT")
        return now, [_change(*row) for row in rows]

    def iter_products(self, batch: int = 1000) -> Iterator[Product]:
        last = ""
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT id, data FROM products WHERE deleted=0 AND id > ? ORDER BY id LIMIT ?", (last, batch)
                ).fetchall()
            if not rows:
                return
            for pid, data in rows:
                if (product := product_of_row(pid, (data,))) is not None:
                    yield product
            last = rows[-1][0]

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, items: Iterable[StoreItem], meta: Mapping[str, str] | None = None) -> int:
        """Write rows, and the ``meta`` settings with them, in one transaction; returns the new seq."""
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
                for key, value in (meta or {}).items():
                    cur.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
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


def _change(
    pid: str, seq: int, deleted: int, data: str, tokens: str | None, vec: bytes | None, dvec: bytes | None
) -> Change:
    """One ``changes_since`` row as a Change; a live row that cannot be read gets ``error``."""
    if deleted:
        return Change(id=pid, seq=seq, deleted=True, product=None, tokens=[])
    try:
        product = load_product(pid, data)
    except ValueError as exc:
        return Change(id=pid, seq=seq, deleted=False, product=None, tokens=[], error=str(exc))
    return Change(
        id=pid,
        seq=seq,
        deleted=False,
        product=product,
        tokens=tokens.split(" ") if isinstance(tokens, str) and tokens else [],
        vector=unpack_vector(vec),
        doc_vector=unpack_vector(dvec),
    )

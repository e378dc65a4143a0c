"""The catalog's source of truth in PostgreSQL: the same interface as ``retrieval.store.ProductStore``
(SQLite), for workers on several machines that share one catalog (``settings.database_url``).

Tables (created when missing, by whichever worker comes first, under an advisory lock so that two
workers starting together do not race on ``CREATE TABLE``):

* ``catalog_products``: one row a product id: the record as JSON text (text, not jsonb: the exact
  bytes round-trip and a record jsonb would refuse, such as one holding ``\\u0000``, still
  stores), its content hash, its tokens (``text[]``), the ``seq`` of its last change, a
  ``deleted`` tombstone flag, and its main and title+description vectors as float32 ``bytea``.
* ``catalog_changes``: the change sequence, one row a committed write (an identity column
  ``seq``, what the write was and how many rows it touched, when). ``seq()`` is its largest
  committed ``seq``; a product row carries the ``seq`` of the write that last changed it.
* ``catalog_meta``: key/value settings of the catalog (its tokenizer, its random instance id).

**Why writers take an advisory lock around the sequence.** A reader catches up with
``changes_since(s)``: every row whose ``seq`` is above ``s``, and then remembers the current
``seq()``. That is only correct if no change can become visible later with a number the reader
has already passed. A PostgreSQL sequence alone does not give that: writer A draws 5, writer B
draws 6, B commits, a reader reads up to 6, then A commits 5 -- and that reader never sees A's
change. So every write transaction first takes ``pg_advisory_xact_lock(SEQUENCE_LOCK_KEY)``,
then draws its number, writes, and commits; the lock is released only after the commit is
visible to everyone. Numbers are therefore drawn and made visible in one order: when a reader
sees ``seq`` n committed, every write with a lower number is committed too (or rolled back and
never will be). Writes are serialized per catalog, which the catalog's writers are anyway
(``Catalog.write_lock``); reads take no lock.

The sequence is gap-tolerant: a rolled-back write has drawn its number for nothing (sequences are
not transactional), so numbers can be missing; readers only ever ask for "above s, up to now",
never for s+1. ``changes_since`` reads in one REPEATABLE READ snapshot, so the rows and "now" it
returns are one consistent state, as SQLite's one read transaction gives.

A stored value that cannot be read (a record that no longer validates, a vector that is not
float32) is reported the way the SQLite store reports it -- ``get`` gives None, ``iter_products``
skips it with a warning, ``changes_since`` returns a ``Change`` with ``error`` -- and never stops
a load. A database that cannot be reached raises ``BackendError`` saying which one and what to do.

Connections come from a small pool of its own (psycopg_pool is not a dependency): each
operation takes an idle connection (or opens one, up to ``pool_size``) for the length of one
transaction, so threads of one server do not serialize on one socket. A pooled connection that
died while idle (PostgreSQL restarted) is noticed on use; reads then run once more on a fresh
connection, writes check a reused connection before they start, so a restart costs no request.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg import conninfo as _conninfo

from retrieval.store import Change, StoreItem, load_product, page_condition, product_of_row
from shopassist.errors import BackendError, UsageError
from shopassist.models import Product

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = psycopg.Connection[tuple[Any, ...]]


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key from a name (the same on every machine)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


# held (transaction-level) by every write from drawing its seq to its commit: see the module doc
SEQUENCE_LOCK_KEY = _lock_key("shopassist.catalog.sequence")
# held (session-level) by Catalog.write_lock: one writer per catalog across machines
WRITER_LOCK_KEY = _lock_key("shopassist.catalog.writer")
# held while creating the schema, so that workers starting together do not race on CREATE TABLE
SCHEMA_LOCK_KEY = _lock_key("shopassist.catalog.schema")

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog_changes (
    seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    op     TEXT NOT NULL,
    n_rows INTEGER NOT NULL,
    at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS catalog_products (
    id      TEXT PRIMARY KEY,
    data    TEXT NOT NULL,
    tokens  TEXT[] NOT NULL DEFAULT '{}',
    hash    TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT false,
    vec     BYTEA,
    dvec    BYTEA
);
CREATE INDEX IF NOT EXISTS catalog_products_seq ON catalog_products(seq);
CREATE TABLE IF NOT EXISTS catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

UPSERT_SQL = (
    "INSERT INTO catalog_products(id, data, tokens, hash, seq, deleted, vec, dvec) "
    "VALUES (%s, %s, %s, %s, %s, false, %s, %s) "
    "ON CONFLICT (id) DO UPDATE SET data=excluded.data, tokens=excluded.tokens, hash=excluded.hash, "
    "seq=excluded.seq, deleted=false, vec=excluded.vec, dvec=excluded.dvec"
)


def pack_vector32(vector: np.ndarray | None) -> bytes | None:
    """A vector as float32 bytes (None stays None)."""
    return None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()


def unpack_vector32(blob: object) -> np.ndarray | None:
    """The stored float32 vector; None when there is none or the value is not one (a stored
    value must never stop a load: the product is then kept without its vector)."""
    if isinstance(blob, memoryview | bytearray):
        blob = bytes(blob)
    if not isinstance(blob, bytes) or len(blob) == 0 or len(blob) % 4:
        return None
    vector = np.frombuffer(blob, dtype=np.float32).copy()
    return vector if np.isfinite(vector).all() else None


def _tokens(value: object) -> list[str]:
    if isinstance(value, list):
        return [t for t in value if isinstance(t, str)]
    return []


def _change(pid: str, seq: int, deleted: bool, data: object, tokens: object, vec: object, dvec: object) -> Change:
    """One ``changes_since`` row as a Change; a live row that cannot be read gets ``error``."""
    if deleted:
        return Change(id=pid, seq=int(seq), deleted=True, product=None, tokens=[])
    try:
        product = load_product(pid, data)  # type: ignore[arg-type]  # load_product checks the type
    except ValueError as exc:
        return Change(id=pid, seq=int(seq), deleted=False, product=None, tokens=[], error=str(exc))
    return Change(
        id=pid,
        seq=int(seq),
        deleted=False,
        product=product,
        tokens=_tokens(tokens),
        vector=unpack_vector32(vec),
        doc_vector=unpack_vector32(dvec),
    )


def describe_url(url: str) -> str:
    """The database URL as it may be shown in messages and logs: without its password."""
    try:
        params = _conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparseable URL)"
    user = f"{params['user']}@" if params.get("user") else ""
    host = str(params.get("host") or "localhost")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"


class PostgresProductStore:
    """Thread-safe access to the catalog in PostgreSQL; a small pool of connections per instance."""

    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout: int = 10) -> None:
        self.url = describe_url(url)
        try:
            params = _conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise UsageError(
                f"The database URL {self.url} cannot be parsed: {exc}. Give one like "
                "postgresql://shop@127.0.0.1:5432/shop (--database-url or SHOPASSIST_DATABASE_URL)."
            ) from None
        params.setdefault("connect_timeout", str(connect_timeout))
        params.setdefault("application_name", "shopassist-catalog")
        self._conninfo = _conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
        # a path-shaped name of this database for callers that key caches by ``store.path`` (the
        # catalog's mirror snapshot); it is never opened
        self.path = Path("/", "postgresql", f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}") / str(
            params.get("dbname") or params.get("user") or "postgres"
        )
        self._pool_size = max(1, pool_size)
        self._idle: list[Connection] = []
        self._open = 0
        self._cond = threading.Condition()
        self._closed = False
        self._run("create its tables", self._create_schema, write=True)

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> Connection:
        try:
            return psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            raise BackendError(
                f"Cannot connect to the catalog database {self.url}: {_first_line(exc)}. "
                "Is PostgreSQL running and reachable? Check --database-url / SHOPASSIST_DATABASE_URL."
            ) from None
        except psycopg.Error as exc:
            raise BackendError(f"Cannot connect to the catalog database {self.url}: {_first_line(exc)}") from None

    def _checkout(self) -> tuple[Connection, bool]:
        """A connection for one operation and whether it was used before (it may have died idle)."""
        with self._cond:
            while True:
                if self._closed:
                    raise BackendError(f"The catalog store for {self.url} was closed.")
                while self._idle:
                    conn = self._idle.pop()
                    if not conn.closed and not conn.broken:
                        return conn, True
                    self._open -= 1
                if self._open < self._pool_size:
                    self._open += 1
                    break
                self._cond.wait()
        try:
            return self._connect(), False
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _checkin(self, conn: Connection) -> None:
        with self._cond:
            if self._closed or conn.closed or conn.broken:
                self._open -= 1
                with contextlib.suppress(Exception):
                    conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    def _drop_idle(self) -> None:
        """Close the idle connections: after one was found dead, the others likely are too."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()

    def _run(self, what: str, work: Callable[[Connection], T], *, write: bool = False) -> T:
        """``work`` (one transaction) on a pooled connection; psycopg errors become BackendError.

        A reused connection that turns out dead is replaced once: a read runs again on a fresh
        connection; a write first checks a reused connection (``SELECT 1``) and never runs twice,
        since a connection lost during its COMMIT leaves unknown whether it committed."""
        for attempt in (0, 1):
            conn, reused = self._checkout()
            started = False
            try:
                if write and reused:
                    conn.execute("SELECT 1")
                started = True
                return work(conn)
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    self._drop_idle()
                    if reused and attempt == 0 and (not write or not started):
                        log.info("a pooled connection to %s was lost (%s): reconnecting", self.url, _first_line(exc))
                        continue
                    raise BackendError(
                        f"Lost the connection to the catalog database {self.url} while trying to {what}: "
                        f"{_first_line(exc)}. Is PostgreSQL running and reachable? "
                        "Check --database-url / SHOPASSIST_DATABASE_URL."
                    ) from None
                raise BackendError(f"The catalog database {self.url} failed to {what}: {_first_line(exc)}") from None
            finally:
                self._checkin(conn)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _create_schema(self, conn: Connection) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            conn.execute(SCHEMA)
            conn.execute(
                "INSERT INTO catalog_meta(key, value) VALUES ('schema', %s) ON CONFLICT (key) DO NOTHING",
                (SCHEMA_VERSION,),
            )

    def close(self) -> None:
        with self._cond:
            self._closed = True
        self._drop_idle()

    # -- reads -------------------------------------------------------------------------------
    def seq(self) -> int:
        """The number of the last committed change (0 for a new catalog)."""
        row = self._run(
            "read its change sequence",
            lambda c: c.execute("SELECT coalesce(max(seq), 0) FROM catalog_changes").fetchone(),
        )
        return int(row[0]) if row else 0

    def meta(self, key: str) -> str | None:
        if key == "seq":  # the SQLite store keeps its sequence in meta; here it is its own table
            return str(self.seq())
        row = self._run(
            "read its settings", lambda c: c.execute("SELECT value FROM catalog_meta WHERE key=%s", (key,)).fetchone()
        )
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        if key == "seq":
            raise UsageError("the change sequence is not a setting: it moves with every write")
        self._run(
            "write a setting",
            lambda c: c.execute(
                "INSERT INTO catalog_meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (key, value),
            ),
            write=True,
        )

    def instance_id(self) -> str:
        """A random id this database got when first asked: tells its snapshots (shopassist.snapshot)
        from those of a catalog that was deleted and built again, whose sequence starts over."""

        def work(c: Connection) -> Any:
            c.execute(
                "INSERT INTO catalog_meta(key, value) VALUES ('instance', %s) ON CONFLICT (key) DO NOTHING",
                (uuid.uuid4().hex,),
            )
            return c.execute("SELECT value FROM catalog_meta WHERE key='instance'").fetchone()

        row = self._run("read its instance id", work)
        return str(row[0])

    def count(self) -> int:
        row = self._run(
            "count products", lambda c: c.execute("SELECT count(*) FROM catalog_products WHERE NOT deleted").fetchone()
        )
        return int(row[0]) if row else 0

    def get(self, product_id: str) -> Product | None:
        """The live product ``product_id``; None when there is none or its row cannot be read."""
        row = self._run(
            "read a product",
            lambda c: c.execute(
                "SELECT data FROM catalog_products WHERE id=%s AND NOT deleted", (product_id,)
            ).fetchone(),
        )
        return product_of_row(product_id, row)

    def hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of the live products among ``ids``."""
        wanted = list(ids)

        def work(c: Connection) -> dict[str, str]:
            out: dict[str, str] = {}
            for i in range(0, len(wanted), 1000):
                for pid, h in c.execute(
                    "SELECT id, hash FROM catalog_products WHERE NOT deleted AND id = ANY(%s)", (wanted[i : i + 1000],)
                ):
                    out[pid] = h
            return out

        return self._run("read product hashes", work) if wanted else {}

    def changes_since(
        self, seq: int, *, limit: int | None = None, after: tuple[int, str] | None = None, upto: int | None = None
    ) -> tuple[int, list[Change]]:
        """(current seq, every row changed after ``seq``, in (seq, id) order) in one consistent
        (REPEATABLE READ) read; paged as ``ProductStore.changes_since`` is."""
        where, params = page_condition(seq, after, "%s")

        def work(c: Connection) -> tuple[int, list[tuple[Any, ...]]]:
            with c.transaction():
                c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                now = upto
                if now is None:
                    row = c.execute("SELECT coalesce(max(seq), 0) FROM catalog_changes").fetchone()
                    now = int(row[0]) if row else 0
                rows = c.execute(
                    "SELECT id, seq, deleted, data, tokens, vec, dvec FROM catalog_products "
                    f"WHERE {where} AND seq <= %s ORDER BY seq, id" + ("" if limit is None else f" LIMIT {int(limit)}"),
                    (*params, now),
                ).fetchall()
            return now, rows

        now, rows = self._run("read the changes since the last refresh", work)
        return now, [_change(*row) for row in rows]

    def iter_products(self, batch: int = 1000) -> Iterator[Product]:
        def page(after: str) -> list[tuple[Any, ...]]:
            return self._run(
                "read products",
                lambda c: c.execute(
                    "SELECT id, data FROM catalog_products WHERE NOT deleted AND id > %s ORDER BY id LIMIT %s",
                    (after, batch),
                ).fetchall(),
            )

        last = ""
        while rows := page(last):
            for pid, data in rows:
                if (product := product_of_row(pid, (data,))) is not None:
                    yield product
            last = rows[-1][0]

    # -- writes ------------------------------------------------------------------------------
    @staticmethod
    def _next_seq(c: Connection, op: str, n_rows: int) -> int:
        """Take the sequence lock (held until this transaction ends) and draw the next number."""
        c.execute("SELECT pg_advisory_xact_lock(%s)", (SEQUENCE_LOCK_KEY,))
        row = c.execute(
            "INSERT INTO catalog_changes(op, n_rows) VALUES (%s, %s) RETURNING seq", (op, n_rows)
        ).fetchone()
        assert row is not None
        return int(row[0])

    def upsert(self, items: Iterable[StoreItem], meta: Mapping[str, str] | None = None) -> int:
        """Write rows, and the ``meta`` settings with them, in one transaction; returns the new seq."""
        rows = [
            [
                it.product.id,
                it.product.model_dump_json(),
                list(it.tokens),
                it.hash,
                0,
                pack_vector32(it.vector),
                pack_vector32(it.doc_vector),
            ]
            for it in items
        ]

        def work(c: Connection) -> int:
            with c.transaction():
                seq = self._next_seq(c, "upsert", len(rows))
                for row in rows:
                    row[4] = seq
                if rows:
                    with c.cursor() as cur:
                        cur.executemany(UPSERT_SQL, rows)
                for key, value in (meta or {}).items():
                    c.execute(
                        "INSERT INTO catalog_meta(key, value) VALUES (%s, %s) "
                        "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                        (key, value),
                    )
            return seq

        return self._run("write products", work, write=True)

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Tombstone the live products among ``ids``; returns the ids actually deleted."""
        wanted = list(dict.fromkeys(ids))

        def work(c: Connection) -> list[str]:
            with c.transaction():
                # the sequence lock first: no other write can change which of them are live meanwhile
                c.execute("SELECT pg_advisory_xact_lock(%s)", (SEQUENCE_LOCK_KEY,))
                found = {
                    pid
                    for (pid,) in c.execute(
                        "SELECT id FROM catalog_products WHERE NOT deleted AND id = ANY(%s)", (wanted,)
                    )
                }
                live = [pid for pid in wanted if pid in found]
                if live:
                    seq = self._next_seq(c, "delete", len(live))
                    c.execute(
                        "UPDATE catalog_products SET deleted=true, data='{}', tokens='{}', hash='', vec=NULL, "
                        "dvec=NULL, seq=%s WHERE id = ANY(%s)",
                        (seq, live),
                    )
            return live

        return self._run("delete products", work, write=True) if wanted else []

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """One writer per catalog at a time, across processes and machines: a session-level
        advisory lock on a connection of its own, held for the block. A writer that dies loses
        its connection and with it the lock, so a crash never leaves the catalog locked."""
        conn = self._connect()
        try:
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK_KEY,))
            except psycopg.Error as exc:
                raise BackendError(
                    f"Cannot take the catalog's write lock in {self.url}: {_first_line(exc)}. "
                    "Is PostgreSQL running and reachable?"
                ) from None
            try:
                yield
            finally:
                with contextlib.suppress(psycopg.Error):  # a lost connection has released it already
                    conn.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK_KEY,))
        finally:
            with contextlib.suppress(Exception):
                conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

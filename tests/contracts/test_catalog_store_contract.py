"""The catalog store contract: what ``Catalog`` relies on of its source of truth.

``CatalogStoreContract`` defines the behaviour once; each backend's subclass overrides the one
``backend`` fixture (the Haystack 2.x pattern): the SQLite file (``retrieval.store.ProductStore``,
the default) and PostgreSQL (``retrieval.pg_store.PostgresProductStore``, on a real throwaway
server from tests/postgres_server.py, a fresh database per test). The same tests run on both:
upsert/get/delete, hashes, the change sequence, vectors, meta, unreadable rows, iteration, and
writers in several threads with a reader catching up meanwhile.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from postgres_server import fresh_database_url, postgres_server  # noqa: F401  (fixtures)

from retrieval.pg_store import PostgresProductStore
from retrieval.store import CatalogStore, ProductStore, StoreItem, change_pages, product_hash
from shopassist.models import Product

DIM = 16


def product(pid: str, title: str = "", **fields: object) -> Product:
    return Product.model_validate(
        {"id": pid, "title": title or f"Product {pid} 高腰牛仔裤", "price": 10.0, "currency": "CNY", **fields}
    )


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def item(p: Product, seed: int = 0, *, doc: bool = False, vector: bool = True) -> StoreItem:
    return StoreItem(
        p,
        ["tok", p.id, "高腰"],
        product_hash(p),
        vec(seed) if vector else None,
        vec(seed + 1000) if doc else None,
    )


class Backend:
    """One backend's storage: ``open`` gives a new store instance on it (another process or
    machine would); ``tamper`` writes a raw column value past the store (an old version, a hand
    edit)."""

    def __init__(self, name: str, opener: Callable[[], CatalogStore], tamper: Callable[[str, str, object], None]):
        self.name = name
        self._opener = opener
        self.tamper = tamper
        self.opened: list[CatalogStore] = []

    def open(self) -> CatalogStore:
        store = self._opener()
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()


class CatalogStoreContract:
    """What every catalog store does; a subclass provides ``backend`` (empty storage per test)."""

    @pytest.fixture()
    def backend(self) -> Iterator[Backend]:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    @pytest.fixture()
    def store(self, backend: Backend) -> CatalogStore:
        return backend.open()

    # -- empty ---------------------------------------------------------------------------------
    def test_a_new_store_is_empty(self, store: CatalogStore) -> None:
        assert store.seq() == 0 and store.count() == 0
        assert store.get("nope") is None
        assert store.changes_since(0) == (0, [])
        assert list(store.iter_products()) == []
        assert store.hashes([]) == {} and store.hashes(["nope"]) == {}
        assert store.delete([]) == [] and store.delete(["nope"]) == []
        assert store.seq() == 0  # deleting nothing is no change

    # -- upsert / get ---------------------------------------------------------------------------
    def test_upsert_then_get_returns_the_same_product(self, store: CatalogStore) -> None:
        p = product("a1", brand="Levi's/李维斯", attributes={"颜色": "黑色"}, stock=3, sale_count=7)
        seq = store.upsert([item(p)])
        assert seq > 0 and store.seq() == seq
        got = store.get("a1")
        assert got == p and got is not None and got.record() == p.record()  # extras kept
        assert store.count() == 1

    def test_upsert_writes_its_settings_in_the_same_transaction(self, store: CatalogStore) -> None:
        # an embedder upgrade writes every vector and the embedder's name together: a reader sees
        # both or neither
        store.upsert([item(product("a1"))], meta={"embedder": "use"})
        assert store.meta("embedder") == "use"
        seq = store.upsert([item(product("a1"), seed=3)], meta={"embedder": "gemma", "collection": "products-gemma"})
        assert store.meta("embedder") == "gemma" and store.meta("collection") == "products-gemma"
        assert store.seq() == seq

    def test_each_write_gets_a_higher_seq(self, store: CatalogStore) -> None:
        seqs = [store.upsert([item(product(f"p{i}"))]) for i in range(4)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 4
        assert store.seq() == seqs[-1]

    def test_upsert_replaces_by_id(self, store: CatalogStore) -> None:
        store.upsert([item(product("a1", "old title"))])
        newer = product("a1", "new title", price=20.0)
        store.upsert([item(newer)])
        assert store.get("a1") == newer and store.count() == 1
        assert store.hashes(["a1"]) == {"a1": product_hash(newer)}

    def test_a_batch_is_one_change(self, store: CatalogStore) -> None:
        seq = store.upsert([item(product(f"b{i}"), i) for i in range(5)])
        now, changes = store.changes_since(0)
        assert now == seq and {c.seq for c in changes} == {seq} and len(changes) == 5

    # -- hashes ---------------------------------------------------------------------------------
    def test_hashes_of_live_products_only(self, store: CatalogStore) -> None:
        ps = [product(f"h{i}") for i in range(3)]
        store.upsert([item(p) for p in ps])
        store.delete(["h1"])
        assert store.hashes(["h0", "h1", "h2", "unknown"]) == {"h0": product_hash(ps[0]), "h2": product_hash(ps[2])}

    def test_hashes_of_many_ids(self, store: CatalogStore) -> None:
        ps = [product(f"m{i:04d}") for i in range(1203)]
        store.upsert([item(p, vector=False) for p in ps])
        got = store.hashes([p.id for p in ps] + ["zz"])
        assert len(got) == 1203 and got["m1202"] == product_hash(ps[-1])

    # -- delete ---------------------------------------------------------------------------------
    def test_delete_tombstones_and_reports_what_existed(self, store: CatalogStore) -> None:
        store.upsert([item(product(pid)) for pid in ("d1", "d2", "d3")])
        before = store.seq()
        assert store.delete(["d3", "nope", "d1", "d3"]) == ["d3", "d1"]  # input order, once each
        assert store.seq() > before
        assert store.get("d1") is None and store.get("d2") is not None and store.count() == 1
        now, changes = store.changes_since(before)
        assert now == store.seq()
        assert {c.id: (c.deleted, c.product, c.tokens, c.vector) for c in changes} == {
            "d1": (True, None, [], None),
            "d3": (True, None, [], None),
        }
        after = store.seq()
        assert store.delete(["d1", "d3"]) == [] and store.seq() == after  # already gone: no change

    def test_a_deleted_product_can_come_back(self, store: CatalogStore) -> None:
        p = product("r1")
        store.upsert([item(p)])
        store.delete(["r1"])
        store.upsert([item(p)])
        assert store.get("r1") == p and store.hashes(["r1"]) == {"r1": product_hash(p)}

    # -- the change sequence --------------------------------------------------------------------
    def test_changes_since_gives_each_row_changed_after_seq_once_in_seq_order(self, store: CatalogStore) -> None:
        s1 = store.upsert([item(product("c1")), item(product("c2"))])
        s2 = store.upsert([item(product("c3"))])
        s3 = store.upsert([item(product("c1", "c1 again"))])
        now, changes = store.changes_since(s1)
        assert now == s3
        assert [(c.id, c.seq) for c in changes] == [("c3", s2), ("c1", s3)]
        assert changes[1].product is not None and changes[1].product.title == "c1 again"
        assert store.changes_since(s3) == (s3, [])
        _, everything = store.changes_since(0)
        assert sorted(c.id for c in everything) == ["c1", "c2", "c3"]  # c1 once, at its latest
        assert [c.seq for c in everything] == sorted(c.seq for c in everything)

    def test_changes_read_page_by_page_are_the_changes_read_at_once(self, store: CatalogStore) -> None:
        """A first load reads a large catalog in pages (``change_pages``): the pages hold every row
        changed after the seq once, in (seq, id) order, also where a page ends inside one batch's
        seq; a row written while paging is left to the next read, which finds it."""
        start = store.upsert([item(product("p0"))])
        store.upsert([item(product(f"p{i:02d}")) for i in range(1, 8)])  # one seq for seven rows
        store.upsert([item(product("q1")), item(product("q2"))])
        store.delete(["p03"])
        now, whole = store.changes_since(start)
        seen_now, pages = change_pages(store, start, page=3)
        assert seen_now == now
        paged: list = []
        sizes = []
        for i, page in enumerate(pages):
            sizes.append(len(page))
            paged.extend(page)
            if i == 0:  # written meanwhile: after ``now``, not in these pages
                later = store.upsert([item(product("p01", "p01 rewritten"))])
        assert [(c.id, c.seq, c.deleted) for c in paged] == [(c.id, c.seq, c.deleted) for c in whole]
        assert [(c.seq, c.id) for c in paged] == sorted((c.seq, c.id) for c in paged)
        assert len({c.id for c in paged}) == len(paged) == 9
        assert sizes == [3, 3, 3, 0]  # a full last page: one more (empty) read ends it
        assert store.changes_since(now)[1][0].id == "p01" and store.changes_since(now)[0] == later
        _, pages = change_pages(store, start, page=4)
        assert [len(page) for page in pages] == [4, 4, 1]

    def test_changes_carry_tokens_and_vectors(self, store: CatalogStore) -> None:
        p = product("v1", description="soft stretch denim")
        store.upsert([item(p, 7, doc=True)])
        store.upsert([item(product("v2"), vector=False)])
        _, changes = store.changes_since(0)
        by_id = {c.id: c for c in changes}
        c = by_id["v1"]
        assert c.product == p and c.tokens == ["tok", "v1", "高腰"] and c.error is None
        assert c.vector is not None and c.doc_vector is not None
        assert c.vector.dtype == np.float32 and c.vector.shape == (DIM,)
        # SQLite keeps float16, PostgreSQL float32: both round-trip within float16's precision
        np.testing.assert_allclose(c.vector, vec(7), atol=1e-3)
        np.testing.assert_allclose(c.doc_vector, vec(1007), atol=1e-3)
        assert by_id["v2"].vector is None and by_id["v2"].doc_vector is None

    def test_another_instance_sees_the_writes(self, backend: Backend, store: CatalogStore) -> None:
        other = backend.open()
        seq = store.upsert([item(product("x1"))])
        assert other.seq() == seq and other.get("x1") == product("x1")
        now, changes = other.changes_since(0)
        assert now == seq and [c.id for c in changes] == ["x1"]
        other.delete(["x1"])
        assert store.get("x1") is None and store.seq() > seq

    def test_concurrent_writers_and_a_reader_catching_up_miss_nothing(self, backend: Backend) -> None:
        """Writers on several instances at once, a reader applying ``changes_since`` meanwhile:
        the reader never gets a change at or below what it already has, and ends with exactly
        the final state -- no change that committed late with a low number is ever skipped."""
        writers = [backend.open() for _ in range(3)]
        reader = backend.open()
        done = threading.Event()
        errors: list[BaseException] = []
        seen: dict[str, str | None] = {}
        steps: list[tuple[int, list[int]]] = []

        def write(k: int, store: CatalogStore) -> None:
            try:
                for r in range(15):
                    batch = [product(f"w{(k * 7 + r + j) % 20}", f"writer {k} round {r} {j}") for j in range(3)]
                    store.upsert([item(p, r, vector=False) for p in batch])
                    if r % 5 == 4:
                        store.delete([f"w{(k + r) % 20}"])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def read() -> None:
            last = 0
            try:
                while True:
                    finished = done.is_set()
                    now, changes = reader.changes_since(last)
                    steps.append((last, [c.seq for c in changes]))
                    for c in changes:
                        seen[c.id] = None if c.deleted or c.product is None else c.product.title
                    last = now
                    if finished:
                        return
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(k, s)) for k, s in enumerate(writers)]
        follower = threading.Thread(target=read)
        follower.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        done.set()
        follower.join(60)
        assert not errors, errors
        for since, seqs in steps:
            assert all(s > since for s in seqs) and seqs == sorted(seqs)
        final = {p.id: p.title for p in reader.iter_products()}
        assert {pid: title for pid, title in seen.items() if title is not None} == final

    # -- meta -----------------------------------------------------------------------------------
    def test_meta_round_trips_and_the_instance_id_is_stable(self, backend: Backend, store: CatalogStore) -> None:
        assert store.meta("tokenizer") is None
        store.set_meta("tokenizer", "v1")
        store.set_meta("tokenizer", "v2")
        assert store.meta("tokenizer") == "v2"
        first = store.instance_id()
        assert len(first) == 32 and int(first, 16) >= 0
        assert store.instance_id() == first and backend.open().instance_id() == first
        assert backend.open().meta("tokenizer") == "v2"

    # -- rows that cannot be read ---------------------------------------------------------------
    def test_an_unreadable_record_is_reported_never_raised(self, backend: Backend, store: CatalogStore) -> None:
        store.upsert([item(product(pid)) for pid in ("u1", "u2", "u3")])
        backend.tamper("u1", "data", "{not json")
        backend.tamper("u2", "data", product("someone-else").model_dump_json())  # another id's record
        assert store.get("u1") is None and store.get("u2") is None
        assert [p.id for p in store.iter_products()] == ["u3"]
        assert store.count() == 3  # still rows: the catalog lists them as unreadable
        _, changes = store.changes_since(0)
        by_id = {c.id: c for c in changes}
        assert by_id["u1"].product is None and by_id["u1"].error and not by_id["u1"].deleted
        assert "id" in (by_id["u2"].error or "")
        assert by_id["u3"].error is None and by_id["u3"].product is not None
        # writing the product again repairs the row
        store.upsert([item(product("u1"))])
        assert store.get("u1") == product("u1")

    def test_an_unreadable_vector_leaves_the_product_without_it(self, backend: Backend, store: CatalogStore) -> None:
        store.upsert([item(product("q1"), 1, doc=True), item(product("q2"), 2, doc=True)])
        backend.tamper("q1", "vec", b"\x01\x02\x03")  # not a whole number of floats
        backend.tamper("q2", "dvec", np.full(DIM, np.nan, dtype=np.float32).tobytes())
        _, changes = store.changes_since(0)
        by_id = {c.id: c for c in changes}
        assert by_id["q1"].error is None and by_id["q1"].product == product("q1") and by_id["q1"].vector is None
        assert by_id["q1"].doc_vector is not None
        assert by_id["q2"].vector is not None and by_id["q2"].doc_vector is None

    # -- iteration ------------------------------------------------------------------------------
    def test_iter_products_gives_every_live_product_in_id_order_across_batches(self, store: CatalogStore) -> None:
        store.upsert([item(product(pid)) for pid in ("e5", "e1", "e3", "e2", "e4")])
        store.delete(["e3"])
        assert [p.id for p in store.iter_products(batch=2)] == ["e1", "e2", "e4", "e5"]
        assert [p.id for p in store.iter_products()] == ["e1", "e2", "e4", "e5"]


class TestSQLiteStore(CatalogStoreContract):
    @pytest.fixture()
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        path = tmp_path / "catalog.sqlite"

        def tamper(pid: str, column: str, value: object) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute(f"UPDATE products SET {column}=? WHERE id=?", (value, pid))

        backend = Backend("sqlite", lambda: ProductStore(path), tamper)
        yield backend
        backend.close()


class TestPostgresStore(CatalogStoreContract):
    @pytest.fixture()
    def backend(self, fresh_database_url: str) -> Iterator[Backend]:  # noqa: F811  (the imported fixture)
        url = fresh_database_url

        def tamper(pid: str, column: str, value: object) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"UPDATE catalog_products SET {column}=%s WHERE id=%s", (value, pid))

        backend = Backend("postgresql", lambda: PostgresProductStore(url), tamper)
        yield backend
        backend.close()

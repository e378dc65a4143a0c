"""The catalog in PostgreSQL (``settings.database_url``): several workers, one source of truth.

Each "worker" is a ``Catalog`` with a home of its own (as on another machine: its own Chroma
and mirror) on one real PostgreSQL database (tests/postgres_server.py). What one writes, the
others find on their next search; writes are serialized across workers; a PostgreSQL that goes
away is a clear BackendError, and the same objects work again once it is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from postgres_server import PostgresServer, fresh_database_url, postgres_server, started_server  # noqa: F401  (fixtures)

from retrieval import Catalog, HybridRetriever
from retrieval.pg_store import SEQUENCE_LOCK_KEY, PostgresProductStore
from retrieval.testing import HashingEmbedder
from shopassist.config import Settings
from shopassist.errors import BackendError
from shopassist.models import Product, SearchFilters

pytestmark = pytest.mark.integration

PRODUCTS = [
    {"id": "b1", "title": "Waterproof Hiking Boots for Men, Brown Leather", "brand": "TrailCo", "price": 89.99},
    {"id": "b2", "title": "Waterproof Hiking Boots for Women, Black", "brand": "Summit", "price": 79.5},
    {"id": "r1", "title": "Lightweight Trail Running Shoes, Grey", "brand": "TrailCo", "price": 120.0},
    {"id": "j1", "title": "高腰修身牛仔裤女 黑色 弹力小脚裤", "brand": "Levi's/李维斯", "price": 299.0},
    {"id": "m1", "title": "Essence Mascara Lash Princess", "brand": "Essence", "price": 9.99},
]


def products(*records: dict[str, object]) -> list[Product]:
    return [Product.model_validate({"currency": "USD", "stock": 5, **r}) for r in records]


def worker(tmp_path: Path, name: str, url: str) -> Catalog:
    return Catalog(Settings(home=tmp_path / name, database_url=url), embedder=HashingEmbedder())


def found(catalog: Catalog, query: str, filters: SearchFilters | None = None, top_k: int = 5) -> list[str]:
    return [c.product.id for c in HybridRetriever(catalog).search(query, filters, top_k=top_k)]


@pytest.fixture()
def workers(tmp_path: Path, fresh_database_url: str) -> Iterator[tuple[Catalog, Catalog]]:  # noqa: F811
    a, b = worker(tmp_path, "a", fresh_database_url), worker(tmp_path, "b", fresh_database_url)
    yield a, b
    a.store.close()
    b.store.close()


def test_the_catalog_lives_in_postgresql_not_under_the_home(workers: tuple[Catalog, Catalog]) -> None:
    a, _ = workers
    assert isinstance(a.store, PostgresProductStore)
    a.upsert(products(*PRODUCTS))
    assert not a.settings.catalog_db.exists()
    assert len(a) == len(PRODUCTS) and a.store.count() == len(PRODUCTS)


def test_an_upsert_through_one_worker_is_found_by_the_others_next_search(workers: tuple[Catalog, Catalog]) -> None:
    a, b = workers
    a.upsert(products(*PRODUCTS))
    assert set(found(b, "waterproof hiking boots", top_k=2)) == {"b1", "b2"}  # b has never written

    a.upsert(products({"id": "p1", "title": "Alpaca Wool Poncho, Undyed Cream", "brand": "Andes", "price": 150.0}))
    assert found(b, "alpaca wool poncho")[0] == "p1"
    assert b.get("p1") is not None and b.get("p1").brand == "Andes"  # type: ignore[union-attr]

    # a change made by b is in a's next filtered search, and a delete disappears from it
    b.upsert(products({"id": "b2", "title": "Waterproof Hiking Boots for Women, Black", "price": 300.0}))
    assert "b2" not in found(a, "hiking boots", SearchFilters(max_price=200))
    assert "b2" in found(a, "hiking boots", SearchFilters(min_price=250))
    assert b.delete(["p1", "nope"]) == ["p1"]
    assert "p1" not in found(a, "alpaca wool poncho") and a.get("p1") is None


def test_an_unchanged_record_is_not_written_again_by_another_worker(workers: tuple[Catalog, Catalog]) -> None:
    a, b = workers
    a.upsert(products(*PRODUCTS))
    seq = a.store.seq()
    again = b.upsert(products(*PRODUCTS))
    assert sorted(again.unchanged) == sorted(p["id"] for p in PRODUCTS) and not again.added
    assert b.store.seq() == seq


def test_writes_wait_for_a_write_in_flight_to_commit(
    workers: tuple[Catalog, Catalog],
    fresh_database_url: str,  # noqa: F811
) -> None:
    """A write holds the sequence lock from drawing its number to its commit (pg_store's doc):
    another write waits, and no reader ever sees a later number before an earlier one."""
    a, b = workers
    a.upsert(products(PRODUCTS[0]))
    before = b.store.seq()
    done = threading.Event()
    with psycopg.connect(fresh_database_url, autocommit=True) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(%s)", (SEQUENCE_LOCK_KEY,))  # a writer in flight
        thread = threading.Thread(target=lambda: (a.upsert(products(PRODUCTS[1])), done.set()))
        thread.start()
        time.sleep(0.5)
        assert not done.is_set() and b.store.seq() == before
    thread.join(30)
    assert done.is_set() and b.store.seq() > before and b.get("b2") is not None


def test_the_write_lock_holds_across_workers(workers: tuple[Catalog, Catalog]) -> None:
    a, b = workers
    entered = threading.Event()

    def take() -> None:
        with b.write_lock():
            entered.set()

    with a.write_lock():
        thread = threading.Thread(target=take)
        thread.start()
        time.sleep(0.5)
        assert not entered.is_set()
    thread.join(30)
    assert entered.is_set()


def test_an_unreachable_database_is_a_clear_backend_error(tmp_path: Path) -> None:
    from postgres_server import free_port

    url = f"postgresql://shop@127.0.0.1:{free_port()}/shop"
    with pytest.raises(BackendError, match=r"Cannot connect to the catalog database postgresql://shop@127\.0\.0\.1"):
        worker(tmp_path, "a", url)


@pytest.fixture()
def own_server() -> Iterator[PostgresServer]:
    server = started_server()
    try:
        yield server
    finally:
        server.destroy()


def test_a_stopped_postgresql_is_a_backend_error_and_the_worker_recovers(
    tmp_path: Path, own_server: PostgresServer
) -> None:
    url = own_server.create_database()
    a = worker(tmp_path, "a", url)
    a.upsert(products(*PRODUCTS[:3]))
    assert found(a, "hiking boots", top_k=2)

    own_server.stop()
    with pytest.raises(BackendError) as failed:
        found(a, "hiking boots")
    message = str(failed.value)
    assert "catalog database postgresql://postgres@127.0.0.1" in message and "PostgreSQL running" in message
    with pytest.raises(BackendError, match="catalog database"):
        a.upsert(products(PRODUCTS[3]))
    with pytest.raises(BackendError, match="Cannot connect to the catalog database"):
        worker(tmp_path, "b", url)

    own_server.start()
    assert set(found(a, "waterproof hiking boots", top_k=2)) == {"b1", "b2"}  # the same objects, no restart
    a.upsert(products(PRODUCTS[4]))
    b = worker(tmp_path, "b", url)
    assert found(b, "mascara", top_k=1) == ["m1"]
    a.store.close()
    b.store.close()


def test_a_worker_that_starts_after_others_wrote_finds_their_products_through_the_dense_leg_alone(
    tmp_path: Path,
    fresh_database_url: str,  # noqa: F811
) -> None:
    """Its embedded Chroma starts empty: the products others wrote are added from the stored
    vector copies when it opens, and later writes of other workers as it catches up."""
    from retrieval.search import HybridConfig

    a = worker(tmp_path, "a", fresh_database_url)
    a.upsert(products(*PRODUCTS))
    a.vectors  # noqa: B018 - a's own index is open before b writes: b's writes reach it as changes
    b = worker(tmp_path, "b", fresh_database_url)
    dense_only = HybridConfig(use_lexical=False)

    def dense(catalog: Catalog, query: str) -> list[str]:
        return [c.product.id for c in HybridRetriever(catalog, config=dense_only).search(query, top_k=3)]

    assert dense(b, PRODUCTS[2]["title"])[0] == "r1"  # type: ignore[index]
    assert b.vectors.count() == len(PRODUCTS)
    b.upsert(products({"id": "p1", "title": "Alpaca Wool Poncho, Undyed Cream", "price": 150.0}))
    b.delete(["m1"])
    assert dense(a, "Alpaca Wool Poncho, Undyed Cream")[0] == "p1"
    assert "m1" not in dense(a, "Essence Mascara Lash Princess") and a.vectors.count() == len(PRODUCTS)
    a.store.close()
    b.store.close()


def test_an_embedder_upgrade_through_one_worker_switches_the_others(workers: tuple[Catalog, Catalog]) -> None:
    """Worker a moves the shared catalog to another embedder; worker b (its own private ANN index)
    searches with the old vectors until the switch, then with the new ones, dense leg included."""
    from retrieval.upgrade import EmbedderUpgrade

    a, b = workers
    bigger = HashingEmbedder(dim=320)
    for w in (a, b):
        w.embedder_factory = {"gemma": bigger}.__getitem__
    a.upsert(products(*PRODUCTS))
    assert set(found(b, "hiking boots")[:2]) == {"b1", "b2"}
    assert b.view().dim == 256
    EmbedderUpgrade(a, "gemma", embedder=bigger, batch=2).run()
    assert set(found(b, "hiking boots")[:2]) == {"b1", "b2"}
    assert b.embedder_backend == "gemma" and b.view().dim == 320
    # b's private ANN index was rebuilt from the stored copies: the dense leg alone finds them
    dense = HybridRetriever(b).dense("waterproof boots", SearchFilters(), 3)
    assert {pid for pid, _ in dense[:2]} == {"b1", "b2"}
    assert b.vectors.count() == len(PRODUCTS)

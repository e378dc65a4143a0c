"""Snapshots of the catalog mirror and the facet index (shopassist.snapshot): a fresh process
loads them instead of rebuilding, applies what changed since, and treats any unfit or broken
snapshot as a cache miss, never as an error."""

import logging
import os
import stat
from pathlib import Path

import pytest

import retrieval.catalog as catalog_module
from assistant.facets import FacetIndex
from evals.dialogues import default_suite
from retrieval import Catalog, HybridRetriever, ingest_file
from shopassist import snapshot
from shopassist.models import Product, SearchFilters

pytestmark = pytest.mark.integration

APPAREL = Path(default_suite()).parent / "catalogs" / "apparel_zh.jsonl"


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(catalog_module, "SNAPSHOT_MIN_CHANGES", 1)


def ids(catalog, query):
    return [c.product.id for c in HybridRetriever(catalog).search(query, SearchFilters(), top_k=5)]


def test_a_fresh_process_starts_from_the_snapshot_and_sees_later_writes(settings, use_embedder, small_threshold):
    writer = Catalog(settings, embedder=use_embedder)
    ingest_file(writer, APPAREL)
    first = Catalog(settings, embedder=use_embedder)
    expected = ids(first, "牛仔裤 女")
    path = snapshot.cache_path(settings.home, "catalog-mirror")
    assert path.exists() and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = Catalog(settings, embedder=use_embedder)
    assert ids(second, "牛仔裤 女") == expected and second.snapshot_used
    assert len(second) == len(first)
    # a product written after the snapshot is applied on top of it
    new = Product(id="after-snap", title="高腰阔腿牛仔裤 女 新款", price=99.0, currency="CNY", category="女装 > 牛仔裤")
    writer.upsert([new])
    third = Catalog(settings, embedder=use_embedder)
    assert third.get("after-snap") is not None and third.snapshot_used
    assert "after-snap" in ids(third, "高腰阔腿牛仔裤")


def test_a_broken_or_foreign_snapshot_is_rebuilt(settings, use_embedder, small_threshold, caplog):
    ingest_file(Catalog(settings, embedder=use_embedder), APPAREL)
    Catalog(settings, embedder=use_embedder).refresh()
    path = snapshot.cache_path(settings.home, "catalog-mirror")
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with caplog.at_level(logging.WARNING):
        again = Catalog(settings, embedder=use_embedder)
        n = len(again)
    assert not again.snapshot_used and n > 0 and "cannot be read" in caplog.text
    # the catalog deleted and built again: its sequence starts over, the old snapshot is not its
    Catalog(settings, embedder=use_embedder).refresh()
    settings.catalog_db.unlink()
    for extra in ("-wal", "-shm"):
        Path(str(settings.catalog_db) + extra).unlink(missing_ok=True)
    rebuilt = Catalog(settings, embedder=use_embedder)
    rebuilt.upsert([Product(id="only", title="羊毛围巾", price=50.0, currency="CNY")])
    fresh = Catalog(settings, embedder=use_embedder)
    assert not fresh.snapshot_used and len(fresh) == 1


def test_the_facet_index_snapshot_is_keyed_by_the_catalog_state(tmp_path, monkeypatch):
    import assistant.facets.index as index_module

    monkeypatch.setattr(index_module, "SNAPSHOT_MIN_PRODUCTS", 1)
    products = [
        Product(id=f"p{i}", title=f"高腰牛仔裤女 款{i}", category="女装 > 牛仔裤", attributes={"腰型": "高腰"})
        for i in range(5)
    ]
    built = []

    def source():
        built.append(1)
        return products

    first = FacetIndex.cached(tmp_path, "cat:5", source)
    second = FacetIndex.cached(tmp_path, "cat:5", source)
    assert len(built) == 1 and len(second) == len(first) == 5
    assert second.category_paths() == first.category_paths()
    # the loaded index still counts new products (jieba's table comes back on use)
    second.update(Product(id="p9", title="加绒牛仔裤", category="女装 > 牛仔裤"))
    assert len(second) == 6
    FacetIndex.cached(tmp_path, "cat:6", source)  # another catalog state: built again
    assert len(built) == 2

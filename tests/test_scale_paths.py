"""The paths a large catalog takes that a small one never does, forced on a small one: the first
load read page by page, the filtered dense search ranked on the mirror's 64-d projection before
its exact pass, and the memory a built mirror hands back."""

from __future__ import annotations

import numpy as np
import pytest

import retrieval.mirror as mirror_module
import retrieval.search as search_module
import retrieval.store as store_module
from retrieval import Catalog, HybridRetriever
from retrieval.lexical import BM25Index
from retrieval.mirror import Mirror
from retrieval.testing import HashingEmbedder
from shopassist.config import Settings
from shopassist.memory import release_free_memory
from shopassist.models import Product, SearchFilters

WORDS = ["牛仔裤", "连衣裙", "卫衣", "跑鞋", "面霜", "口红", "耳机", "手表", "backpack", "kettle", "lamp", "scarf"]
ADJ = ["高腰", "修身", "加绒", "雪纺", "防水", "轻薄", "红色", "黑色", "wool", "steel", "vintage", "mini"]


class LowRankEmbedder(HashingEmbedder):
    """Hashing vectors pushed through a rank-24 map: a 64-d projection then keeps all of them, so
    the projected ranking must find exactly what the exact one finds."""

    def __init__(self) -> None:
        super().__init__(dim=128)
        rng = np.random.default_rng(7)
        self._map = (rng.standard_normal((128, 24)) @ rng.standard_normal((24, 128))).astype(np.float32)

    def _vector(self, text: str) -> np.ndarray:
        v = self._map @ super()._vector(text)
        return (v / max(float(np.linalg.norm(v)), 1e-9)).astype(np.float32)


def products(n: int) -> list[Product]:
    rng = np.random.default_rng(3)
    return [
        Product(
            id=f"s{i:04d}",
            title=f"{ADJ[int(rng.integers(len(ADJ)))]} {WORDS[i % len(WORDS)]} {i}",
            price=float(rng.integers(5, 500)),
            currency="CNY",
            stock=int(rng.integers(0, 3)),
            category=["服饰", "美妆", "数码", "家居"][i % 4],
        )
        for i in range(n)
    ]


@pytest.fixture()
def catalog(tmp_path, monkeypatch) -> Catalog:
    monkeypatch.setattr(mirror_module, "REDUCE_ABOVE", 200)
    cat = Catalog(Settings(home=tmp_path / "home"), embedder=LowRankEmbedder())
    cat.upsert(products(600))
    return cat


def test_a_first_load_read_in_pages_builds_the_same_catalog(catalog, monkeypatch) -> None:
    monkeypatch.setattr(store_module, "CHANGE_PAGE", 7)  # 600 rows: 86 pages, pages inside batches
    catalog.delete(["s0005", "s0100"])
    catalog.upsert([Product(id="s0007", title="改过的 牛仔裤", price=1.0, currency="CNY")])
    fresh = Catalog(catalog.settings, embedder=LowRankEmbedder())
    assert len(fresh) == len(catalog) == 598
    assert fresh.get("s0007").title == "改过的 牛仔裤" and fresh.get("s0005") is None
    view, other = catalog.view(), fresh.view()
    for pid in ("s0001", "s0007", "s0599"):
        assert dict(other.doc_terms(pid)) == dict(view.doc_terms(pid))
        np.testing.assert_array_equal(other.vector_of(pid), view.vector_of(pid))
    query = "高腰 牛仔裤"
    assert [c.product.id for c in HybridRetriever(fresh).search(query, top_k=10)] == [
        c.product.id for c in HybridRetriever(catalog).search(query, top_k=10)
    ]


def test_a_process_that_only_writes_never_builds_the_mirror(tmp_path) -> None:
    """A bulk ingest writes and never reads: the mirror (13 GB at 1M products) is built by the
    first read, which then holds every write, its own included."""
    writer = Catalog(Settings(home=tmp_path / "home"), embedder=LowRankEmbedder())
    writer.upsert(products(30))
    writer.delete(["s0003"])
    writer.upsert([Product(id="s0004", title="改过的 卫衣", price=5.0, currency="CNY")])
    assert writer._mirror.products == {} and writer._mirror.seq == 0  # nothing held yet
    assert len(writer) == 29 and writer.get("s0004").title == "改过的 卫衣" and writer.get("s0003") is None
    assert "s0004" in [c.product.id for c in HybridRetriever(writer).search("改过的 卫衣", top_k=3)]
    writer.upsert([Product(id="s0100", title="新到 防水 手表", price=9.0, currency="CNY")])  # once read: kept in step
    assert writer._mirror.products["s0100"].title == "新到 防水 手表"


def test_the_projection_is_fitted_once_the_catalog_is_large_and_follows_every_change(catalog) -> None:
    catalog.view()
    m = catalog._mirror
    assert m.reduction is not None and m.vector_count == 600
    basis, reduced = m.reduction
    assert basis.shape == (128, mirror_module.REDUCED_DIM) and reduced.dtype == np.float32
    catalog.upsert([Product(id="late", title="防水 手表 新款", price=99.0, currency="CNY")])
    slot = catalog.view().bm25.slot("late")
    basis, reduced = m.reduction  # put after the fit: projected with the same basis
    np.testing.assert_allclose(reduced[slot], catalog.view().vector_of("late") @ basis, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "filters",
    [
        SearchFilters(max_price=250),
        SearchFilters(in_stock=True, min_price=50),
        SearchFilters(category="服饰"),
        SearchFilters(max_price=400, exclude_terms=["红色"]),  # an item check the mask cannot do
    ],
)
@pytest.mark.parametrize("query", ["高腰 牛仔裤", "防水 手表", "wool scarf", "口红"])
def test_projected_dense_ranking_finds_what_the_exact_one_finds(catalog, monkeypatch, filters, query) -> None:
    retriever = HybridRetriever(catalog)
    view = catalog.view()
    qvec = catalog.embedder.embed_query(query)
    exact = retriever._dense(view, qvec, filters, depth=10)
    monkeypatch.setattr(search_module, "PROJECT_ABOVE", 50)
    monkeypatch.setattr(search_module, "PROJECTED_CANDIDATES", 40)
    calls = []
    real = type(view).nearest_by_projection

    def spy(self, q, slots, n):
        found = real(self, q, slots, n)
        calls.append((len(slots), None if found is None else len(found)))
        return found

    monkeypatch.setattr(type(view), "nearest_by_projection", spy)
    projected = retriever._dense(view, qvec, filters, depth=10)
    assert calls and calls[0][0] > 100 and calls[0][1] == 100  # 10 x depth candidates of the kept
    assert [pid for pid, _ in projected] == [pid for pid, _ in exact]
    assert all(catalog.allowed(filters)(pid) for pid, _ in projected)


def test_terms_are_one_string_shared_by_every_document() -> None:
    index = BM25Index()
    index.upsert("a", "".join(["高腰", " ", "牛仔裤"]).split())
    index.upsert("b", ("".join(["高", "腰"]) + " 卫衣").split())  # an equal term built separately
    key_a = next(t for t in index.doc_terms("a") if t == "高腰")
    key_b = next(t for t in index.doc_terms("b") if t == "高腰")
    assert key_a is key_b


def test_freed_memory_is_handed_back_without_error() -> None:
    assert release_free_memory() in (True, False)
    m = Mirror(1.2, 0.75)
    m.fit_reduction()  # no vectors yet: nothing to fit, no error
    assert m.reduction is None


def test_best_first_is_a_stable_descending_sort_read_lazily() -> None:
    rng = np.random.default_rng(5)
    for n, first in [(0, 3), (5, 3), (1000, 10), (1000, 1), (5000, 40)]:
        scores = rng.integers(0, 20, n).astype(np.float32)  # many ties, across the cut too
        expected = np.argsort(-scores, kind="stable").tolist()
        assert list(search_module.best_first(scores, first)) == expected
        got = []
        for i in search_module.best_first(scores, first):  # a reader that stops early
            got.append(i)
            if len(got) == first:
                break
        assert got == expected[:first]


def test_the_scalar_mask_is_shared_between_changes_and_rebuilt_after_one(catalog) -> None:
    """Both legs of a search ask for the same mask: built once, read-only, and rebuilt after any
    change (a price edit here moves a product into the range)."""
    cheap = SearchFilters(max_price=4.0)
    view = catalog.view()
    first = view.scalar_mask(cheap)
    assert first is not None and view.scalar_mask(cheap) is first and not first.flags.writeable
    assert view.scalar_mask(SearchFilters(max_price=5.0)) is not first  # other filters: their own
    slot = view.bm25.slot("s0010")
    assert not first[slot]
    catalog.upsert([Product(id="s0010", title="降价 卫衣", price=3.0, currency="CNY")])
    after = catalog.view().scalar_mask(cheap)
    assert after is not first and after[slot]

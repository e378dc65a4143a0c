"""Hybrid search on a real Chroma + the packaged USE embedder: relevance, filters, live updates."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from retrieval import HybridConfig, HybridRetriever
from retrieval.filters import matches
from shopassist.models import Product, SearchFilters

pytestmark = pytest.mark.integration


def ids(results):
    return [c.product.id for c in results]


def test_finds_the_right_products_in_both_languages(loaded_catalog):
    r = HybridRetriever(loaded_catalog)
    assert ids(r.search("牛仔裤女", top_k=3))[0] in {"j1", "j2", "j3"}
    assert set(ids(r.search("牛仔裤女", top_k=3))) <= {"j1", "j2", "j3", "j4"}
    assert ids(r.search("waterproof hiking boots", top_k=2)) == ["b1", "b2"] or set(
        ids(r.search("waterproof hiking boots", top_k=2))
    ) == {"b1", "b2"}
    assert ids(r.search("自然堂面霜", top_k=1)) == ["s1"]
    top = r.search("mascara", top_k=1)[0]
    assert top.product.id == "m1" and top.reasons


FILTER_CASES = [
    SearchFilters(max_price=100),
    SearchFilters(min_price=100, max_price=200),
    SearchFilters(brands=["森马"]),
    SearchFilters(brands=["自然堂"]),  # one of 'CHANDO/自然堂'
    SearchFilters(exclude_brands=["trailco", "森马"]),
    SearchFilters(category="服饰 > 女装"),
    SearchFilters(category="Boots"),
    SearchFilters(in_stock=True),
    SearchFilters(currency="USD", max_price=100),
    SearchFilters(attributes={"腰型": ["高腰"]}),
    SearchFilters(exclude_attributes={"color": ["brown"]}),
    SearchFilters(exclude_terms=["破洞", "Brown"]),
]


@pytest.mark.parametrize(
    "filters", FILTER_CASES, ids=lambda f: json.dumps(f.model_dump(exclude_defaults=True), ensure_ascii=False)
)
@pytest.mark.parametrize("query", ["牛仔裤", "boots", "waterproof boots brown"])
def test_every_leg_honours_every_filter(loaded_catalog, filters, query):
    products = {p.id: p for p in loaded_catalog.products()}
    expected = {pid for pid, p in products.items() if matches(p, filters)}
    for cfg in (HybridConfig(use_dense=False), HybridConfig(use_lexical=False), HybridConfig()):
        found = ids(HybridRetriever(loaded_catalog, cfg).search(query, filters, top_k=50))
        assert set(found) <= expected, (cfg, found)
    # the dense leg sees the whole filtered set (the catalog is tiny), so nothing is lost
    dense = ids(HybridRetriever(loaded_catalog, HybridConfig(use_lexical=False)).search(query, filters, top_k=50))
    assert set(dense) == expected


def test_lexical_mask_agrees_with_the_reference_predicate(loaded_catalog):
    products = {p.id: p for p in loaded_catalog.products()}
    bm25 = loaded_catalog.bm25
    for filters in FILTER_CASES:
        mask = loaded_catalog.scalar_mask(filters)
        if mask is None:
            continue
        for slot, pid in enumerate(bm25.slot_ids):
            if pid is not None:
                from retrieval.filters import matches_scalar

                assert bool(mask[slot]) == matches_scalar(products[pid], filters), (filters, pid)


def test_empty_query_browses_the_filtered_catalog(loaded_catalog):
    results = HybridRetriever(loaded_catalog).search("", SearchFilters(category="牛仔裤", max_price=150), top_k=10)
    assert set(ids(results)) == {"j2", "j3", "j4"}


def test_upsert_price_stock_and_delete_are_visible_in_the_next_search(loaded_catalog):
    r = HybridRetriever(loaded_catalog)
    cheap = SearchFilters(max_price=50)
    assert "b3" not in ids(r.search("running shoes", cheap))
    b3 = loaded_catalog.get("b3").model_copy(update={"price": 39.0})
    loaded_catalog.upsert([b3])
    assert ids(r.search("running shoes", cheap))[0] == "b3"

    new = Product(id="n1", title="Ultralight Trekking Poles, Carbon", price=45, currency="USD", stock=7)
    loaded_catalog.upsert([new])
    assert ids(r.search("trekking poles", top_k=1)) == ["n1"]
    assert ids(
        HybridRetriever(loaded_catalog, HybridConfig(use_lexical=False)).search("carbon trekking poles", top_k=1)
    ) == ["n1"]

    loaded_catalog.upsert([new.model_copy(update={"stock": 0})])
    assert "n1" not in ids(r.search("trekking poles", SearchFilters(in_stock=True)))

    loaded_catalog.delete(["n1"])
    assert "n1" not in ids(r.search("trekking poles", top_k=10))
    assert loaded_catalog.get("n1") is None


@pytest.mark.slow
def test_changes_from_another_process_reach_both_legs(loaded_catalog, settings):
    r = HybridRetriever(loaded_catalog)
    lexical_only = HybridRetriever(loaded_catalog, HybridConfig(use_dense=False))
    dense_only = HybridRetriever(loaded_catalog, HybridConfig(use_lexical=False))
    assert r.search("mascara", top_k=1)  # opens the Chroma graph in this process
    script = textwrap.dedent(
        """
        from shopassist.config import Settings
        from shopassist.models import Product
        from retrieval import Catalog
        cat = Catalog(Settings.from_env())
        cat.upsert([Product(id="x9", title="Cast Iron Skillet 12 inch, pre-seasoned", price=35, currency="USD")])
        cat.upsert([cat.get("m1").model_copy(update={"price": 4.5})])
        cat.delete(["b4"])
        """
    )
    env = {**os.environ, "SHOPASSIST_HOME": str(settings.home)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    assert ids(lexical_only.search("cast iron skillet", top_k=1)) == ["x9"]
    assert ids(dense_only.search("cast iron skillet", top_k=1)) == ["x9"]
    assert ids(r.search("mascara", SearchFilters(max_price=5), top_k=1)) == ["m1"]
    assert "b4" not in ids(dense_only.search("snow boots", top_k=10))
    assert "b4" not in ids(lexical_only.search("snow boots", top_k=10))
    # after a reload of the graph the same answers come straight from Chroma
    loaded_catalog.vectors.reopen()
    assert ids(dense_only.search("cast iron skillet", top_k=1)) == ["x9"]
    assert "b4" not in ids(dense_only.search("snow boots", top_k=10))


def test_candidates_carry_reason_codes_not_debug_text(loaded_catalog):
    """What found a product is a code the assistant says in the shopper's words (no ranks, no query echo)."""
    r = HybridRetriever(loaded_catalog)
    codes = {"all_words", "keyword", "meaning", "listed"}
    for query in ("mascara", "高腰 牛仔裤"):
        results = r.search(query, top_k=3)
        assert results and all(c.reasons and set(c.reasons) <= codes for c in results)
        assert not any("#" in x or query in x for c in results for x in c.reasons)
    top = r.search("mascara", top_k=1)[0]
    assert top.lexical_rank is not None and {"all_words", "keyword"} & set(top.reasons)  # the ranks stay fields
    assert r.search("", SearchFilters(max_price=100), top_k=2)[0].reasons == ["filters"]


@pytest.mark.parametrize("required", [["牛仔"], ["高腰|修身"], ["女", "裤"], ["不存在的词"]])
def test_required_chinese_words_narrow_the_exact_dense_scan_without_changing_results(loaded_catalog, required):
    """The character postings give a superset of the products holding the required words, so
    the dense leg scores only those: the same results as checking every product."""
    from retrieval.filters import matches_rest

    retriever = HybridRetriever(loaded_catalog)
    filters = SearchFilters(require_terms=required)
    view = loaded_catalog.view()
    held = set(retriever._required_slots(view, filters).tolist())
    truly = {slot for slot, pid in enumerate(view.bm25.slot_ids) if pid and matches_rest(view.products[pid], filters)}
    assert truly <= held  # a superset: nothing that passes is left out
    narrowed = ids(retriever.search("裤子", filters, top_k=10))
    retriever._required_slots = lambda v, f: None  # every product checked, as before
    assert ids(retriever.search("裤子", filters, top_k=10)) == narrowed

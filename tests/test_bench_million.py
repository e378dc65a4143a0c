"""The million-product benchmark's catalog generator and memory fit (benchmarks/bench_million.py).

The benchmark itself takes an hour and ~20 GB at 1M products and is run by hand on a quiet
machine; these tests check what its numbers rest on: the generated catalog is deterministic,
made of real text (every recombined title keeps its real base title verbatim and adds a real
brand, attribute value and product word), valid for the catalog schema, and the memory formula
is a correct least-squares fit.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from shopassist.models import Product

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_million  # noqa: E402

from tests.conftest import SHARED_DATA  # noqa: E402

N = 2000


@pytest.fixture(scope="module")
def sources() -> bench_million.Sources:
    if not (SHARED_DATA / "lexicons" / "brand1.dic").exists():
        pytest.skip(f"the shared data is not at {SHARED_DATA} (set SHOPASSIST_SHARED_DATA)")
    full = bench_million.load_sources(SHARED_DATA, queries=1000, seed=7)
    # 700 bases, so that 2,000 products reach pass 2 and the recombination is exercised
    return dataclasses.replace(full, bases=full.bases[:350] + full.bases[-350:])


@pytest.fixture(scope="module")
def rows(sources: bench_million.Sources) -> list[dict]:
    return list(bench_million.generate(N, sources, seed=7))


def test_generator_is_deterministic_and_streams_to_a_file(sources, rows, tmp_path):
    assert rows == list(bench_million.generate(N, sources, seed=7))
    assert rows != list(bench_million.generate(N, sources, seed=8))
    path = tmp_path / "catalog.jsonl"
    meta = bench_million.write_catalog(path, N, sources, seed=7, progress=False)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert meta["size"] == N and meta["bytes"] == path.stat().st_size
    assert not path.with_suffix(".jsonl.tmp").exists()


def test_every_product_is_valid_for_the_catalog_schema(rows):
    products = [Product.model_validate(r) for r in rows]
    assert len({p.id for p in products}) == N
    assert all(p.price is not None and p.price >= 0 and p.stock is not None for p in products)
    assert 0 < sum(p.stock == 0 for p in products) < N * 0.15  # some sold out, for the in-stock filter
    assert len({p.title for p in products}) > N * 0.95


def test_titles_are_real_text_and_say_what_is_generated(sources, rows):
    bases = {b["base"]: b for b in sources.bases}
    brands = set(sources.zh_brands) | set(sources.latin_brands)
    words = set(sources.product_words)
    queries = set(sources.bench_queries) | set(sources.warm_queries)
    passes = {0: 0, 1: 0, 2: 0}
    for row in rows:
        base = bases[row["source"]["base"]]
        assert base["title"] in row["title"]  # the real base title, verbatim
        assert "stock" in row["generated_fields"]
        assert row["title"] not in queries  # the benchmark's queries are never titles
        passes[row["source"]["pass"]] += 1
        if row["source"]["pass"] == 0:
            assert row["title"] == base["title"]
            continue
        assert row["brand"] in brands and row["title"].startswith(row["brand"] + " ")
        assert "recombined title, brand, attributes" in row["generated_fields"]
        if base.get("language") != "en":
            word = row["attributes"]["产品词"][0]
            assert word in words and row["title"].endswith(" " + word)
            assert any(
                (name, value) in set(sources.attributes) and f" {value} " in row["title"]
                for name, value in row["attributes"].items()
                if isinstance(value, str)
            )
        else:
            assert row["tags"][0] in sources.en_tags
    assert passes[0] == 700 and passes[1] == 700 and passes[2] == 600
    # the bases are real: the demo catalog, the Multi-CPR pool, CrowdFlower, the query log
    assert {b.split(":")[0] for b in (r["source"]["base"] for r in rows)} >= {"demo", "querylog"}


def test_sources_hold_out_the_benchmark_queries(sources):
    assert len(sources.bench_queries) == 1000 and len(sources.warm_queries) == bench_million.WARM_QUERIES
    titles = {b["title"] for b in sources.bases}
    assert not titles & set(sources.bench_queries)


def test_memory_fit_recovers_a_line():
    samples = [(n, 850.0 + 0.0095 * n) for n in (100_000, 250_000, 500_000, 1_000_000)]
    fit = bench_million.fit_memory(samples)
    assert fit.a == pytest.approx(850.0) and fit.b == pytest.approx(0.0095)
    assert fit.r2 == pytest.approx(1.0) and fit.at(2_000_000) == pytest.approx(850 + 19_000)
    assert "MB = 850 + 9.50 x (products / 1000)" in fit.formula()
    noisy = bench_million.fit_memory([(1, 10.0), (2, 12.5), (3, 13.5), (4, 16.0)])
    assert noisy.b == pytest.approx(1.9) and noisy.a == pytest.approx(8.25) and 0.9 < noisy.r2 < 1.0
    with pytest.raises(ValueError, match="two or more"):
        bench_million.fit_memory([(1000, 5.0), (1000, 6.0)])


def test_rss_and_the_estimate_read_this_machine():
    assert bench_million.rss_mb() > 10
    assert bench_million.mem_available_mb() > 0
    est = bench_million.estimate(1_000_000)
    assert est["peak_mb"] > est["worker_mb"] > bench_million.EST_WORKER_BASE_MB

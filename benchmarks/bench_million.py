"""A million products: ingest throughput, resident memory per worker as the catalog grows (and
the formula it grows by), search p50/p99 with and without filters, upsert->searchable, and the
cold start of a worker, on a catalog built from real text.

    .venv/bin/python benchmarks/bench_million.py [--size 1000000] [--work DIR] [--queries 1000] [--resume]

It takes about an hour and ~20 GB of RAM at 1,000,000 products on 2 cores: run it on a quiet
machine. Before starting it prints what it expects to need (memory, disk, time) and refuses
when the free memory (MemAvailable in /proc/meminfo) is clearly too small.

How the catalog is built (``generate``, seeded, streamed to WORK/catalog-N.jsonl, never held
whole in memory). The *bases* are real text only: the bundled demo catalog (real Taobao, OpenBG
and DummyJSON records with their brands, categories and attributes), the Multi-CPR pool titles,
the CrowdFlower product titles, and real Taobao search queries from the query log as short
pseudo-titles (as benchmarks/bench_retrieval.py does). The query log is shuffled with the seed;
the first ``--queries`` queries (plus 50 for warming up) are the benchmark's and are never used
as titles. Then, in seeded order:

* pass 0: every base once, as it is (its real price when it has one);
* pass 1, 2, ...: each base again, recombined: a real brand from the shared brand lexicons
  (``lexicons/brand*.dic``; Latin-script brands for English bases), a real product word from
  ``lexicons/product*.dic`` (half the time one that the demo catalog files under the base's
  top-level category, or under any category when the base has none, which then becomes the
  product's category), and a real attribute (name, value) pair from the demo catalog's records
  (from the base's top-level category when it has attributes there; English bases: a real
  DummyJSON tag). Title = brand + base title + attribute value + product word. The
  recombinations are word salad as often as not (a face cream titled with a wine rack): they
  give the index a million distinct titles with real vocabulary and real term statistics, not
  a million sensible products.

Generated, not real: ids (``m0000000``...), every stock (5% sold out, else 1-500), the price of
a base without one (log-normal, median ~90) and of every recombined product (the base's price
times 0.8-1.25, or log-normal). Each row says so in ``generated_fields`` and names its base
and pass in ``source``.

Measured (results to benchmarks/results/million-<date>.json and a markdown table):

* ingest: the products are upserted in batches of 256 as ``shopassist catalog ingest`` does
  (parse, validate, embed, Chroma, SQLite), with the rate every 50k products and the ingest
  process's resident memory (VmRSS) at 10%, 25%, 50% and 100%;
* memory per worker: at the same points a fresh worker process builds the stack, answers 20
  searches and reports its VmRSS; ``MB = a + b x products`` is fitted by least squares;
* on-disk sizes (SQLite, Chroma, the mirror snapshot);
* search: ``--queries`` real queries not used as titles, half with filters (the same mix as
  bench_retrieval: price range, in stock, some a category), p50/p99 for each half;
* upsert->searchable, in the same process and from another process (bench_retrieval's method);
* cold start of a worker, from spawn to its first answer: without the mirror snapshot, the
  first worker (which also writes the snapshot under HOME/cache), and with the snapshot.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_retrieval import freshness_other_process, freshness_same_process, make_filters  # noqa: E402
from common import machine, pct  # noqa: E402

from shopassist import snapshot  # noqa: E402
from shopassist.config import Settings  # noqa: E402
from shopassist.errors import UsageError  # noqa: E402
from shopassist.models import Product, SearchFilters  # noqa: E402
from shopassist.resources import demo_catalog_path  # noqa: E402

SHARED = Path(os.environ.get("SHOPASSIST_SHARED_DATA", REPO.parent / "shared" / "data"))
GENERATOR_VERSION = 1
WARM_QUERIES = 50
CHECKPOINTS = (0.10, 0.25, 0.50, 1.00)

# Rough costs for the estimate printed before a run (2 cores, USE 512-d embedder, embedded
# Chroma and SQLite). Worker memory from benchmarks/bench_memory.py on 2026-12-03 (fresh workers at
# 50k-1M: MB = 333 + 10.4 x thousands of products, r2 1.000); the rest from the 20k smoke run.
EST_WORKER_BASE_MB = 333.0  # a worker with an empty catalog: Python, TF + USE model, jieba, Chroma
EST_WORKER_KB_PER_PRODUCT = 10.4  # mirror (products, postings, filter columns, 2 KB vector, projection) + HNSW
EST_INGEST_KB_PER_PRODUCT = 0.5  # the ingest process: it never reads, so it holds no mirror
EST_SQLITE_KB_PER_PRODUCT = 2.3
EST_CHROMA_KB_PER_PRODUCT = 4.1
EST_SNAPSHOT_KB_PER_PRODUCT = 4.0
EST_JSONL_KB_PER_PRODUCT = 0.25
EST_INGEST_PER_S = 400.0  # 155/s on the busy smoke box, 751/s at 100k on a quiet one (bench_retrieval)
EST_MIRROR_BUILD_PER_S = 4000.0  # a worker building its mirror from SQLite (no snapshot)


# -- the sources ---------------------------------------------------------------------------------
@dataclass
class Sources:
    """Real text the catalog is built from (see the module docstring), and the held-out queries."""

    bases: list[dict[str, Any]]  # real records: id, title, and what else the source has
    zh_brands: list[str]  # brand lexicons, CJK
    latin_brands: list[str]  # brand lexicons, Latin script (for English bases)
    product_words: list[str]  # product-word lexicons
    word_category: dict[str, str]  # product word -> category, from the demo catalog
    attributes: list[tuple[str, str]]  # real (name, value) pairs, demo catalog (OpenBG)
    top_words: dict[str, list[str]]  # top-level category -> product words filed under it
    top_attributes: dict[str, list[tuple[str, str]]]  # top-level category -> attribute pairs seen under it
    en_tags: list[str]  # real tags, DummyJSON records of the demo catalog
    bench_queries: list[str]  # real queries never used as titles
    warm_queries: list[str]
    counts: dict[str, int] = field(default_factory=dict)


_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN_BRAND = re.compile(r"[A-Za-z][A-Za-z0-9&.\- ]+")
_SKIP_ATTRIBUTES = {"品牌", "货号", "型号", "产品词", "sku", "款号"}


def read_lexicon(paths: Sequence[Path]) -> list[str]:
    """Words of the ``.dic`` files, in file order, once each."""
    seen: dict[str, None] = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                word = line.strip().split(" ")[0] if line.strip() else ""
                if word:
                    seen.setdefault(word, None)
    return list(seen)


def read_query_log(path: Path) -> list[tuple[str, str]]:
    """(qid, query) rows of the Multi-CPR query log."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if "\t" in line:
                qid, query = line.rstrip("\n").split("\t", 1)
                if query.strip():
                    rows.append((qid.strip(), query.strip()))
    return rows


def load_sources(shared: Path = SHARED, *, queries: int = 1000, seed: int = 7) -> Sources:
    """Read the real text (the demo catalog and ../shared/data); a missing file is a UsageError."""
    needed = [
        shared / "querylogs" / "multicpr_ecom_train_queries.tsv",
        shared / "eval" / "multicpr_ecom_pool" / "corpus.jsonl",
        shared / "eval" / "crowdflower_relevance" / "judgements.jsonl",
        *(shared / "lexicons" / f"brand{i}.dic" for i in range(1, 5)),
        *(shared / "lexicons" / f"product{i}.dic" for i in range(1, 4)),
    ]
    if missing := [str(p) for p in needed if not p.exists()]:
        raise UsageError(
            f"the shared data is missing ({', '.join(missing[:3])}...): point SHOPASSIST_SHARED_DATA at the "
            "shared/data folder"
        )
    bases: list[dict[str, Any]] = []
    seen: set[str] = set()
    word_category: dict[str, str] = {}
    attributes: dict[tuple[str, str], None] = {}
    top_attributes: dict[str, dict[tuple[str, str], None]] = {}
    en_tags: dict[str, None] = {}
    with open(demo_catalog_path(), encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            seen.add(row["title"])
            generated = row.get("generated_fields") or []
            row = {k: v for k, v in row.items() if k not in ("source", "generated_fields")}
            row["base"] = f"demo:{row.pop('id')}"
            row["base_generated"] = generated  # what the demo catalog itself generated (stock, some prices)
            bases.append(row)
            attrs = row.get("attributes") or {}
            for word in attrs.get("产品词") or []:
                if row.get("category"):
                    word_category.setdefault(word, row["category"])
            for name, value in attrs.items():
                if (
                    name not in _SKIP_ATTRIBUTES
                    and isinstance(value, str)
                    and 0 < len(value) <= 20
                    and _CJK.search(value)
                ):
                    attributes.setdefault((name, value), None)
                    if row.get("category"):
                        top_attributes.setdefault(_top(row["category"]), {}).setdefault((name, value), None)
            if row.get("language") == "en":
                for tag in row.get("tags") or []:
                    en_tags.setdefault(tag, None)
    counts = {"demo_catalog": len(bases)}
    n = len(bases)
    with open(shared / "eval" / "multicpr_ecom_pool" / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["title"] not in seen:
                seen.add(row["title"])
                bases.append({"base": f"mcpr:{row['id']}", "title": row["title"], "language": "zh"})
    counts["multicpr_pool"] = len(bases) - n
    n = len(bases)
    with open(shared / "eval" / "crowdflower_relevance" / "judgements.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["product_title"] not in seen:
                seen.add(row["product_title"])
                bases.append(
                    {"base": f"cf:{row['id']}", "title": row["product_title"], "currency": "USD", "language": "en"}
                )
    counts["crowdflower"] = len(bases) - n
    n = len(bases)
    log = read_query_log(shared / "querylogs" / "multicpr_ecom_train_queries.tsv")
    random.Random(seed).shuffle(log)
    held = [q for _, q in log[: queries + WARM_QUERIES]]
    held_set = set(held)
    for qid, query in log[queries + WARM_QUERIES :]:
        if query not in seen and query not in held_set:
            seen.add(query)
            bases.append({"base": f"querylog:{qid}", "title": query, "language": "zh"})
    counts["querylog_as_title"] = len(bases) - n
    lex = shared / "lexicons"
    brands = [b for b in read_lexicon([lex / f"brand{i}.dic" for i in range(1, 5)]) if len(b) >= 2]
    words = [w for w in read_lexicon([lex / f"product{i}.dic" for i in range(1, 4)]) if len(w) >= 2 and _CJK.search(w)]
    word_category = {w: c for w, c in word_category.items() if w in set(words)}
    top_words: dict[str, list[str]] = {}
    for word, category in word_category.items():
        top_words.setdefault(_top(category), []).append(word)
    return Sources(
        bases=bases,
        zh_brands=[b for b in brands if _CJK.search(b)],
        latin_brands=[b for b in brands if _LATIN_BRAND.fullmatch(b)],
        product_words=words,
        word_category=word_category,
        attributes=list(attributes),
        top_words=top_words,
        top_attributes={top: list(pairs) for top, pairs in top_attributes.items()},
        en_tags=list(en_tags),
        bench_queries=held[:queries],
        warm_queries=held[queries:],
        counts=counts,
    )


def _top(category: str) -> str:
    return category.split(">")[0].strip()


# -- the generator -------------------------------------------------------------------------------
def _stock(rng: random.Random) -> int:
    return 0 if rng.random() < 0.05 else rng.randint(1, 500)


def _price(rng: random.Random, base: float | None) -> float:
    if base is not None:
        return round(base * rng.uniform(0.8, 1.25), 1)
    return round(rng.lognormvariate(4.5, 1.0), 1)


def generate(size: int, sources: Sources, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``size`` catalog rows (dicts in the catalog schema), deterministic for (sources, seed);
    see the module docstring for what is real and what is generated."""
    rng = random.Random(seed)
    order = list(range(len(sources.bases)))
    rng.shuffle(order)
    mapped = sorted(sources.word_category)
    for i in range(size):
        pas, k = divmod(i, len(order))
        base = sources.bases[order[k]]
        row: dict[str, Any] = {k2: v for k2, v in base.items() if k2 not in ("base", "base_generated")}
        row["id"] = f"m{i:07d}"
        row["source"] = {"base": base["base"], "pass": pas}
        generated = ["stock", *(g for g in base.get("base_generated", ()) if g != "stock")]
        real_price = base.get("price")
        if pas == 0:
            if real_price is None:
                row["price"] = _price(rng, None)
                generated.append("price")
        else:
            row["price"] = _price(rng, real_price)
            if "price" not in generated:
                generated.append("price")
            attrs = dict(base.get("attributes") or {})
            if base.get("language") == "en":
                brand = rng.choice(sources.latin_brands)
                tag = rng.choice(sources.en_tags)
                row["title"] = f"{brand} {base['title']} {tag}"
                row["tags"] = [tag]
            else:
                brand = rng.choice(sources.zh_brands)
                top = _top(base.get("category") or "")
                words = sources.top_words.get(top) or mapped
                pairs = sources.top_attributes.get(top, [])
                pairs = pairs if len(pairs) >= 20 else sources.attributes  # too few to vary: any real pair
                word = rng.choice(words) if words and rng.random() < 0.5 else rng.choice(sources.product_words)
                name, value = rng.choice(pairs)
                row["title"] = f"{brand} {base['title']} {value} {word}"
                attrs[name] = value
                attrs["产品词"] = [word]
                row["tags"] = [word]
                if not base.get("category") and word in sources.word_category:
                    row["category"] = sources.word_category[word]
            row["brand"] = brand
            row["attributes"] = attrs
            generated.append("recombined title, brand, attributes")
        row["stock"] = _stock(rng)
        row["generated_fields"] = generated
        yield row


def write_catalog(path: Path, size: int, sources: Sources, seed: int, progress: bool = True) -> dict[str, Any]:
    """Stream ``generate`` to ``path`` (atomically: a killed run leaves no half file)."""
    from tqdm import tqdm

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    started = time.perf_counter()
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in tqdm(
            generate(size, sources, seed), total=size, unit="product", desc="generate", disable=not progress
        ):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    meta = {"size": size, "seed": seed, "generator": GENERATOR_VERSION, "bases": len(sources.bases)}
    path.with_suffix(".meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return {**meta, "seconds": round(time.perf_counter() - started, 1), "bytes": path.stat().st_size}


# -- memory ---------------------------------------------------------------------------------------
def rss_mb(status: Path = Path("/proc/self/status"), key: str = "VmRSS") -> float:
    """Resident memory of a process in MB (``key`` of its /proc/PID/status; VmHWM is the peak)."""
    with open(status, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in {status}")


def mem_available_mb() -> float:
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


@dataclass(frozen=True)
class LinearFit:
    """``MB = a + b x products``, least squares; ``r2`` says how well a line fits the samples."""

    a: float
    b: float
    r2: float
    samples: int

    def at(self, products: int) -> float:
        return self.a + self.b * products

    def formula(self) -> str:
        return (
            f"MB = {self.a:.0f} + {self.b * 1000:.2f} x (products / 1000)  (r2 {self.r2:.3f}, {self.samples} samples)"
        )


def fit_memory(samples: Sequence[tuple[int, float]]) -> LinearFit:
    """Least-squares line through (products, MB) samples; ValueError with fewer than two sizes."""
    xs = [float(n) for n, _ in samples]
    ys = [float(mb) for _, mb in samples]
    if len(set(xs)) < 2:
        raise ValueError("fitting a line needs samples at two or more catalog sizes")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return LinearFit(a, b, r2, len(samples))


def disk_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    if not path.exists():
        return 0.0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def disk_sizes(home: Path) -> dict[str, float]:
    sqlite = sum(disk_mb(p) for p in home.glob("catalog.sqlite*"))
    return {
        "sqlite_mb": round(sqlite, 1),
        "chroma_mb": round(disk_mb(home / "chroma"), 1),
        "snapshot_mb": round(disk_mb(snapshot.cache_path(home, "catalog-mirror")), 1),
    }


# -- the estimate and the guard -------------------------------------------------------------------
def estimate(size: int) -> dict[str, float]:
    """What a run at ``size`` needs, from the rough constants above."""
    worker = EST_WORKER_BASE_MB + EST_WORKER_KB_PER_PRODUCT * size / 1024
    ingest = EST_WORKER_BASE_MB + EST_INGEST_KB_PER_PRODUCT * size / 1024
    # one catalog in memory at a time (each phase is its own process; the ingest and the writer
    # of the other-process freshness check never read, so they hold no mirror), except: the first
    # worker pickles its mirror (about one snapshot's worth more)
    peak = max(ingest, worker + EST_SNAPSHOT_KB_PER_PRODUCT * size / 1024)
    disk = (
        (EST_SQLITE_KB_PER_PRODUCT + EST_CHROMA_KB_PER_PRODUCT + EST_SNAPSHOT_KB_PER_PRODUCT + EST_JSONL_KB_PER_PRODUCT)
        * size
        / 1024
    )
    build_s = size / EST_MIRROR_BUILD_PER_S  # each phase and probe process loads the catalog so far
    seconds = size / EST_INGEST_PER_S + 2 * sum(f * build_s for f in CHECKPOINTS) + 5 * build_s + 300
    return {
        "worker_mb": worker,
        "peak_mb": peak,
        "worker_and_writer_mb": worker + 2048,
        "disk_mb": disk,
        "minutes": seconds / 60,
    }


def guard(size: int, work: Path, force: bool) -> dict[str, float]:
    """Print the estimate; refuse (UsageError) when memory or disk is clearly short."""
    est = estimate(size)
    avail = mem_available_mb()
    work.mkdir(parents=True, exist_ok=True)
    free_disk = shutil.disk_usage(work).free / 2**20
    print(
        f"estimate for {size:,} products: ~{est['worker_mb'] / 1024:.1f} GB per worker, peak ~{est['peak_mb'] / 1024:.1f} GB "
        f"(one catalog in memory at a time; the other-process check needs ~{est['worker_and_writer_mb'] / 1024:.1f} GB or is skipped), ~{est['disk_mb'] / 1024:.1f} GB on disk, ~{est['minutes']:.0f} min on 2 cores; "
        f"available: {avail / 1024:.1f} GB RAM, {free_disk / 1024:.1f} GB disk under {work}",
        flush=True,
    )
    if force:
        return est
    if avail < est["worker_mb"]:
        raise UsageError(
            f"one worker would need ~{est['worker_mb'] / 1024:.1f} GB for {size:,} products and only "
            f"{avail / 1024:.1f} GB is available. The design keeps the whole catalog in every worker's memory "
            "(retrieval/mirror.py: products, postings, filter columns, float32 vectors); it has no partitioned "
            "mode. Run a smaller --size (the memory formula it prints extrapolates), use a machine with more "
            "RAM, or --force to try anyway."
        )
    if avail < 0.75 * est["peak_mb"]:
        raise UsageError(
            f"this run needs ~{est['peak_mb'] / 1024:.1f} GB at its peak (a worker pickling its mirror snapshot) "
            f"and {avail / 1024:.1f} GB is available: free memory, run a smaller --size, or "
            "--force to try anyway."
        )
    if free_disk < 0.9 * est["disk_mb"]:
        raise UsageError(
            f"~{est['disk_mb'] / 1024:.1f} GB of disk is needed under {work} and {free_disk / 1024:.1f} GB is free: "
            "choose another --work, or --force."
        )
    return est


# -- a fresh worker ------------------------------------------------------------------------------
_WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import retrieval.catalog as catalog_module
    from assistant.stack import build_stack
    from shopassist.config import Settings
    if os.environ.get("BENCH_NO_SNAPSHOT_SAVE"):
        catalog_module.SNAPSHOT_MIN_CHANGES = 1 << 62  # measure the build, leave no snapshot behind
    queries = json.loads(sys.argv[1])
    stack = build_stack(Settings.from_env())
    hits = stack.retriever.search(queries[0], top_k=10)
    print(json.dumps({"first": len(hits)}), flush=True)
    for q in queries[1:]:
        stack.retriever.search(q, top_k=10)
    mem = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                mem[line.split(":")[0]] = int(line.split()[1]) / 1024
    print(json.dumps({"rss_mb": mem["VmRSS"], "hwm_mb": mem["VmHWM"], "snapshot_used": stack.catalog.snapshot_used}))
    """
)


def fresh_worker(home: Path, queries: Sequence[str], *, save_snapshot: bool = True) -> dict[str, Any]:
    """Spawn a worker on ``home``: seconds from spawn to its first answer (build the stack, load or
    build the mirror, load the embedder, one search), then its resident memory after
    ``len(queries)`` searches (the Chroma graph is loaded by then)."""
    env = {**os.environ, "SHOPASSIST_HOME": str(home), "PYTHONPATH": str(REPO)}
    if not save_snapshot:
        env["BENCH_NO_SNAPSHOT_SAVE"] = "1"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, json.dumps(list(queries), ensure_ascii=False)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    first_answer = time.perf_counter() - started
    last = proc.stdout.readline()
    rc = proc.wait(timeout=3600)
    if rc != 0 or not first or not last:
        raise RuntimeError(f"the worker process failed (exit {rc}); its error is above")
    mem = json.loads(last)
    return {
        "spawn_to_first_answer_s": round(first_answer, 2),
        "rss_mb": round(mem["rss_mb"], 1),
        "peak_rss_mb": round(mem["hwm_mb"], 1),
        "snapshot_used": mem["snapshot_used"],
    }


def drop_snapshot(home: Path) -> None:
    """The mirror snapshot is only a cache (shopassist/snapshot.py): removed so a worker builds."""
    with contextlib.suppress(FileNotFoundError):
        snapshot.cache_path(home, "catalog-mirror").unlink()


# -- the measurements -----------------------------------------------------------------------------
def ingest_segment(home: Path, src: Path, upto: int, every: int, progress: bool = True) -> dict[str, Any]:
    """In a process of its own (``--ingest-segment``): upsert the catalog file in batches of 256
    (as ``ingest_file`` does), from the first product the catalog lacks up to ``upto``; the rate
    every ``every`` products and this process's resident memory at the end. Only upsert and
    parse time count (not this process's start, which loads the catalog built so far)."""
    from tqdm import tqdm

    from assistant.stack import build_stack

    with build_stack(Settings.from_env(home=str(home)), rank=False) as stack:
        catalog = stack.catalog
        start = catalog.store.count()  # not len(catalog): that reads, and a read builds the mirror
        timeline: list[dict[str, Any]] = []
        bar = tqdm(total=upto, initial=start, unit="product", desc="ingest", disable=not progress, smoothing=0.05)
        batch: list[Product] = []
        ingest_s = 0.0
        window_s, window_n = 0.0, 0
        rejected = 0
        with open(src, encoding="utf-8") as handle:
            for i, line in enumerate(handle):
                if i < start:
                    continue
                if i >= upto:
                    break
                t = time.perf_counter()
                try:
                    batch.append(Product.model_validate(json.loads(line)))
                except ValueError:
                    rejected += 1
                if len(batch) >= 256 or i + 1 == upto or (i + 1) % every == 0:
                    catalog.upsert(batch)
                    window_n += len(batch)
                    bar.update(len(batch))
                    batch.clear()
                took = time.perf_counter() - t
                ingest_s += took
                window_s += took
                if (i + 1) % every == 0 and window_n:
                    timeline.append(
                        {
                            "products": i + 1,
                            "products_per_s": round(window_n / window_s, 1),
                            "rss_mb": round(rss_mb(), 1),
                        }
                    )
                    window_s, window_n = 0.0, 0
        if batch:
            catalog.upsert(batch)
        bar.close()
        done = catalog.store.count()
    return {
        "from": start,
        "to": done,
        "seconds": round(ingest_s, 3),
        "rejected": rejected,
        "timeline": timeline,
        "ingest_rss_mb": round(rss_mb(), 1),
        "ingest_peak_rss_mb": round(rss_mb(key="VmHWM"), 1),
    }


def run_phase(flag: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run one phase (``--ingest-segment`` / ``--search-phase``) in a fresh process and return
    its JSON: the orchestrator never holds the catalog, so at most one full catalog (two while
    the other-process freshness check runs) is in memory at a time."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_NO_SNAPSHOT_SAVE": "1"}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), flag, json.dumps(payload, ensure_ascii=False)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the {flag} process failed (exit {proc.returncode}); its error is above")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def ingest(
    home: Path,
    src: Path,
    size: int,
    *,
    every: int,
    probe_queries: Sequence[str],
    probes: bool,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Ingest up to each checkpoint (10%, 25%, 50%, 100%) in its own process, then, with that
    process gone, measure disk and (``probes``) a fresh worker's memory at that size; with
    ``stop_at``, no checkpoint beyond it."""
    progress_file = home.parent / f"{home.name}.ingest.json"  # finished segments, for --resume
    done: dict[str, Any] = json.loads(progress_file.read_text(encoding="utf-8")) if progress_file.exists() else {}
    segments: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    for mark in sorted({max(1, round(f * size)) for f in CHECKPOINTS}):
        if stop_at is not None and mark > stop_at:
            break
        if str(mark) in done and (not probes or "worker" in done[str(mark)]["entry"]):
            segments.append(done[str(mark)]["segment"])
            samples.append(done[str(mark)]["entry"])
            continue
        seg = run_phase("--ingest-segment", {"home": str(home), "src": str(src), "upto": mark, "every": every})
        segments.append(seg)
        entry: dict[str, Any] = {"products": seg["to"], "ingest_rss_mb": seg["ingest_rss_mb"], **disk_sizes(home)}
        if probes:
            drop_snapshot(home)
            entry["worker"] = fresh_worker(home, probe_queries, save_snapshot=False)
        samples.append(entry)
        done[str(mark)] = {"segment": seg, "entry": entry}
        progress_file.write_text(json.dumps(done), encoding="utf-8")
        print(json.dumps(entry), flush=True)
    added = segments[-1]["to"] - segments[0]["from"]
    seconds = sum(s["seconds"] for s in segments)
    return {
        "resumed_from": segments[0]["from"],
        "products": added,
        "seconds": round(seconds, 1),
        "products_per_s": round(added / seconds, 1) if seconds else None,
        "rejected": sum(s["rejected"] for s in segments),
        "timeline": [t for s in segments for t in s["timeline"]],
        "checkpoints": samples,
    }


def search_phase(home: Path, queries: Sequence[str], warm: Sequence[str], seed: int, other: bool) -> dict[str, Any]:
    """In a process of its own (``--search-phase``): the timed searches, upsert->searchable in
    this process and (``other``) from a second process."""
    from assistant.stack import build_stack

    settings = Settings.from_env(home=str(home))
    out: dict[str, Any] = {}
    with build_stack(settings, rank=False) as stack:
        catalog, retriever = stack.catalog, stack.retriever
        out["products"] = len(catalog)
        categories = sorted({p.category_levels[0] for p in catalog.products() if p.category_levels})
        rng = random.Random(seed)
        filters = [make_filters(rng, categories) for _ in queries]
        for q in warm:  # jieba, the Chroma graph, the query path: not the timed queries
            retriever.search(q, top_k=10)
        out["search"] = timed_searches(retriever, queries, filters)
        out["search_process_rss_mb"] = round(rss_mb(), 1)
        out["fresh_same_process"] = freshness_same_process(catalog, retriever)
        if other:
            out["fresh_other_process"] = freshness_other_process(settings, retriever)
    return out


def timed_searches(retriever: Any, queries: Sequence[str], filters: Sequence[SearchFilters]) -> dict[str, Any]:
    lat: list[tuple[float, bool]] = []
    for q, f in zip(queries, filters, strict=True):
        t = time.perf_counter()
        retriever.search(q, f, top_k=10)
        lat.append(((time.perf_counter() - t) * 1000, f.is_empty()))

    def stats(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"queries": 0}
        return {
            "queries": len(values),
            "p50_ms": round(pct(values, 50), 2),
            "p90_ms": round(pct(values, 90), 2),
            "p99_ms": round(pct(values, 99), 2),
            "mean_ms": round(statistics.fmean(values), 2),
        }

    return {
        "all": stats([v for v, _ in lat]),
        "unfiltered": stats([v for v, plain in lat if plain]),
        "filtered": stats([v for v, plain in lat if not plain]),
    }


def fits(checkpoints: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key in (("ingest_process", lambda c: c["ingest_rss_mb"]), ("worker", lambda c: c["worker"]["rss_mb"])):
        pts = [(c["products"], key(c)) for c in checkpoints if name != "worker" or "worker" in c]
        try:
            fit = fit_memory(pts)
        except ValueError:
            continue
        out[name] = {"a_mb": round(fit.a, 1), "b_kb_per_product": round(fit.b * 1024, 3), "r2": round(fit.r2, 4)}
        out[name]["formula"] = fit.formula()
        out[name]["at_1m_mb"] = round(fit.at(1_000_000), 0)
    return out


def markdown(r: dict[str, Any]) -> str:
    s = r["search"]
    ing = r.get("ingest") or {}
    cold = r.get("cold_start", {})
    worker = r.get("memory", {}).get("worker", {})
    rows = [
        ("products", f"{r['products']:,}"),
        ("ingest", f"{ing.get('products_per_s', 'reused')} products/s" if ing else "reused"),
        ("search p50 / p99, unfiltered", f"{s['unfiltered'].get('p50_ms')} / {s['unfiltered'].get('p99_ms')} ms"),
        ("search p50 / p99, filtered", f"{s['filtered'].get('p50_ms')} / {s['filtered'].get('p99_ms')} ms"),
        ("upsert->searchable p99, same process", f"{r['fresh_same_process']['p99_ms']} ms"),
        (
            "upsert->searchable p99, other process",
            f"{r['fresh_other_process']['p99_ms']} ms" if "p99_ms" in r["fresh_other_process"] else "skipped",
        ),
        ("memory per worker (fit)", worker.get("formula", "n/a")),
    ]
    for name, c in cold.items():
        rows.append(
            (f"cold start, {name.replace('_', ' ')}", f"{c['spawn_to_first_answer_s']} s, RSS {c['rss_mb']} MB")
        )
    rows.append(("on disk", ", ".join(f"{k} {v}" for k, v in r["disk"].items())))
    lines = [f"{r['label']}: {r['machine']['cores']} cores, {r['date']}", "", "| measure | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines) + "\n"


def phase_main(flag: str, payload: dict[str, Any]) -> int:
    """The entry of a phase process (see ``run_phase``): its JSON is the last line on stdout."""
    if os.environ.get("BENCH_NO_SNAPSHOT_SAVE"):
        import retrieval.catalog as catalog_module

        catalog_module.SNAPSHOT_MIN_CHANGES = 1 << 62  # the cold-start measurement builds the snapshot
    if flag == "--ingest-segment":
        out = ingest_segment(Path(payload["home"]), Path(payload["src"]), payload["upto"], payload["every"])
    else:
        out = search_phase(
            Path(payload["home"]), payload["queries"], payload["warm"], payload["seed"], payload["other"]
        )
    print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0


def targets(results: dict[str, Any]) -> dict[str, bool]:
    """The issue's targets at this size: search p99 <= 60 ms with and without filters, and
    upsert->searchable <= 1 s in this process and (when measured) from another."""
    s = results["search"]
    return {
        "search_p99_le_60ms": max(s["unfiltered"].get("p99_ms", 0), s["filtered"].get("p99_ms", 0)) <= 60,
        "upsert_to_searchable_le_1s": max(
            results["fresh_same_process"]["max_ms"], results["fresh_other_process"].get("max_ms", 0)
        )
        <= 1000,
    }


def search_again(args: argparse.Namespace) -> int:
    """``--search-again``: the search phase alone, on the home and with the queries of the run whose
    results it updates (ingest, memory and cold start stay as that run measured them)."""
    path: Path = args.search_again
    results = json.loads(path.read_text(encoding="utf-8"))
    home = args.work / f"home-{results['size']}"
    if not home.exists():
        print(f"refusing: {home} (the home that run built) does not exist", file=sys.stderr)
        return 2
    sources = load_sources(queries=args.queries, seed=results.get("seed", args.seed))
    worker_mb = results["ingest"]["checkpoints"][-1].get("worker", {}).get("rss_mb", 0.0)
    other = args.force or mem_available_mb() > worker_mb + 2048
    keys = ("search", "search_process_rss_mb", "fresh_same_process", "fresh_other_process", "targets")
    before = {k: results[k] for k in keys if k in results}
    phase = run_phase(
        "--search-phase",
        {
            "home": str(home),
            "queries": sources.bench_queries,
            "warm": sources.warm_queries,
            "seed": results.get("seed", args.seed),
            "other": other,
        },
    )
    results.update(phase)
    if not other:
        results["fresh_other_process"] = {"skipped": "a worker and a writer do not fit in the memory available"}
    results["targets"] = targets(results)
    results.setdefault("search_measured_again", []).append(
        {"at": datetime.datetime.now().isoformat(timespec="minutes"), "machine": machine(), "before": before}
    )
    path.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    table = markdown(results)
    path.with_suffix(".md").write_text(table, encoding="utf-8")
    print(json.dumps(phase, indent=1), flush=True)
    print(f"\nupdated {path} and .md\n\n{table}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--ingest-segment", "--search-phase"):
        return phase_main(argv[0], json.loads(argv[1]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path.home() / ".shopassist-bench-million")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--resume", action="store_true", help="reuse the catalog file and home a previous run built")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--every", type=int, default=50_000, help="report the ingest rate every N products")
    ap.add_argument("--no-worker-probes", action="store_true", help="skip the fresh-worker memory probes")
    ap.add_argument("--force", action="store_true", help="run even when the estimate says memory or disk is short")
    ap.add_argument("--label", default="quiet machine", help="recorded with the results (e.g. 'smoke run, busy box')")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument(
        "--stop-at",
        type=int,
        default=None,
        help="ingest no checkpoint beyond this many products, then measure everything at the size reached "
        "(a run cut short: with --resume it picks up what an interrupted run finished)",
    )
    ap.add_argument(
        "--search-again",
        type=Path,
        default=None,
        metavar="RESULTS.json",
        help="on the home a finished run built: measure search and upsert->searchable again (after a "
        "change to the search code) and write them into that run's results, keeping the figures "
        "they replace under 'before'",
    )
    args = ap.parse_args(argv)
    if args.size < 1000:
        raise SystemExit("--size must be at least 1000")
    if args.search_again is not None:
        return search_again(args)
    try:
        est = guard(args.size, args.work, args.force)
    except UsageError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 2
    src = args.work / f"catalog-{args.size}.jsonl"
    home = args.work / f"home-{args.size}"
    if not args.resume and (src.exists() or home.exists()):
        print(
            f"refusing to start: {src} or {home} exists from an earlier run; pass --resume to reuse it, or remove it",
            file=sys.stderr,
        )
        return 2
    sources = load_sources(queries=args.queries, seed=args.seed)
    results: dict[str, Any] = {
        "label": args.label,
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "size": args.size,
        "seed": args.seed,
        "estimate": {k: round(v, 1) for k, v in est.items()},
        "sources": {**sources.counts, "bases": len(sources.bases), "passes": -(-args.size // len(sources.bases))},
    }
    meta_path = src.with_suffix(".meta.json")
    want = {"size": args.size, "seed": args.seed, "generator": GENERATOR_VERSION, "bases": len(sources.bases)}
    if src.exists() and meta_path.exists() and json.loads(meta_path.read_text(encoding="utf-8")) == want:
        results["generate"] = "reused"
    else:
        results["generate"] = write_catalog(src, args.size, sources, args.seed)
    every = min(args.every, max(1000, args.size // 20))
    probe_queries = sources.warm_queries[:20]
    results["ingest"] = ingest(
        home,
        src,
        args.size,
        every=every,
        probe_queries=probe_queries,
        probes=not args.no_worker_probes,
        stop_at=args.stop_at,
    )
    if args.stop_at is not None:
        results["stopped_at"] = args.stop_at
    results["memory"] = fits(results["ingest"]["checkpoints"])
    print(json.dumps(results["memory"], indent=1), flush=True)
    worker_mb = results["ingest"]["checkpoints"][-1].get("worker", {}).get("rss_mb", est["worker_mb"])
    # the other-process check holds one full catalog (the searcher): its writer never reads, so it
    # never builds a mirror
    other = args.force or mem_available_mb() > worker_mb + 2048
    phase = run_phase(
        "--search-phase",
        {
            "home": str(home),
            "queries": sources.bench_queries,
            "warm": sources.warm_queries,
            "seed": args.seed,
            "other": other,
        },
    )
    results.update(phase)
    if not other:
        results["fresh_other_process"] = {
            "skipped": f"a worker of ~{worker_mb / 1024:.1f} GB and a writer do not fit in the "
            f"{mem_available_mb() / 1024:.1f} GB available (--force runs it anyway)"
        }
    print(json.dumps(phase, indent=1), flush=True)
    # cold starts, each alone: without a snapshot (a pure build), the first worker (builds the
    # mirror and saves the snapshot), then with the snapshot
    drop_snapshot(home)
    results["cold_start"] = {"no_snapshot": fresh_worker(home, probe_queries, save_snapshot=False)}
    results["cold_start"]["first_worker_writes_snapshot"] = fresh_worker(home, probe_queries)
    results["cold_start"]["with_snapshot"] = fresh_worker(home, probe_queries)
    print(json.dumps(results["cold_start"], indent=1), flush=True)
    results["disk"] = {**disk_sizes(home), "catalog_jsonl_mb": round(disk_mb(src), 1)}
    results["targets"] = targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"million-{results['date']}" + ("" if args.size == 1_000_000 else f"-{args.size}")
    if args.stop_at is not None:
        stem += f"-stopped-at-{results.get('products', args.stop_at)}"
    (args.out / f"{stem}.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    table = markdown(results)
    (args.out / f"{stem}.md").write_text(table, encoding="utf-8")
    print(f"\nwrote {args.out / stem}.json and .md\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

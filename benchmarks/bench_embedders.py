"""Embedder cost: query embedding latency and document throughput, USE (default) vs EmbeddingGemma.

    .venv/bin/python benchmarks/bench_embedders.py [--queries 300] [--docs 256] [--threads 2]

Queries are real Taobao queries from the query log (each new: the query cache is cleared), the
documents real Multi-CPR pool titles and CrowdFlower title + description texts, embedded as the
catalog would. EmbeddingGemma is measured only when installed (`shopassist embedder install`).
Results go to benchmarks/results/embedders-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

from benchmarks.common import machine, pct  # noqa: E402
from retrieval.embedders import GGUFEmbedder, USEEmbedder  # noqa: E402
from retrieval.gemma import default_gguf_path  # noqa: E402
from shopassist.models import Product  # noqa: E402


def texts(n_queries: int, n_docs: int) -> tuple[list[str], list[str], list[str]]:
    with open(SHARED / "querylogs" / "multicpr_ecom_train_queries.tsv", encoding="utf-8") as handle:
        queries = [line.rstrip("\n").split("\t", 1)[1] for line in handle if "\t" in line][-n_queries:]
    with open(SHARED / "eval" / "multicpr_ecom_pool" / "corpus.jsonl", encoding="utf-8") as handle:
        titles = [json.loads(line)["title"] for _, line in zip(range(n_docs), handle, strict=False)]
    long_docs = []
    with open(SHARED / "eval" / "crowdflower_relevance" / "judgements.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            product = Product(id="x", title=row["product_title"], description=row.get("product_description") or "")
            if (doc := product.document_text()) is not None:
                long_docs.append(doc)
            if len(long_docs) >= n_docs // 4:
                break
    return queries, titles, long_docs


def measure(embedder: object, queries: list[str], titles: list[str], long_docs: list[str]) -> dict:
    embed_query = embedder.embed_query  # type: ignore[attr-defined]
    embed_documents = embedder.embed_documents  # type: ignore[attr-defined]
    embed_query("warm up")
    latencies = []
    for q in queries:
        t = time.perf_counter()
        embed_query(q + " ")  # a text no cache holds
        latencies.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    embed_documents(titles)
    titles_s = time.perf_counter() - t
    t = time.perf_counter()
    embed_documents(long_docs)
    long_s = time.perf_counter() - t
    return {
        "query_ms": {"p50": round(pct(latencies, 50), 1), "p99": round(pct(latencies, 99), 1)},
        "titles_per_s": round(len(titles) / titles_s, 1),
        "title_plus_description_per_s": round(len(long_docs) / long_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--docs", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    queries, titles, long_docs = texts(args.queries, args.docs)
    result: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "threads": args.threads}
    result["use"] = measure(USEEmbedder(threads=args.threads), queries, titles, long_docs)
    print("use", result["use"], flush=True)
    gguf = default_gguf_path()
    if gguf.is_file():
        result["gemma"] = measure(
            GGUFEmbedder(gguf, threads=args.threads, precomputed=False), queries, titles, long_docs
        )
        print("gemma", result["gemma"], flush=True)
    else:
        result["gemma"] = f"not installed at {gguf}"
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"embedders-{result['date']}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""CrowdFlower English product-search relevance: rank each query's judged products.

Every distinct judged product (title + description) is loaded into a cached eval home, and each
query's candidates are ordered by ``HybridRetriever.rank``: the same features and weights the
product's search uses. Baselines from the same run: BM25 (bm25s, Lucene k1=1.5 b=0.75, plain
lower-case word tokens, IDF over the judged collection) and a seeded random order.
Metric: nDCG@10 with gain 2^(rel-1)-1 (ir-measures uses the qrel value as a linear gain, so the
qrels carry 0/1/3/7 for median relevance 1/2/3/4).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from pathlib import Path
from typing import Any

from evals.common import Qrels, Run, evaluate, file_digest
from evals.retrieval import build_eval_stack
from shopassist.config import Settings
from shopassist.errors import UsageError

METRICS = ["nDCG@10"]
_WORD = re.compile(r"[a-z0-9]+")


def gain(median_relevance: int) -> int:
    return 2 ** (int(median_relevance) - 1) - 1


def load_crowdflower(path: Path) -> tuple[list[dict[str, Any]], dict[str, str], Qrels]:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist (expected crowdflower_relevance/judgements.jsonl).")
    products: dict[str, dict[str, Any]] = {}
    queries: dict[str, str] = {}
    qid_of: dict[str, str] = {}
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                query, title, rel = row["query"], row["product_title"], int(row["median_relevance"])
            except (KeyError, TypeError, ValueError) as exc:
                raise UsageError(f"{path}:{line_no}: not a judgement row ({exc}).") from exc
            desc = row.get("product_description") or ""
            pid = "cf-" + hashlib.sha1(f"{title}\x00{desc}".encode()).hexdigest()[:12]
            products.setdefault(
                pid, {"id": pid, "title": title, "description": desc, "currency": "USD", "language": "en"}
            )
            qid = qid_of.setdefault(query, f"q{len(qid_of) + 1}")
            queries[qid] = query
            qrels.setdefault(qid, {})[pid] = max(qrels.get(qid, {}).get(pid, 0), gain(rel))
    return list(products.values()), queries, qrels


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def bm25_run(products: list[dict[str, Any]], queries: dict[str, str], qrels: Qrels) -> Run:
    import bm25s

    ids = [p["id"] for p in products]
    index = {pid: i for i, pid in enumerate(ids)}
    model = bm25s.BM25()
    model.index([_words(p["title"]) or ["_"] for p in products], show_progress=False)
    run: Run = {}
    for qid, text in queries.items():
        scores = model.get_scores(_words(text))
        run[qid] = {pid: float(scores[index[pid]]) for pid in qrels[qid]}
    return run


def random_run(qrels: Qrels, seed: int = 0) -> Run:
    rng = random.Random(seed)
    return {qid: {pid: rng.random() for pid in docs} for qid, docs in qrels.items()}


def run_crowdflower(path: Path, *, settings: Settings, progress: bool = False, config: Any = None) -> dict[str, Any]:
    from tqdm import tqdm

    products, queries, qrels = load_crowdflower(path)
    t0 = time.perf_counter()
    stack = build_eval_stack(settings, products, "crowdflower", file_digest(Path(path)), progress, config)
    t1 = time.perf_counter()
    retriever = stack.retriever
    run: Run = {}
    for qid, text in tqdm(queries.items(), desc="rank", unit="query", disable=not progress):
        ranked = retriever.rank(text, list(qrels[qid]))
        run[qid] = {c.product.id: float(len(ranked) - i) for i, c in enumerate(ranked)}
    t2 = time.perf_counter()
    return {
        "dataset": "crowdflower",
        "data": str(path),
        "queries": len(queries),
        "judged_pairs": sum(len(v) for v in qrels.values()),
        "products": len(products),
        "systems": {
            "shopassist": evaluate(qrels, run, METRICS),
            "bm25": evaluate(qrels, bm25_run(products, queries, qrels), METRICS),
            "random": evaluate(qrels, random_run(qrels), METRICS),
        },
        "seconds": {"index": round(t1 - t0, 2), "rank": round(t2 - t1, 2)},
    }

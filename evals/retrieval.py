"""Multi-CPR e-commerce retrieval (pooled): the product's hybrid search vs a plain BM25.

The corpus is loaded as products into a cached eval home (embedded once per corpus and
embedder), every query goes through the same ``HybridRetriever.search`` the product uses, and
the baseline is bm25s over plain jieba tokens, built in the same run.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals.common import Qrels, Run, eval_home, evaluate, file_digest
from shopassist.config import Settings
from shopassist.errors import UsageError

if TYPE_CHECKING:
    from assistant.stack import Stack

METRICS = ["MRR@10", "Recall@10", "Recall@100"]
_PUNCT = re.compile(r"^[\W_]+$")


def load_multicpr(data_dir: Path) -> tuple[list[dict[str, str]], dict[str, str], Qrels]:
    data_dir = Path(data_dir)
    missing = [n for n in ("corpus.jsonl", "queries.tsv", "qrels.tsv") if not (data_dir / n).exists()]
    if missing:
        raise UsageError(f"{data_dir} lacks {', '.join(missing)} (expected the multicpr_ecom_pool layout).")
    corpus = []
    with open(data_dir / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                corpus.append({"id": str(row["id"]), "title": row["title"]})
    queries: dict[str, str] = {}
    with open(data_dir / "queries.tsv", encoding="utf-8") as handle:
        for line in handle:
            if "\t" in line:
                qid, text = line.rstrip("\n").split("\t", 1)
                queries[qid] = text
    qrels: Qrels = {}
    with open(data_dir / "qrels.tsv", encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 4:
                qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    queries = {q: t for q, t in queries.items() if q in qrels}
    return corpus, queries, qrels


def jieba_plain(text: str) -> list[str]:
    import jieba

    return [t for t in jieba.lcut(text.lower()) if t.strip() and not _PUNCT.match(t)]


def bm25_baseline(docs: list[dict[str, str]], queries: dict[str, str], k: int = 100) -> Run:
    """bm25s (Lucene variant, k1=1.5, b=0.75 defaults) over plain jieba tokens: the reference BM25."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index([jieba_plain(d["title"]) for d in docs], show_progress=False)
    ids = [d["id"] for d in docs]
    run: Run = {}
    for qid, text in queries.items():
        tokens = jieba_plain(text)
        if not tokens:
            run[qid] = {}
            continue
        # bm25s wants known tokens only; unknown ones score nothing anyway
        vocab = retriever.vocab_dict
        tokens = [t for t in tokens if t in vocab] or tokens[:1]
        try:
            res, scores = retriever.retrieve([tokens], k=min(k, len(ids)), show_progress=False, n_threads=1)
        except (KeyError, ValueError):
            run[qid] = {}
            continue
        run[qid] = {ids[int(i)]: float(s) for i, s in zip(res[0], scores[0], strict=True) if s > 0}
    return run


def build_eval_stack(
    settings: Settings, docs: list[dict[str, Any]], name: str, digest: str, progress: bool, config: Any = None
) -> Stack:
    """Load ``docs`` (dicts in the catalog schema) into a cached eval home; returns its stack
    (catalog, and the retriever with ``config``)."""
    from tqdm import tqdm

    from assistant.stack import build_stack
    from shopassist.models import Product

    stack = build_stack(eval_home(settings, name, digest), retrieval=config)
    catalog = stack.catalog
    if len(catalog) != len(docs):
        bar = tqdm(total=len(docs), desc=f"index {name}", unit="doc", disable=not progress)
        for i in range(0, len(docs), 512):
            chunk = [Product.model_validate(d) for d in docs[i : i + 512]]
            catalog.upsert(chunk)
            bar.update(len(chunk))
        bar.close()
    return stack


def run_multicpr(
    data_dir: Path,
    *,
    settings: Settings,
    limit: int | None = None,
    progress: bool = False,
    config: Any = None,
) -> dict[str, Any]:
    from tqdm import tqdm

    data_dir = Path(data_dir)
    corpus, queries, qrels = load_multicpr(data_dir)
    if limit:
        keep = list(queries)[:limit]
        queries = {q: queries[q] for q in keep}
        qrels = {q: qrels[q] for q in keep}
    digest = file_digest(data_dir / "corpus.jsonl")
    t0 = time.perf_counter()
    stack = build_eval_stack(settings, corpus, "multicpr", digest, progress, config)
    t1 = time.perf_counter()
    retriever = stack.retriever
    run: Run = {}
    latencies = []
    for qid, text in tqdm(queries.items(), desc="search", unit="query", disable=not progress):
        s = time.perf_counter()
        results = retriever.search(text, top_k=100)
        latencies.append((time.perf_counter() - s) * 1000)
        run[qid] = {c.product.id: float(len(results) - i) for i, c in enumerate(results)}
    t2 = time.perf_counter()
    baseline = bm25_baseline(corpus, queries)
    t3 = time.perf_counter()
    latencies.sort()
    return {
        "dataset": "multicpr-pool",
        "data": str(data_dir),
        "corpus": len(corpus),
        "queries": len(queries),
        "systems": {
            "shopassist": evaluate(qrels, run, METRICS),
            "bm25": evaluate(qrels, baseline, METRICS),
        },
        "config": _config_dict(retriever.config),
        "seconds": {
            "index": round(t1 - t0, 2),
            "search": round(t2 - t1, 2),
            "baseline": round(t3 - t2, 2),
        },
        "search_ms_p50": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "runs": {"shopassist": run, "bm25": baseline},
    }


def _config_dict(config: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(config) and not isinstance(config, type):
        return asdict(config)
    return dict(vars(config))

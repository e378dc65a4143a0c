"""Multi-CPR e-commerce retrieval (pooled): the product's hybrid search vs a plain BM25.

The corpus is loaded as products into a cached eval home (embedded once per corpus and
embedder), every query goes through the same ``HybridRetriever.search`` the product uses, and
the baseline is bm25s over plain jieba tokens, built in the same run.

The in-sample figure flatters the product: its Chinese fusion weights were chosen on these
queries. So the run also reports an out-of-fold figure (``crossval``): the queries are split into
k folds grouped by query (seeded, evals/crossval.py); on each fold's training queries the Chinese
fusion weights are chosen from a small grid (``weight_grid``) by MRR@10, and the held-out fold is
scored with them. Every candidate's features are computed once per query
(``HybridRetriever.candidate_features`` over the union of both legs' top 100, the set search fuses),
and every weight setting is scored from that matrix. Optionally a learned ranker
(retrieval/ltr.py) trained per fold on the training queries' pool judgements. Figures come with
bootstrap 95% intervals over queries. Not refitted per fold: the tokenizer and BM25 parameters
(the index is built once), so the out-of-fold figure still carries their in-sample choice.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evals.common import Qrels, Run, eval_home, evaluate, file_digest, per_query
from evals.crossval import bootstrap_ci, paired_bootstrap_ci, splits
from shopassist.config import Settings
from shopassist.errors import UsageError

if TYPE_CHECKING:
    from assistant.stack import Stack
    from retrieval.search import FusionWeights, HybridRetriever

METRICS = ["MRR@10", "Recall@10", "Recall@100"]
FOLDS = 5
SEED = 0
# the Chinese fusion grid: dense weight (bm25 = 1 - dense), and doc / coverage / pairs each off or on
DENSE_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.85, 1.0)  # up to dense alone: a stronger embedder may want it
EXTRA_ON = 0.2
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
    folds: int = FOLDS,
    learned: bool = True,
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
    crossval_block: dict[str, Any] | None = None
    if len(queries) >= 2 * folds:
        data = featurise_pool(retriever, queries, qrels, progress)
        crossval_block = crossval(
            data,
            folds=folds,
            shipped=per_query(qrels, run, "MRR@10"),
            bm25=per_query(qrels, baseline, "MRR@10"),
            shipped_weights=retriever.config.zh_weights,
            other_weights=retriever.config.en_weights,
            learned=learned,
        )
        crossval_block.pop("per_query")
    t4 = time.perf_counter()
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
            "crossval": round(t4 - t3, 2),
        },
        "search_ms_p50": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "crossval": crossval_block,
        "runs": {"shopassist": run, "bm25": baseline},
    }


def _config_dict(config: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(config) and not isinstance(config, type):
        return asdict(config)
    return dict(vars(config))


# -- out-of-fold: Chinese fusion weights chosen per fold, and a learned ranker ---------------------
@dataclass
class PoolQuery:
    """One query's candidates (the union of both legs' top lists, in search's order) and features."""

    text: str
    ids: list[str]
    x: np.ndarray  # retrieval.ltr.FEATURE_NAMES columns
    grades: np.ndarray  # the qrel grade of each candidate (0: not relevant)
    tiebreak: np.ndarray  # each candidate's place under search's tie order (cosine, lexical rank, id)
    zh: bool

    @property
    def z(self) -> np.ndarray:
        """The five fusion features z-scored over the candidates (what the fusion weighs)."""
        from retrieval.ltr import FEATURE_NAMES, FUSION_FEATURES

        return self.x[:, [FEATURE_NAMES.index(f"z_{f}") for f in FUSION_FEATURES]]


def weight_grid() -> list[FusionWeights]:
    """The Chinese fusion settings tried per fold: dense in ``DENSE_GRID`` with bm25 = 1 - dense,
    and each of doc, coverage, pairs off or at ``EXTRA_ON`` (64 settings)."""
    from retrieval.search import FusionWeights

    return [
        FusionWeights(bm25=round(1 - d, 4), dense=d, doc=doc, coverage=cov, pairs=pairs)
        for doc, cov, pairs in itertools.product((0.0, EXTRA_ON), repeat=3)
        for d in DENSE_GRID
    ]


def featurise_pool(
    retriever: HybridRetriever, queries: dict[str, str], qrels: Qrels, progress: bool = False
) -> dict[str, PoolQuery]:
    """Per query: the candidates search would fuse (both legs' top lists, unfiltered) and their
    features, computed once (``HybridRetriever.candidate_features``)."""
    from tqdm import tqdm

    from retrieval.ltr import FEATURE_NAMES
    from shopassist.models import SearchFilters, detect_language

    cfg = retriever.config
    dense_col = FEATURE_NAMES.index("dense")
    out: dict[str, PoolQuery] = {}
    for qid, text in tqdm(queries.items(), desc="features", unit="query", disable=not progress):
        text = (text or "").strip()
        none = SearchFilters()
        lexical = retriever.lexical(text, none, cfg.lexical_depth) if cfg.use_lexical and text else []
        dense = retriever.dense(text, none, cfg.dense_depth) if cfg.use_dense and text else []
        lexical_rank = {pid: r for r, (pid, _) in enumerate(lexical, 1)}
        ids, x = retriever.candidate_features(text, [*lexical_rank, *(pid for pid, _ in dense)])
        cos = x[:, dense_col] if len(ids) else np.zeros(0)
        order = sorted(range(len(ids)), key=lambda i: (-cos[i], lexical_rank.get(ids[i], 10**9), ids[i]))
        tiebreak = np.empty(len(ids), dtype=np.int64)
        tiebreak[order] = np.arange(len(ids))
        grades = np.array([qrels.get(qid, {}).get(pid, 0) for pid in ids], dtype=np.int64)
        out[qid] = PoolQuery(text, ids, x, grades, tiebreak, detect_language(text) == "zh")
    return out


def reciprocal_ranks(q: PoolQuery, scores: np.ndarray, k: int = 10) -> np.ndarray:
    """RR@k of one query under each column of ``scores`` (candidates x settings): 1 / the rank of
    the first relevant candidate when it is in the top ``k`` (ties as search breaks them), else 0."""
    scores = np.asarray(scores, dtype=np.float64).reshape(len(q.ids), -1)
    rr = np.zeros(scores.shape[1])
    relevant = np.flatnonzero(q.grades > 0)
    if relevant.size == 0:
        return rr
    best = np.full(scores.shape[1], np.iinfo(np.int64).max)
    for j in relevant:
        ahead = (scores > scores[j]).sum(axis=0) + ((scores == scores[j]) & (q.tiebreak < q.tiebreak[j])[:, None]).sum(
            axis=0
        )
        best = np.minimum(best, ahead)
    return np.where(best < k, 1.0 / (best + 1.0), 0.0)


def _weight_matrix(grid: Sequence[FusionWeights]) -> np.ndarray:
    from retrieval.ltr import FUSION_FEATURES

    return np.array([[getattr(w, f) for w in grid] for f in FUSION_FEATURES], dtype=np.float64)


def _settings_rr(data: dict[str, PoolQuery], grid: Sequence[FusionWeights], other: FusionWeights) -> np.ndarray:
    """RR@10 per query (rows, ``data`` order) and grid setting (columns); a query not in Chinese
    keeps the ``other`` weights in every column (the grid is the Chinese weights)."""
    w = _weight_matrix(grid)
    fixed = _weight_matrix([other])
    rows = []
    for q in data.values():
        if len(q.ids) == 0:
            rows.append(np.zeros(len(grid)))
            continue
        scores = q.z @ w if q.zh else np.repeat(q.z @ fixed, len(grid), axis=1)
        rows.append(reciprocal_ranks(q, scores))
    return np.vstack(rows) if rows else np.zeros((0, len(grid)))


def choose_weights(rr: np.ndarray) -> int:
    """The grid setting with the best mean RR@10 over the given queries (rows); ties: the first."""
    return int(np.argmax(rr.mean(axis=0)))


def _interval(values: Sequence[float], seed: int) -> dict[str, Any]:
    mean, lo, hi = bootstrap_ci(list(values), draws=1000, seed=seed)
    return {"MRR@10": mean, "ci95": [round(lo, 4), round(hi, 4)]}


def _paired(a: Sequence[float], b: Sequence[float], seed: int) -> dict[str, Any]:
    mean, lo, hi = paired_bootstrap_ci(list(a), list(b), seed=seed)
    return {"mean": mean, "ci95": [round(lo, 4), round(hi, 4)]}


def _label(w: FusionWeights) -> str:
    extras = [name for name in ("doc", "coverage", "pairs") if getattr(w, name)]
    return f"{w.bm25:g}/{w.dense:g}" + "".join(f"+{e}" for e in extras)


def crossval(
    data: dict[str, PoolQuery],
    *,
    folds: int = FOLDS,
    seed: int = SEED,
    grid: Sequence[FusionWeights] | None = None,
    shipped: dict[str, float] | None = None,
    bm25: dict[str, float] | None = None,
    shipped_weights: FusionWeights | None = None,
    other_weights: FusionWeights | None = None,
    learned: bool = True,
) -> dict[str, Any]:
    """Out-of-fold MRR@10 of the fusion with Chinese weights chosen on the other folds (and of a
    learned ranker trained on them, with ``learned``), beside the in-sample figures, with 95%
    intervals. ``shipped``/``bm25``: per-query MRR@10 of the product's search and of the baseline."""
    from retrieval.search import EN_WEIGHTS, ZH_WEIGHTS

    grid = list(grid or weight_grid())
    shipped_weights = shipped_weights or ZH_WEIGHTS
    qids = list(data)
    rr = _settings_rr(data, grid, other_weights or EN_WEIGHTS)
    row = {q: i for i, q in enumerate(qids)}
    fitted: dict[str, float] = {}
    chosen: list[dict[str, Any]] = []
    learned_rr: dict[str, float] = {}
    for train_ids, test_ids in splits(qids, folds, seed):
        train_rows = [row[q] for q in train_ids]
        best = choose_weights(rr[train_rows])
        chosen.append(
            {
                **grid[best].as_dict(),
                "label": _label(grid[best]),
                "train_MRR@10": round(float(rr[train_rows, best].mean()), 4),
                "test_queries": len(test_ids),
            }
        )
        for q in test_ids:
            fitted[q] = float(rr[row[q], best])
        if learned:
            learned_rr.update(_learned_fold(data, train_ids, test_ids, seed))
    all_best = choose_weights(rr)
    shipped_rr = _settings_rr(data, [shipped_weights], other_weights or EN_WEIGHTS)[:, 0]
    out: dict[str, Any] = {
        "folds": folds,
        "seed": seed,
        "queries": len(qids),
        "grid": len(grid),
        "fusion_fitted_oof": _interval([fitted[q] for q in qids], seed),
        "chosen_weights": chosen,
        "chosen": [c["label"] for c in chosen],
        # the grid's best on every query, scored on them: how much choosing on the test set flatters
        "grid_best_in_sample": {**_interval(rr[:, all_best].tolist(), seed), "weights": _label(grid[all_best])},
        # the shipped weights over the same candidate features (checks the re-scoring matches search)
        "shipped_weights_rescored": _interval(shipped_rr.tolist(), seed),
    }
    if shipped is not None:
        out["shipped_fusion"] = _interval([shipped[q] for q in qids], seed)
        out["oof_minus_in_sample"] = _paired([fitted[q] for q in qids], [shipped[q] for q in qids], seed)
    if bm25 is not None:
        out["bm25"] = _interval([bm25[q] for q in qids], seed)
    if learned:
        out["learned_oof"] = _interval([learned_rr[q] for q in qids], seed)
        out["learned_minus_fusion_fitted"] = _paired([learned_rr[q] for q in qids], [fitted[q] for q in qids], seed)
    out["per_query"] = {"fusion_fitted": fitted, **({"learned": learned_rr} if learned else {})}
    return out


def _learned_fold(
    data: dict[str, PoolQuery], train_ids: Sequence[str], test_ids: Sequence[str], seed: int
) -> dict[str, float]:
    """RR@10 of the held-out queries under a learned ranker (retrieval/ltr.py, default settings)
    trained on the training queries' candidates, labelled by the pool's judgements."""
    from retrieval.ltr import train as train_ltr

    groups = [(data[q].x, data[q].grades) for q in train_ids if len(data[q].ids)]
    model = train_ltr(groups, languages=("zh",), seed=seed)
    out: dict[str, float] = {}
    for q in test_ids:
        d = data[q]
        out[q] = float(reciprocal_ranks(d, model.score(d.x))[0]) if len(d.ids) else 0.0
    return out

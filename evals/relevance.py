"""CrowdFlower English product-search relevance: rank each query's judged products.

Every distinct judged product (title + description) is loaded into a cached eval home, and each
query's candidates are ordered by ``HybridRetriever.rank``: the same features and weights the
product's search uses. Baselines from the same run: BM25 (bm25s, Lucene k1=1.5 b=0.75, plain
lower-case word tokens, IDF over the judged collection) and a seeded random order.
Metric: nDCG@10 with gain 2^(rel-1)-1 (ir-measures uses the qrel value as a linear gain, so the
qrels carry 0/1/3/7 for median relevance 1/2/3/4).

The in-sample figure flatters the fusion (its features and weights were chosen on these queries),
so the run also reports out-of-fold figures (``crossval``): queries split into k folds (seeded,
evals/crossval.py); each fold is ranked by a learned ranker (retrieval/ltr.py) trained on the other
folds only, and by the fusion with weights fitted on the other folds only; every figure comes with
a bootstrap 95% interval over queries. ``train_ranker`` (``shopassist train ranker``) does the same
and then fits the model on every query and writes it.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evals.common import Qrels, Run, evaluate, file_digest, per_query
from evals.crossval import bootstrap_ci, ndcg_at, paired_bootstrap_ci, splits
from evals.retrieval import build_eval_stack
from shopassist.config import Settings
from shopassist.errors import UsageError

METRICS = ["nDCG@10"]
FOLDS = 5
SEED = 0
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
            try:
                row = json.loads(line)
                query, title, rel = row["query"], row["product_title"], int(row["median_relevance"])
            except (KeyError, TypeError, ValueError) as exc:
                raise UsageError(f"{path}:{line_no}: not a judgement row ({exc}).") from exc
            if not 1 <= rel <= 4 or not str(query).strip():
                raise UsageError(f"{path}:{line_no}: median_relevance must be 1-4 and the query non-empty.")
            desc = row.get("product_description") or ""
            pid = "cf-" + hashlib.sha1(f"{title}\x00{desc}".encode()).hexdigest()[:12]
            products.setdefault(
                pid, {"id": pid, "title": title, "description": desc, "currency": "USD", "language": "en"}
            )
            qid = qid_of.setdefault(query, f"q{len(qid_of) + 1}")
            queries[qid] = query
            qrels.setdefault(qid, {})[pid] = max(qrels.get(qid, {}).get(pid, 0), gain(rel))
    if not qrels:
        raise UsageError(f"{path}: no judgement rows.")
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


def run_crowdflower(
    path: Path, *, settings: Settings, progress: bool = False, config: Any = None, folds: int = FOLDS
) -> dict[str, Any]:
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
    result: dict[str, Any] = {
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
    if len(queries) >= 2 * folds:
        data = featurise(retriever, queries, qrels, progress)
        shipped = per_query(qrels, run, "nDCG@10")
        cv = crossval(data, folds=folds, shipped=shipped)
        cv.pop("per_query")
        result["crossval"] = cv
        result["seconds"]["crossval"] = round(time.perf_counter() - t2, 2)
    else:
        result["crossval"] = None
    return result


# -- out-of-fold: learned ranker and fitted fusion ------------------------------------------------
@dataclass
class QueryData:
    text: str
    ids: list[str]
    x: np.ndarray  # retrieval.ltr.FEATURE_NAMES columns
    grades: np.ndarray  # 0..3 (median relevance - 1)
    gains: np.ndarray  # 2^grade - 1


def featurise(retriever: Any, queries: dict[str, str], qrels: Qrels, progress: bool = False) -> dict[str, QueryData]:
    """Every judged candidate's learned-ranker features, per query (``HybridRetriever.candidate_features``)."""
    from tqdm import tqdm

    out: dict[str, QueryData] = {}
    for qid, text in tqdm(queries.items(), desc="features", unit="query", disable=not progress):
        ids, x = retriever.candidate_features(text, list(qrels[qid]))
        gains = np.array([qrels[qid][pid] for pid in ids], dtype=np.float64)
        grades = np.round(np.log2(gains + 1)).astype(np.int64)
        out[qid] = QueryData(text, ids, x, grades, gains)
    return out


def _fusion_columns() -> list[int]:
    from retrieval.ltr import FEATURE_NAMES, FUSION_FEATURES

    return [FEATURE_NAMES.index(f"z_{f}") for f in FUSION_FEATURES]


def _fusion_scores(q: QueryData, w: np.ndarray) -> np.ndarray:
    return np.asarray(q.x[:, _fusion_columns()] @ w, dtype=np.float64)


def fit_fusion_weights(train: list[QueryData], grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)) -> np.ndarray:
    """The fusion's five weights fitted on ``train`` (coordinate ascent over ``grid`` from equal
    weights, two passes, maximising mean nDCG@10): what tuning the fusion on these queries gives."""
    cols = _fusion_columns()
    zs = [(q.x[:, cols], q.gains) for q in train]

    def mean_ndcg(w: np.ndarray) -> float:
        return float(np.mean([ndcg_at(z @ w, g) for z, g in zs]))

    w = np.ones(len(cols))
    best = mean_ndcg(w)
    for _ in range(2):
        for j in range(len(cols)):
            for v in grid:
                cand = w.copy()
                cand[j] = v
                if not cand.any():
                    continue
                m = mean_ndcg(cand)
                if m > best + 1e-12:
                    best, w = m, cand
    return w


def _interval(values: list[float]) -> dict[str, Any]:
    mean, lo, hi = bootstrap_ci(values, draws=1000, seed=SEED)
    return {"nDCG@10": mean, "ci95": [round(lo, 4), round(hi, 4)]}


def crossval(
    data: dict[str, QueryData],
    *,
    folds: int = FOLDS,
    seed: int = SEED,
    shipped: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    rounds: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Out-of-fold nDCG@10 per query of the learned ranker and of the fusion with weights fitted
    on the other folds (and the equal-weight fusion, which fits nothing), with 95% intervals."""
    from retrieval.ltr import DEFAULT_ROUNDS
    from retrieval.ltr import train as train_ltr

    qids = list(data)
    learned: dict[str, float] = {}
    fitted: dict[str, float] = {}
    equal: dict[str, float] = {}
    weights: list[list[float]] = []
    for i, (train_ids, test_ids) in enumerate(splits(qids, folds, seed), 1):
        if log:
            log(f"fold {i}/{folds}: train {len(train_ids)} queries, test {len(test_ids)}")
        model = train_ltr(
            [(data[q].x, data[q].grades) for q in train_ids],
            params=params,
            rounds=rounds or DEFAULT_ROUNDS,
            seed=seed,
        )
        w = fit_fusion_weights([data[q] for q in train_ids])
        weights.append([float(v) for v in w])
        for q in test_ids:
            d = data[q]
            fusion = _fusion_scores(d, np.ones(len(w)))
            learned_scores = model.score(d.x)
            # ties in the model's score: the fusion decides (as nothing else would)
            order = np.lexsort((-fusion, -learned_scores))
            rank_score = np.empty(len(order))
            rank_score[order] = -np.arange(len(order))
            learned[q] = ndcg_at(rank_score, d.gains)
            fitted[q] = ndcg_at(_fusion_scores(d, w), d.gains)
            equal[q] = ndcg_at(fusion, d.gains)
    out: dict[str, Any] = {
        "folds": folds,
        "seed": seed,
        "queries": len(qids),
        "learned_oof": _interval([learned[q] for q in qids]),
        "fusion_fitted_oof": _interval([fitted[q] for q in qids]),
        "fusion_equal": _interval([equal[q] for q in qids]),
        "fitted_weights": weights,
    }
    diff = paired_bootstrap_ci([learned[q] for q in qids], [equal[q] for q in qids], seed=seed)
    out["learned_minus_fusion_equal"] = {"mean": diff[0], "ci95": [round(diff[1], 4), round(diff[2], 4)]}
    if shipped is not None:
        out["shipped_fusion"] = _interval([shipped[q] for q in qids])
    out["per_query"] = {"learned": learned, "fusion_fitted": fitted, "fusion_equal": equal}
    return out


def train_ranker(
    path: Path,
    *,
    settings: Settings,
    out: Path,
    folds: int = FOLDS,
    seed: int = SEED,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Cross-validate the learned ranker on a judgements file (CrowdFlower format), then fit it on
    every query and write it to ``out`` (LightGBM text model + ``.meta.json``)."""
    from retrieval.ltr import LearnedRanker, meta_path
    from retrieval.ltr import train as train_ltr

    products, queries, qrels = load_crowdflower(path)
    if len(queries) < folds:
        raise UsageError(f"{path}: {len(queries)} queries cannot make {folds} folds.")
    if folds < 2:
        raise UsageError("--folds must be at least 2.")
    stack = build_eval_stack(settings, products, "crowdflower", file_digest(Path(path)), progress)
    data = featurise(stack.retriever, queries, qrels, progress)
    cv = crossval(data, folds=folds, seed=seed, log=log)
    cv.pop("per_query")
    languages = sorted({detect(q.text) for q in data.values()})
    model = train_ltr(
        [(q.x, q.grades) for q in data.values()],
        languages=languages,
        seed=seed,
        meta={
            "trained_on": str(path),
            "queries": len(data),
            "judged_pairs": int(sum(len(q.ids) for q in data.values())),
            "oof_ndcg10": round(cv["learned_oof"]["nDCG@10"], 4),
            "oof_ci95": cv["learned_oof"]["ci95"],
            "fusion_fitted_oof_ndcg10": round(cv["fusion_fitted_oof"]["nDCG@10"], 4),
            "folds": folds,
            "seed": seed,
        },
    )
    model.save(out)
    loaded = LearnedRanker.load(out)
    # scoring cost: the loaded model over every query's matrix, and features + model per candidate
    n = sum(len(q.ids) for q in data.values())
    t0 = time.perf_counter()
    for q in data.values():
        loaded.score(q.x)
    score_us = (time.perf_counter() - t0) / max(n, 1) * 1e6
    t0 = time.perf_counter()
    for q in data.values():
        stack.retriever.candidate_features(q.text, q.ids)
    feature_us = (time.perf_counter() - t0) / max(n, 1) * 1e6
    return {
        "data": str(path),
        "queries": len(data),
        "judged_pairs": n,
        "languages": languages,
        "crossval": cv,
        "model": str(out),
        "model_bytes": Path(out).stat().st_size + meta_path(Path(out)).stat().st_size,
        "us_per_candidate": {"model": round(score_us, 2), "features_and_embedding": round(feature_us, 2)},
    }


def detect(text: str) -> str:
    from shopassist.models import detect_language

    return str(detect_language(text))

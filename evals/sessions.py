"""Diginetica next-click prediction: the session recommender vs its parts and baselines.

Trains on ``train_sessions.jsonl`` (the SR-GNN / GCE-GNN preprocessing), then ranks *all* items
for every prefix of ``test_prefixes.jsonl`` (or a seeded sample of them) and reports P@20 (hit
rate) and MRR@20 in percent for, all measured in the same run:

* ``fused``: the NISER-style model fused with the shared item-transition statistics;
* ``model``: the neural model alone;
* ``statistics``: ``SharedKnowledge.next_scores`` alone (ties broken by popularity);
* ``popularity``: the most clicked training items.

Hyper-parameters and the fusion weight are the defaults of ``ranking.sessrec`` (chosen on a
validation split: the last 10 % of train sessions, augmented into prefixes the same way; see
``run_validation``, ``shopassist eval sessions --validation 0.1``), never tuned on the test file. Ranks break ties by the smaller item id, so the metrics are exact.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from ranking.knowledge import KnowledgeParams
from ranking.sessrec import (
    FusionParams,
    ModelParams,
    SessionModel,
    TransitionStats,
    fuse,
    hit_and_rr,
    iter_batches,
    load_prefixes,
    load_sessions,
    metrics_from_ranks,
    params_dict,
    popularity,
    target_ranks,
)
from shopassist.errors import UsageError
from shopassist.machine import machine

K = 20
PUBLISHED = {
    "GRU4Rec": {"P@20": 29.45, "MRR@20": 8.33, "source": "Hidasi et al., ICLR 2016 (as reported by SR-GNN)"},
    "NARM": {"P@20": 49.70, "MRR@20": 16.17, "source": "Li et al., CIKM 2017 (as reported by SR-GNN)"},
    "STAMP": {"P@20": 45.64, "MRR@20": 14.32, "source": "Liu et al., KDD 2018 (as reported by SR-GNN)"},
    "SR-GNN": {"P@20": 50.73, "MRR@20": 17.59, "source": "Wu et al., AAAI 2019"},
    "GCE-GNN": {"P@20": 54.22, "MRR@20": 19.04, "source": "Wang et al., SIGIR 2020"},
}
SYSTEMS = ("fused", "model", "statistics", "popularity")


def bootstrap_interval(values: np.ndarray, seed: int, rounds: int = 1000) -> list[float]:
    """95 % percentile-bootstrap interval of the mean of ``values``, in percent."""
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.array([values[rng.integers(0, n, n)].mean() for _ in range(rounds)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [round(100.0 * float(lo), 2), round(100.0 * float(hi), 2)]


def require_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        raise UsageError('The session model needs torch: pip install -e ".[torch]" (the CPU build is enough).')


def _model_setup(threads: int, model_params: ModelParams | None, epochs: int | None, seed: int) -> ModelParams:
    """torch on ``threads`` threads, and the model's parameters with the run's epochs and seed."""
    require_torch()
    import torch

    torch.set_num_threads(threads)
    params = model_params or ModelParams()
    if epochs is not None:
        params = replace(params, epochs=epochs)
    return replace(params, seed=seed)


def run_sessions(
    data_dir: Path,
    sample: int | None = None,
    seed: int = 0,
    epochs: int | None = None,
    model_params: ModelParams | None = None,
    fusion: FusionParams | None = None,
    knowledge_params: KnowledgeParams | None = None,
    threads: int = 1,
    progress: bool = False,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Train on ``data_dir/train_sessions.jsonl`` and evaluate on ``data_dir/test_prefixes.jsonl``.

    ``threads`` is torch's intra-op thread count: 1 by default because on a 2-core machine shared
    with other work two threads spin against each other and run several times slower."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UsageError(
            f"No directory {data_dir}: give the Diginetica folder (train_sessions.jsonl, test_prefixes.jsonl)."
        )
    missing = [n for n in ("train_sessions.jsonl", "test_prefixes.jsonl") if not (data_dir / n).exists()]
    if missing:
        raise UsageError(f"{data_dir} lacks {', '.join(missing)} (expected the SR-GNN Diginetica layout).")
    params = _model_setup(threads, model_params, epochs, seed)
    fusion = fusion or FusionParams()

    sessions = load_sessions(data_dir / "train_sessions.jsonl")
    prefixes, targets = load_prefixes(data_dir / "test_prefixes.jsonl")
    n_items = max(
        max((max(s) for s in sessions if s), default=0),
        max((max(p) for p in prefixes if p), default=0),
        max(targets, default=0),
    )
    if sample is not None and sample < len(prefixes):
        chosen = np.sort(np.random.default_rng(seed).choice(len(prefixes), sample, replace=False))
        prefixes = [prefixes[i] for i in chosen]
        targets = [targets[i] for i in chosen]
    y = np.asarray(targets, dtype=np.int64) - 1

    t0 = time.perf_counter()
    stats = TransitionStats(sessions, n_items, knowledge_params)
    stats_seconds = time.perf_counter() - t0
    model = SessionModel(n_items, params).fit(sessions, progress=progress)
    train_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    pop = popularity(sessions, n_items)
    tiebreak = 1e-9 * pop / max(1.0, float(pop.max()))  # below any statistics score's resolution
    ranks: dict[str, list[np.ndarray]] = {name: [] for name in SYSTEMS}
    pop_rank_of = np.empty(n_items, dtype=np.int64)  # the same ranking for every prefix
    pop_rank_of[np.lexsort((np.arange(n_items), -pop))] = np.arange(n_items)
    for sl in iter_batches(len(prefixes), batch_size):
        batch, yb = prefixes[sl], y[sl]
        log_probs = model.log_probs(batch)
        stat = stats.scores(batch)
        ranks["model"].append(target_ranks(log_probs, yb))
        ranks["statistics"].append(target_ranks(stat + tiebreak, yb))
        ranks["fused"].append(target_ranks(fuse(log_probs, stat, fusion, batch), yb))
        ranks["popularity"].append(pop_rank_of[yb])
    eval_seconds = time.perf_counter() - t1

    results: dict[str, Any] = {}
    for name in SYSTEMS:
        r = np.concatenate(ranks[name]) if ranks[name] else np.zeros(0, dtype=np.int64)
        m = metrics_from_ranks(r, K)
        entry: dict[str, Any] = {key: round(value, 2) for key, value in m.items()}
        if sample is not None:
            hit, rr = hit_and_rr(r, K)
            entry["P@20_ci95"] = bootstrap_interval(hit, seed)
            entry["MRR@20_ci95"] = bootstrap_interval(rr, seed + 1)
        results[name] = entry
    return {
        "dataset": "diginetica",
        "data_dir": str(data_dir),
        "train_sessions": len(sessions),
        "test_prefixes": len(prefixes),
        "items": n_items,
        "sample": sample,
        "seed": seed,
        "P@20": results["fused"]["P@20"],
        "MRR@20": results["fused"]["MRR@20"],
        "results": results,
        "published": PUBLISHED,
        "train_seconds": round(train_seconds, 1),
        "statistics_seconds": round(stats_seconds, 1),
        "epoch_seconds": [round(s, 1) for s in model.epoch_seconds],
        "eval_seconds": round(eval_seconds, 1),
        "threads": threads,
        "params": params_dict(params, fusion, stats.params),
        "selection": "hyper-parameters and fusion weight chosen on the last 10% of train sessions (validation), "
        "then the model is retrained on all train sessions; the test file is only scored",
        "machine": machine(),
    }


def validation_split(
    sessions: list[list[int]], fraction: float = 0.1
) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """The training part (the first ``1 - fraction`` of the sessions, which are in time order) and
    the validation prefixes and targets made from the rest as the SR-GNN preprocessing makes the test
    file: every prefix, items unseen in the training part dropped from the prefixes, prefixes whose
    target is unseen (or that end up empty) left out."""
    cut = round(len(sessions) * (1.0 - fraction))
    train, held = sessions[:cut], sessions[cut:]
    known = {i for s in train for i in s}
    prefixes: list[list[int]] = []
    targets: list[int] = []
    for s in held:
        s = [i for i in s if i in known]
        for i in range(1, len(s)):
            prefixes.append(s[:i])
            targets.append(s[i])
    return train, prefixes, targets


def run_validation(
    data_dir: Path,
    fraction: float = 0.1,
    seed: int = 0,
    epochs: int | None = None,
    model_params: ModelParams | None = None,
    fusions: dict[str, FusionParams] | None = None,
    knowledge_params: KnowledgeParams | None = None,
    threads: int = 1,
    progress: bool = False,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Hyper-parameter selection without the test file: train on the first ``1 - fraction`` of
    ``train_sessions.jsonl`` and score every prefix of the rest (``validation_split``), for the model
    alone, the statistics alone and each fusion in ``fusions`` (default: the default fusion)."""
    data_dir = Path(data_dir)
    if not (data_dir / "train_sessions.jsonl").exists():
        raise UsageError(f"{data_dir} lacks train_sessions.jsonl (expected the SR-GNN Diginetica layout).")
    params = _model_setup(threads, model_params, epochs, seed)
    fusions = fusions or {"fused": FusionParams()}
    sessions = load_sessions(data_dir / "train_sessions.jsonl")
    n_items = max((max(s) for s in sessions if s), default=0)
    train, prefixes, targets = validation_split(sessions, fraction)
    y = np.asarray(targets, dtype=np.int64) - 1
    t0 = time.perf_counter()
    stats = TransitionStats(train, n_items, knowledge_params)
    model = SessionModel(n_items, params).fit(train, progress=progress)
    train_seconds = time.perf_counter() - t0
    pop = popularity(train, n_items)
    tiebreak = 1e-9 * pop / max(1.0, float(pop.max()))
    ranks: dict[str, list[np.ndarray]] = {name: [] for name in ("model", "statistics", *fusions)}
    for sl in iter_batches(len(prefixes), batch_size):
        batch, yb = prefixes[sl], y[sl]
        log_probs = model.log_probs(batch)
        stat = stats.scores(batch)
        ranks["model"].append(target_ranks(log_probs, yb))
        ranks["statistics"].append(target_ranks(stat + tiebreak, yb))
        for name, fusion in fusions.items():
            ranks[name].append(target_ranks(fuse(log_probs, stat, fusion, batch), yb))
    results = {
        name: {k: round(v, 2) for k, v in metrics_from_ranks(np.concatenate(r), K).items()} for name, r in ranks.items()
    }
    return {
        "split": f"first {1 - fraction:.0%} of train sessions / every prefix of the last {fraction:.0%}",
        "train_sessions": len(train),
        "validation_prefixes": len(prefixes),
        "results": results,
        "train_seconds": round(train_seconds, 1),
        "epoch_seconds": [round(s, 1) for s in model.epoch_seconds],
        "params": params_dict(params, stats.params),
        "fusions": {name: asdict(f) for name, f in fusions.items()},
    }

"""Out-of-fold evaluation: k-fold splits grouped by query, and bootstrap intervals over queries.

A figure measured on the queries a system was tuned on flatters it; these helpers measure each
query only by a model fitted without it (``query_folds``) and say how sure the mean is
(``bootstrap_ci``: queries resampled with replacement, percentile interval).

    folds = query_folds(qids, k=5, seed=0)          # k disjoint lists of query ids
    for train, test in splits(qids, k=5, seed=0):   # (the other folds' ids, this fold's ids)
        ...
    mean, lo, hi = bootstrap_ci(per_query_values)   # 95%, 1,000 draws, seeded

Everything is deterministic for a given seed and the same set of ids, whatever their order.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterator, Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike

T = TypeVar("T", bound=Hashable)


def query_folds(qids: Sequence[T], k: int = 5, seed: int = 0) -> list[list[T]]:
    """``k`` disjoint folds covering every distinct query id, sizes differing by at most one.

    The ids are deduplicated and sorted (by ``str``) before a seeded shuffle, so the folds depend
    only on the set of ids and the seed."""
    distinct = sorted(dict.fromkeys(qids), key=str)
    if k < 2:
        raise ValueError("k-fold needs k >= 2")
    if len(distinct) < k:
        raise ValueError(f"{len(distinct)} queries cannot make {k} folds")
    random.Random(seed).shuffle(distinct)
    return [distinct[i::k] for i in range(k)]


def splits(qids: Sequence[T], k: int = 5, seed: int = 0) -> Iterator[tuple[list[T], list[T]]]:
    """(train ids, test ids) per fold: each query is tested exactly once, never trained on then."""
    folds = query_folds(qids, k, seed)
    for i, test in enumerate(folds):
        train = [q for j, fold in enumerate(folds) if j != i for q in fold]
        yield train, list(test)


def bootstrap_ci(
    values: ArrayLike, draws: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of the per-query ``values`` and its percentile bootstrap
    interval (queries resampled with replacement ``draws`` times)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no values")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(draws, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(x.mean()), float(lo), float(hi)


def paired_bootstrap_ci(
    a: ArrayLike, b: ArrayLike, draws: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean of a-b, low, high) over the same queries resampled together (a paired comparison)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError("paired values need the same queries")
    return bootstrap_ci(x - y, draws, seed, level)


def ndcg_at(scores: ArrayLike, gains: ArrayLike, k: int = 10) -> float:
    """nDCG@k of one query's candidates ordered by ``scores`` (ties: the earlier candidate first),
    with the given gains and a log2(rank+1) discount; 0 when no candidate has a gain."""
    g = np.asarray(gains, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float((np.sort(g)[::-1][:k] * disc[: min(k, g.size)]).sum())
    if ideal <= 0:
        return 0.0
    return float((g[order] * disc[: order.size]).sum()) / ideal

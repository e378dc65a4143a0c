"""Out-of-fold helpers: query-grouped folds and bootstrap intervals (evals/crossval.py)."""

from __future__ import annotations

import numpy as np
import pytest

from evals.crossval import bootstrap_ci, ndcg_at, paired_bootstrap_ci, query_folds, splits

pytestmark = pytest.mark.unit


def test_folds_partition_every_query_once_with_balanced_sizes():
    qids = [f"q{i}" for i in range(23)]
    folds = query_folds(qids, k=5, seed=3)
    assert len(folds) == 5
    flat = [q for f in folds for q in f]
    assert sorted(flat) == sorted(qids)  # each query in exactly one fold
    assert {len(f) for f in folds} <= {4, 5}


def test_folds_are_deterministic_per_seed_and_ignore_input_order_and_duplicates():
    qids = [f"q{i}" for i in range(40)]
    a = query_folds(qids, k=4, seed=7)
    b = query_folds(list(reversed(qids)) + qids[:5], k=4, seed=7)
    assert a == b
    assert query_folds(qids, k=4, seed=8) != a


def test_splits_never_train_on_the_test_queries():
    qids = list(range(17))
    seen = []
    for train, test in splits(qids, k=3, seed=0):
        assert not set(train) & set(test)
        assert sorted(train + test) == qids
        seen.extend(test)
    assert sorted(seen) == qids


def test_folds_reject_too_few_queries_or_k_below_two():
    with pytest.raises(ValueError, match="cannot make"):
        query_folds(["a", "b"], k=3)
    with pytest.raises(ValueError, match="k >= 2"):
        query_folds(["a", "b", "c"], k=1)


def test_bootstrap_interval_brackets_the_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    values = rng.uniform(0.5, 1.0, size=200)
    mean, lo, hi = bootstrap_ci(values, draws=1000, seed=1)
    assert mean == pytest.approx(values.mean())
    assert lo < mean < hi
    # the interval is about +-1.96 standard errors wide
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.2)
    assert bootstrap_ci(values, seed=1) == (mean, lo, hi)
    assert bootstrap_ci(values, seed=2) != (mean, lo, hi)


def test_bootstrap_of_constant_values_has_zero_width_and_empty_input_fails():
    assert bootstrap_ci([0.7] * 10) == pytest.approx((0.7, 0.7, 0.7))
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_paired_bootstrap_sees_a_consistent_small_gain():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.3, 1.0, size=100)
    better = base + 0.01  # the same queries, each a little better: the noise between queries cancels
    mean, lo, hi = paired_bootstrap_ci(better, base)
    assert mean == pytest.approx(0.01)
    assert 0 < lo <= hi
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1.0], [1.0, 2.0])


def test_ndcg_at_matches_hand_computation():
    gains = [0, 7, 3, 1]
    assert ndcg_at([4, 3, 2, 1], [7, 3, 1, 0]) == pytest.approx(1.0)
    got = ndcg_at([4, 3, 2, 1], gains)  # order: 0, 7, 3, 1
    dcg = 0 / np.log2(2) + 7 / np.log2(3) + 3 / np.log2(4) + 1 / np.log2(5)
    ideal = 7 / np.log2(2) + 3 / np.log2(3) + 1 / np.log2(4)
    assert got == pytest.approx(dcg / ideal)
    assert ndcg_at([1, 2], [0, 0]) == 0.0
    # only the top k count
    assert ndcg_at([3, 2, 1], [0, 0, 7], k=2) == 0.0

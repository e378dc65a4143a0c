"""Session-based next-item recommendation: exact metrics, the statistics matching
``SharedKnowledge.next_scores``, and a tiny synthetic dataset both recommenders must learn."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ranking.sessrec import (
    FusionParams,
    ModelParams,
    SessionModel,
    TransitionStats,
    augment,
    fuse,
    metrics_from_ranks,
    pad_right,
    target_ranks,
    top_k,
)

N_ITEMS = 200


def _chain_sessions(n: int, seed: int) -> list[list[int]]:
    """Sessions that walk item i → i+1 (wrapping at N_ITEMS), 3 to 6 clicks long."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start = rng.randint(1, N_ITEMS)
        out.append([(start - 1 + k) % N_ITEMS + 1 for k in range(rng.randint(3, 6))])
    return out


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chain")
    with open(root / "train_sessions.jsonl", "w", encoding="utf-8") as handle:
        for s in _chain_sessions(1500, seed=1):
            handle.write(json.dumps({"items": s}) + "\n")
    prefixes, targets = augment(_chain_sessions(100, seed=2))
    with open(root / "test_prefixes.jsonl", "w", encoding="utf-8") as handle:
        for p, t in zip(prefixes, targets, strict=True):
            handle.write(json.dumps({"prefix": p, "next": t}) + "\n")
    return root


@pytest.mark.unit
def test_metrics_match_hand_computed_values() -> None:
    scores = np.array(
        [
            [0.9, 0.5, 0.1, 0.3],  # target 0: rank 0 → hit, RR 1
            [0.2, 0.8, 0.8, 0.1],  # target 2: tied with column 1, which wins the tie → rank 1, RR 1/2
            [0.4, 0.4, 0.4, 0.4],  # target 3: all tied, smaller ids first → rank 3, RR 1/4
            [0.1, 0.2, 0.3, 0.0],  # target 3: last → rank 3
        ]
    )
    targets = np.array([0, 2, 3, 3])
    ranks = target_ranks(scores, targets)
    assert ranks.tolist() == [0, 1, 3, 3]
    assert top_k(scores, 4)[1].tolist() == [1, 2, 0, 3]
    assert top_k(scores, 2)[2].tolist() == [0, 1]
    m = metrics_from_ranks(ranks, k=2)
    assert m["P@2"] == pytest.approx(50.0)
    assert m["MRR@2"] == pytest.approx(100.0 * (1 + 0.5) / 4)
    m20 = metrics_from_ranks(ranks, k=20)
    assert m20["P@20"] == pytest.approx(100.0)
    assert m20["MRR@20"] == pytest.approx(100.0 * (1 + 0.5 + 0.25 + 0.25) / 4)


@pytest.mark.unit
def test_augment_and_padding() -> None:
    prefixes, targets = augment([[5, 6, 7], [1]])
    assert prefixes == [[5], [5, 6]] and targets == [6, 7]
    assert pad_right([[1, 2, 3], [4]], 2).tolist() == [[2, 3], [0, 4]]


@pytest.mark.unit
def test_fusion_keeps_model_order_without_statistics() -> None:
    log_probs = np.log(np.array([[0.5, 0.3, 0.2]]))
    assert fuse(log_probs, np.zeros((1, 3)), FusionParams(beta=0.5)).argsort()[0].tolist() == [2, 1, 0]
    fused = fuse(log_probs, np.array([[0.0, 0.0, 5.0]]), FusionParams(beta=1.0, eps=1e-3))
    assert int(fused.argmax()) == 2


@pytest.mark.integration
def test_statistics_equal_shared_knowledge_next_scores() -> None:
    sessions = [*_chain_sessions(200, seed=3), [1, 2, 1, 3, 3, 4]]
    stats = TransitionStats(sessions, N_ITEMS)
    prefixes = [[1, 2, 1, 3], [7], [10, 11, 12, 10], [199, 200]]
    dense = stats.scores(prefixes)
    for row, prefix in zip(dense, prefixes, strict=True):
        expected = stats.knowledge.next_scores([str(i) for i in prefix])
        assert {i + 1 for i in np.flatnonzero(row)} == {int(k) for k, v in expected.items() if v}
        for key, value in expected.items():
            assert row[int(key) - 1] == pytest.approx(value)


@pytest.mark.integration
@pytest.mark.slow
def test_model_and_statistics_learn_a_deterministic_chain(chain_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from ranking.sessrec import load_prefixes, load_sessions

    sessions = load_sessions(chain_dir / "train_sessions.jsonl")
    prefixes, targets = load_prefixes(chain_dir / "test_prefixes.jsonl")
    y = np.array(targets) - 1
    model = SessionModel(N_ITEMS, ModelParams(dim=32, epochs=15, batch_size=128, lr=5e-3)).fit(sessions)
    model_m = metrics_from_ranks(target_ranks(model.log_probs(prefixes), y))
    stats_m = metrics_from_ranks(target_ranks(TransitionStats(sessions, N_ITEMS).scores(prefixes), y))
    assert model_m["P@20"] >= 90.0, model_m
    assert stats_m["P@20"] >= 95.0 and stats_m["MRR@20"] >= 80.0, stats_m


@pytest.mark.integration
@pytest.mark.slow
def test_cli_eval_sessions_json(chain_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from ui.cli import main

    runner = CliRunner()
    args = ["eval", "sessions", "--data", str(chain_dir), "--epochs", "8", "--json", "--home", str(tmp_path)]
    result = runner.invoke(main, [*args, "--sample", "150", "--seed", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["test_prefixes"] == 150
    assert set(out["results"]) == {"fused", "model", "statistics", "popularity"}
    assert out["results"]["statistics"]["P@20"] >= 95.0
    assert out["P@20"] >= 90.0
    lo, hi = out["results"]["fused"]["P@20_ci95"]
    assert lo <= out["P@20"] <= hi
    assert out["results"]["popularity"]["P@20"] < 50.0  # 20 of 200 items: roughly a 10% hit rate
    assert len(out["epoch_seconds"]) == 8  # --epochs 8 was honoured: the report times each epoch
    assert out["published"]["SR-GNN"] == {"P@20": 50.73, "MRR@20": 17.59, "source": "Wu et al., AAAI 2019"}


@pytest.mark.integration
def test_cli_eval_sessions_missing_data_says_what_to_do(tmp_path: Path) -> None:
    from ui.cli import main

    result = CliRunner().invoke(
        main, ["eval", "sessions", "--data", str(tmp_path / "nope"), "--home", str(tmp_path)], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "Diginetica folder" in result.output

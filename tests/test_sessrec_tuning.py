"""The session model's repeat bonus, the repeat-aware fusion and the validation split
(``ranking.sessrec``, ``evals.sessions``): each option changes the model as documented, and the
defaults are the validated ones."""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evals.sessions import validation_split
from ranking.sessrec import (
    FusionParams,
    ModelParams,
    SessionModel,
    _build_model,
    fuse,
    metrics_from_ranks,
    target_ranks,
)


@pytest.mark.unit
def test_defaults_are_the_validated_settings() -> None:
    p = ModelParams()
    assert (p.dim, p.max_len, p.temperature, p.epochs, p.negatives, p.repeat) == (100, 20, 12.0, 6, 4096, False)
    f = FusionParams()
    assert (f.beta, f.eps, f.mode, f.keep_repeats) == (1.5, 3e-3, "log", True)


@pytest.mark.unit
def test_fusion_keep_repeats_stops_the_statistics_demoting_a_session_item() -> None:
    # item 1 (column 0) is in the session and has no statistics of its own (self-transitions are
    # not counted); the model puts it first
    log_probs = np.log(np.array([[0.40, 0.35, 0.25]]))
    stats = np.array([[0.0, 1.0, 0.0]])
    plain = fuse(log_probs, stats, FusionParams(beta=0.5, keep_repeats=False))
    assert int(plain.argmax()) == 1  # the floor log(eps) demotes the repeat below item 2
    kept = fuse(log_probs, stats, FusionParams(beta=0.5, keep_repeats=True), prefixes=[[1]])
    assert int(kept.argmax()) == 0  # it gets the row's best statistics term: the model's order stands
    assert kept[0, 1] == pytest.approx(plain[0, 1]) and kept[0, 2] == pytest.approx(plain[0, 2])
    # without the prefixes there is no session to read: the plain fusion
    unread = fuse(log_probs, stats, FusionParams(beta=0.5, keep_repeats=True))
    assert np.allclose(unread, plain)


@pytest.mark.unit
def test_validation_split_is_by_time_and_made_like_the_test_file() -> None:
    sessions = [[1, 2], [2, 3], [3, 1], [4, 1, 9, 2], [9, 9]]
    train, prefixes, targets = validation_split(sessions, fraction=0.4)
    assert train == [[1, 2], [2, 3], [3, 1]]  # the first 60%: the file is in time order
    # 4 and 9 were never seen in training: dropped from the prefixes; [9, 9] leaves nothing
    assert prefixes == [[1]] and targets == [2]


@pytest.mark.unit
def test_repeat_bonus_touches_only_the_latest_click_of_each_session_item() -> None:
    torch = pytest.importorskip("torch")
    n_items = 30
    params = ModelParams(dim=8, max_len=5, dropout=0.0, repeat=True)
    model = SessionModel(n_items, params)
    model.net = model_net = _build_model(n_items, params)
    model_net.eval()
    with torch.no_grad():
        model_net.rep_pos.copy_(torch.tensor([3.0, 2.0, 1.0, 0.5, 0.25]))
        model_net.rep_gate.bias.fill_(0.1)
    plain = SessionModel(n_items, ModelParams(dim=8, max_len=5, dropout=0.0, repeat=False))
    plain.net = _build_model(n_items, plain.params)
    plain.net.load_state_dict({k: v for k, v in model_net.state_dict().items() if not k.startswith("rep_")})
    prefix = [7, 4, 7, 9]  # 9 last (distance 0), 7 latest at distance 1, 4 at distance 2
    diff = model.log_probs([prefix])[0] - plain.log_probs([prefix])[0]
    shift = diff - diff[0]  # log_softmax normalisation moves every column by the same amount
    expected = np.zeros(n_items)
    expected[9 - 1], expected[7 - 1], expected[4 - 1] = 3.1, 2.1, 1.1
    assert np.allclose(shift, expected, atol=1e-4)
    assert not hasattr(plain.net, "rep_pos")  # repeat=False: the architecture of before


def _repeat_sessions(n: int, seed: int, n_items: int) -> list[list[int]]:
    """Browse three random items, then go back to the first one."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b, c = rng.sample(range(1, n_items + 1), 3)
        out.append([a, b, c, a])
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_repeat_bonus_learns_to_predict_a_return_to_a_session_item() -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    n_items = 300
    train = _repeat_sessions(3000, 1, n_items)
    test = _repeat_sessions(300, 2, n_items)
    prefixes = [s[:3] for s in test]
    y = np.array([s[3] for s in test]) - 1
    common = dict(dim=32, epochs=4, batch_size=128, lr=5e-3, negatives=128)
    model = SessionModel(n_items, ModelParams(repeat=True, **common)).fit(train)
    m = metrics_from_ranks(target_ranks(model.log_probs(prefixes), y))
    assert m["MRR@20"] >= 90.0, m
    bonus = model.net.rep_pos.detach().numpy()
    # the return is always to the item 2 clicks back: that distance earns the largest bonus
    assert int(np.argmax(bonus[:3])) == 2 and bonus[2] > 0.0, bonus


@pytest.mark.integration
@pytest.mark.slow
def test_cli_validation_scores_the_held_out_train_sessions_not_the_test_file(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from ui.cli import main

    n_items = 100
    with open(tmp_path / "train_sessions.jsonl", "w", encoding="utf-8") as handle:
        for s in _repeat_sessions(600, 3, n_items):
            handle.write(json.dumps({"items": s}) + "\n")
    # no test file at all: validation must not need it
    args = ["eval", "sessions", "--data", str(tmp_path), "--validation", "0.2", "--epochs", "2", "--json"]
    result = CliRunner().invoke(main, [*args, "--home", str(tmp_path / "home")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["train_sessions"] == 480
    assert out["validation_prefixes"] == 120 * 3  # every prefix of the last 120 sessions of 4 clicks
    assert set(out["results"]) == {"model", "statistics", "fused"}
    assert out["fusions"]["fused"] == asdict(FusionParams())
    assert len(out["epoch_seconds"]) == 2

"""The learned ranker: trained from a judgements file, loaded by the retriever, falling back to
the fusion when absent, unreadable or out of its language; and ``shopassist train ranker``."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from evals.common import file_digest
from evals.relevance import load_crowdflower
from evals.retrieval import build_eval_stack
from retrieval.ltr import FEATURE_NAMES, LearnedRanker, feature_matrix, meta_path, train
from retrieval.search import HybridConfig
from shopassist.config import Settings
from ui.cli import main

pytestmark = pytest.mark.integration

COLOURS = ["red", "blue", "green", "black"]
ITEMS = ["dress", "jacket", "boots"]
STYLES = ["cotton", "summer", "classic", "slim"]


def judgement_rows() -> list[dict[str, object]]:
    """12 queries "<colour> <item>"; per query: the item in that colour (4), the item in another
    colour (2), another item in that colour (1) and an unrelated product (1)."""
    rows: list[dict[str, object]] = []

    def add(query: str, title: str, desc: str, rel: int) -> None:
        rows.append(
            {
                "id": len(rows) + 1,
                "query": query,
                "product_title": title,
                "product_description": desc,
                "median_relevance": rel,
            }
        )

    for ci, colour in enumerate(COLOURS):
        for ii, item in enumerate(ITEMS):
            q = f"{colour} {item}"
            other_c = COLOURS[(ci + 1) % len(COLOURS)]
            other_i = ITEMS[(ii + 1) % len(ITEMS)]
            for s in STYLES[:2]:
                add(q, f"{s.title()} {colour.title()} {item.title()}", f"A {colour} {item}, {s}.", 4)
            for s in STYLES[2:]:
                add(q, f"{s.title()} {other_c.title()} {item.title()}", f"A {other_c} {item}.", 2)
            add(q, f"{colour.title()} {other_i.title()}, {STYLES[ii]}", f"A {colour} {other_i}.", 1)
            add(q, f"Stainless Steel Kitchen Knife Set {ci}{ii}", "Six knives and a block.", 1)
    return rows


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``shopassist train ranker`` once on the synthetic file: (judgements, home, model, result)."""
    root = tmp_path_factory.mktemp("ltr")
    data = write_rows(root / "judgements.jsonl", judgement_rows())
    home = root / "home"
    out = root / "models" / "ranker.txt"
    res = CliRunner().invoke(
        main,
        [
            "train",
            "ranker",
            "--judgements",
            str(data),
            "--folds",
            "3",
            "--out",
            str(out),
            "--json",
            "--home",
            str(home),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    return data, home, out, json.loads(res.stdout)


def stack_for(data: Path, home: Path, model: str | None):
    products, queries, qrels = load_crowdflower(data)
    stack = build_eval_stack(
        Settings(home=home), products, "crowdflower", file_digest(data), False, HybridConfig(learned_model=model)
    )
    return stack, queries, qrels


def test_train_command_reports_out_of_fold_figures_and_writes_a_small_model(trained):
    _, _, out, result = trained
    cv = result["crossval"]
    assert result["queries"] == 12 and result["judged_pairs"] == 72 and cv["folds"] == 3
    assert result["languages"] == ["en"]
    for key in ("learned_oof", "fusion_fitted_oof", "fusion_equal"):
        mean = cv[key]["nDCG@10"]
        lo, hi = cv[key]["ci95"]
        assert 0 <= lo <= mean + 1e-9 and mean <= hi + 1e-9 <= 1 + 1e-9
    # the pattern (colour and item both matter, item more) is learnable from the other folds
    assert cv["learned_oof"]["nDCG@10"] > 0.9
    assert out.exists() and meta_path(out).exists()
    assert 0 < result["model_bytes"] < 300_000
    meta = json.loads(meta_path(out).read_text())
    assert meta["features"] == list(FEATURE_NAMES) and meta["languages"] == ["en"]
    assert meta["oof_ndcg10"] == pytest.approx(cv["learned_oof"]["nDCG@10"], abs=1e-4)


def test_loaded_model_ranks_the_exact_match_first_and_differs_from_the_fusion(trained):
    data, home, out, _ = trained
    stack, queries, qrels = stack_for(data, home, str(out))
    retriever = stack.retriever
    assert retriever.learned is not None and retriever.learned.applies("en")
    for qid, text in queries.items():
        ids = list(qrels[qid])
        ranked = retriever.rank(text, ids)
        assert [qrels[qid][c.product.id] for c in ranked[:2]] == [7, 7], text
        # the scores are the model's over the retriever's own features
        kept, x = retriever.candidate_features(text, ids)
        assert x.shape == (len(kept), len(FEATURE_NAMES))
        expected = dict(zip(kept, retriever.learned.score(x), strict=True))
        assert all(c.score == pytest.approx(expected[c.product.id]) for c in ranked)
    # search() uses it too
    hits = retriever.search("green jacket", top_k=3)
    assert "Green Jacket" in hits[0].product.title


def test_scoring_is_well_under_a_millisecond_per_candidate(trained):
    _, _, out, result = trained
    model = LearnedRanker.load(out)
    x = np.random.default_rng(0).normal(size=(50, len(FEATURE_NAMES)))
    model.score(x)
    t0 = time.perf_counter()
    for _ in range(20):
        model.score(x)
    per_candidate = (time.perf_counter() - t0) / (20 * len(x))
    assert per_candidate < 1e-3
    assert result["us_per_candidate"]["model"] < 1000


def test_falls_back_to_the_fusion_without_a_model_a_missing_one_or_another_language(trained, tmp_path, caplog):
    data, home, out, _ = trained
    fusion, queries, qrels = stack_for(data, home, None)
    assert fusion.retriever.learned is None
    qid, text = next(iter(queries.items()))
    ids = list(qrels[qid])
    base = [(c.product.id, c.score) for c in fusion.retriever.rank(text, ids)]

    with caplog.at_level(logging.WARNING, logger="retrieval.search"):
        missing, _, _ = stack_for(data, home, str(tmp_path / "nope.txt"))
    assert missing.retriever.learned is None
    assert "learned ranker not loaded" in caplog.text
    assert [(c.product.id, c.score) for c in missing.retriever.rank(text, ids)] == base

    # a model whose features are not this version's is refused, not misread
    bad = tmp_path / "bad.txt"
    bad.write_text(out.read_text())
    meta = json.loads(meta_path(out).read_text())
    meta_path(bad).write_text(json.dumps({**meta, "features": ["x", *meta["features"][1:]]}))
    with pytest.raises(ValueError, match="differ"):
        LearnedRanker.load(bad)

    # an English-only model leaves a Chinese query to the fusion
    learned, _, _ = stack_for(data, home, str(out))
    zh = "红色 连衣裙"
    assert not learned.retriever.learned.applies("zh")
    a = [(c.product.id, c.score) for c in learned.retriever.rank(zh, ids)]
    b = [(c.product.id, c.score) for c in fusion.retriever.rank(zh, ids)]
    assert a == b


def test_train_fits_grades_and_feature_matrix_shapes():
    rng = np.random.default_rng(1)
    groups = []
    for _ in range(30):
        raw = {f: rng.uniform(size=8) for f in ("bm25", "dense", "doc", "coverage", "pairs")}
        raw.update(idf_coverage=rng.uniform(size=8), title_terms=rng.integers(3, 9, size=8))
        raw["head_in_title"] = rng.integers(0, 2, size=8)
        x = feature_matrix(raw, query_terms=2, zh=False)
        assert x.shape == (8, len(FEATURE_NAMES))
        grades = (raw["coverage"] * 3.99).astype(int)  # relevance follows one feature
        groups.append((x, grades))
    model = train(groups)
    x, grades = groups[0]
    order = np.argsort(-model.score(x))
    assert grades[order[0]] == grades.max()
    assert feature_matrix({f: np.zeros(0) for f in FEATURE_NAMES}, 1, True).shape == (0, len(FEATURE_NAMES))
    with pytest.raises(ValueError):
        train([])


def test_train_command_rejects_a_bad_file_clearly(tmp_path):
    runner = CliRunner()
    home = str(tmp_path / "home")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "red dress", "product_title": "Red Dress"}\n', encoding="utf-8")
    res = runner.invoke(main, ["train", "ranker", "--judgements", str(bad), "--home", home])
    assert res.exit_code == 2
    assert "bad.jsonl:1: not a judgement row" in res.output
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n", encoding="utf-8")
    res = runner.invoke(main, ["train", "ranker", "--judgements", str(garbage), "--home", home])
    assert res.exit_code == 2 and "not a judgement row" in res.output
    few = write_rows(tmp_path / "few.jsonl", judgement_rows()[:16])  # two queries
    res = runner.invoke(main, ["train", "ranker", "--judgements", str(few), "--folds", "5", "--home", home])
    assert res.exit_code == 2 and "cannot make 5 folds" in res.output


def test_a_home_ranks_with_the_model_train_wrote_there_unless_turned_off(trained, tmp_path, monkeypatch):
    """`shopassist train ranker` writes HOME/models/ranker.txt by default; the stack of that home
    then ranks with it, SHOPASSIST_RANKER_MODEL names another file or `off`."""
    import shutil

    from assistant.stack import Stack

    _, _, out, _ = trained
    home = tmp_path / "shop"
    assert Settings(home=home).learned_ranker() is None  # nothing trained: the fusion
    (home / "models").mkdir(parents=True)
    shutil.copy(out, home / "models" / "ranker.txt")
    shutil.copy(meta_path(out), meta_path(home / "models" / "ranker.txt"))
    assert Stack(Settings(home=home)).retriever.learned is not None
    monkeypatch.setenv("SHOPASSIST_RANKER_MODEL", "off")
    assert Stack(Settings.from_env(home=str(home))).retriever.learned is None
    monkeypatch.setenv("SHOPASSIST_RANKER_MODEL", str(out))
    assert Settings.from_env(home=str(home)).learned_ranker() == out

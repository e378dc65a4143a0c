"""Out-of-fold figures for eval retrieval (evals/retrieval.py ``crossval``): the Chinese fusion
weights are chosen on each fold's training queries only, the held-out fold is scored with them,
and every figure has a bootstrap interval. On a small synthetic Chinese pool (a real catalog and
retriever with the model-free HashingEmbedder) and on hand-made feature matrices."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from evals.common import per_query
from evals.crossval import splits
from evals.retrieval import (
    PoolQuery,
    choose_weights,
    crossval,
    featurise_pool,
    reciprocal_ranks,
    run_multicpr,
    weight_grid,
)
from retrieval.ltr import FEATURE_NAMES, FUSION_FEATURES
from retrieval.search import ZH_WEIGHTS, HybridRetriever

# (query, the relevant title, distractors that share some of its words)
POOL = [
    ("保温杯大容量", "304不锈钢保温杯 大容量 男女通用", ["玻璃水杯 小容量", "保温饭盒 不锈钢", "大容量收纳箱"]),
    ("华为手机壳", "华为P40手机壳 防摔 硅胶", ["苹果手机壳 透明", "华为充电器 快充", "手机支架 桌面"]),
    ("儿童书包护脊", "儿童书包 小学生 护脊减负", ["双肩包 男士 商务", "儿童水杯 卡通", "笔袋 文具盒"]),
    ("女士羊毛大衣", "女士羊毛大衣 中长款 冬季", ["男士羽绒服 加厚", "羊毛围巾 女", "女士风衣 春秋"]),
    ("真皮方向盘套", "真皮方向盘套 四季通用", ["汽车脚垫 全包围", "方向盘锁 防盗", "真皮钱包 男"]),
    ("无线蓝牙耳机", "无线蓝牙耳机 降噪 运动", ["有线耳机 入耳式", "蓝牙音箱 便携", "耳机收纳包"]),
    ("婴儿纸尿裤", "婴儿纸尿裤 超薄透气 L码", ["成人纸尿裤", "婴儿湿巾 80抽", "婴儿奶瓶 玻璃"]),
    ("跑步鞋男", "男士跑步鞋 轻便 缓震", ["女士高跟鞋", "篮球鞋 男 高帮", "跑步机 家用"]),
    ("电饭煲家用", "智能电饭煲 家用 4升", ["电压力锅 家用", "电水壶 不锈钢", "电饭煲内胆 配件"]),
    ("瑜伽垫加厚", "瑜伽垫 加厚 防滑 初学者", ["瑜伽服 套装 女", "地垫 加厚 卧室", "健身手套"]),
    ("洗面奶男士", "男士洗面奶 控油 祛痘", ["女士洗面奶 氨基酸", "男士面霜 补水", "洗发水 去屑"]),
    ("机械键盘青轴", "机械键盘 青轴 87键", ["无线鼠标 静音", "键盘膜 笔记本", "机械表 男"]),
    ("茶叶绿茶", "西湖龙井 绿茶 明前 250克", ["红茶 正山小种", "茶具套装 陶瓷", "绿茶面膜"]),
    ("充电宝大容量", "充电宝 20000毫安 大容量 快充", ["数据线 快充", "充电器 苹果", "大容量行李箱"]),
]


def _docs() -> tuple[list[dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    docs: list[dict[str, str]] = []
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i, (query, relevant, distractors) in enumerate(POOL):
        for j, title in enumerate([relevant, *distractors]):
            docs.append({"id": f"d{i}-{j}", "title": title})
        queries[f"q{i}"] = query
        qrels[f"q{i}"] = {f"d{i}-0": 1}
    return docs, queries, qrels


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    from retrieval import Catalog
    from retrieval.testing import HashingEmbedder
    from shopassist.config import Settings
    from shopassist.models import Product

    docs, queries, qrels = _docs()
    catalog = Catalog(Settings(home=tmp_path_factory.mktemp("home")), embedder=HashingEmbedder())
    catalog.upsert([Product.model_validate(d) for d in docs])
    retriever = HybridRetriever(catalog)
    data = featurise_pool(retriever, queries, qrels)
    return retriever, queries, qrels, data


def _run(retriever, queries):
    out = {}
    for qid, text in queries.items():
        results = retriever.search(text, top_k=100)
        out[qid] = {c.product.id: float(len(results) - i) for i, c in enumerate(results)}
    return out


def _with_relevant(q: PoolQuery, index: int) -> PoolQuery:
    grades = np.zeros_like(q.grades)
    grades[index] = 1
    return replace(q, grades=grades)


@pytest.mark.integration
def test_rescoring_the_shipped_weights_from_the_features_reproduces_search(pool):
    retriever, queries, qrels, data = pool
    assert set(data) == set(queries)
    for q in data.values():
        assert q.x.shape == (len(q.ids), len(FEATURE_NAMES)) and q.zh
        assert sorted(q.tiebreak.tolist()) == list(range(len(q.ids)))
    shipped = per_query(qrels, _run(retriever, queries), "MRR@10")
    cv = crossval(data, shipped=shipped, learned=False)
    # the same candidates, features, weights and tie order as search: the same figure per query
    assert cv["shipped_weights_rescored"]["MRR@10"] == pytest.approx(cv["shipped_fusion"]["MRR@10"])
    z_cols = [FEATURE_NAMES.index(f"z_{f}") for f in FUSION_FEATURES]
    w = np.array([getattr(ZH_WEIGHTS, f) for f in FUSION_FEATURES])
    for qid, q in data.items():
        assert reciprocal_ranks(q, q.x[:, z_cols] @ w)[0] == pytest.approx(shipped[qid])


@pytest.mark.integration
def test_crossval_block_has_every_figure_with_intervals_around_the_mean(pool):
    retriever, queries, qrels, data = pool
    run = _run(retriever, queries)
    bm25 = {q: 0.5 for q in queries}
    cv = crossval(data, shipped=per_query(qrels, run, "MRR@10"), bm25=bm25, learned=True)
    assert (
        cv["folds"] == 5 and cv["seed"] == 0 and cv["queries"] == len(POOL) and cv["grid"] == len(weight_grid()) == 64
    )
    grid = [w.as_dict() for w in weight_grid()]
    assert len(cv["chosen_weights"]) == 5 == len(cv["chosen"])
    assert sum(c["test_queries"] for c in cv["chosen_weights"]) == len(POOL)
    for c in cv["chosen_weights"]:
        assert {f: c[f] for f in FUSION_FEATURES} in grid
        assert c["bm25"] + c["dense"] == pytest.approx(1.0)
    for name in ("fusion_fitted_oof", "shipped_fusion", "bm25", "learned_oof", "grid_best_in_sample"):
        block = cv[name]
        lo, hi = block["ci95"]
        assert 0.0 <= lo <= block["MRR@10"] <= hi <= 1.0, name
    for name in ("oof_minus_in_sample", "learned_minus_fusion_fitted"):
        lo, hi = cv[name]["ci95"]
        assert lo <= cv[name]["mean"] <= hi, name
    assert cv["bm25"]["MRR@10"] == pytest.approx(0.5)
    # every query is scored out of fold exactly once, by each system
    assert set(cv["per_query"]["fusion_fitted"]) == set(queries) == set(cv["per_query"]["learned"])
    # the grid's best chosen on every query can only flatter: never below the out-of-fold mean
    assert cv["grid_best_in_sample"]["MRR@10"] >= cv["fusion_fitted_oof"]["MRR@10"] - 1e-12
    json.dumps(cv)  # the block goes into --json output as it is


@pytest.mark.integration
def test_a_folds_choice_does_not_change_when_its_held_out_labels_are_permuted(pool):
    _, _, _, data = pool
    base = crossval(data, learned=False)
    grid = weight_grid()
    z_cols = [FEATURE_NAMES.index(f"z_{f}") for f in FUSION_FEATURES]
    w = np.array([[getattr(g, f) for g in grid] for f in FUSION_FEATURES])
    # half BM25, half dense, every extra on: far from what the unpermuted labels choose
    target = next(i for i, g in enumerate(grid) if g.dense == 0.5 and g.doc and g.coverage and g.pairs)
    leaky_changed = 0
    for i, (train_ids, test_ids) in enumerate(splits(list(data), 5, 0)):
        permuted = dict(data)
        for q in test_ids:  # the relevant product becomes the one a mixed setting puts first
            d = data[q]
            scores = d.x[:, z_cols] @ w[:, target]
            scores[d.grades > 0] = -np.inf
            permuted[q] = _with_relevant(d, int(np.argmax(scores)))
        again = crossval(permuted, learned=False)
        assert again["chosen_weights"][i] == base["chosen_weights"][i]
        assert again["per_query"]["fusion_fitted"] != base["per_query"]["fusion_fitted"]
        # the permutation matters: choosing on every query (held-out ones too) would change
        rr = np.vstack([reciprocal_ranks(permuted[q], permuted[q].x[:, z_cols] @ w) for q in [*train_ids, *test_ids]])
        leaky_changed += grid[choose_weights(rr)].as_dict() != {
            f: base["chosen_weights"][i][f] for f in FUSION_FEATURES
        }
    assert leaky_changed > 0


def _hand_query(prefer_dense: bool, n: int = 12) -> PoolQuery:
    """A query whose relevant candidate (index 0) only the dense leg ranks first (only an even
    mix finds it), or only BM25 does (any dense weight costs it places); the others in between."""
    x = np.zeros((n, len(FEATURE_NAMES)))
    bm25 = np.linspace(-1.5, 1.5, n)
    dense = -bm25
    bm25[0], dense[0] = (-2.0, 3.0) if prefer_dense else (1.6, -3.0)
    x[:, FEATURE_NAMES.index("z_bm25")] = bm25
    x[:, FEATURE_NAMES.index("z_dense")] = dense
    grades = np.zeros(n, dtype=np.int64)
    grades[0] = 1
    return PoolQuery("测试", [f"c{i}" for i in range(n)], x, grades, np.arange(n), True)


@pytest.mark.unit
def test_the_choice_follows_the_training_labels_only():
    qids = [f"q{i}" for i in range(20)]
    folds = list(splits(qids, 5, 0))
    held_out = set(folds[0][1])
    # training queries favour BM25, the held-out fold favours the dense leg
    data = {q: _hand_query(prefer_dense=q in held_out) for q in qids}
    cv = crossval(data, learned=False)
    first = cv["chosen_weights"][0]
    assert first["dense"] == 0.0 and first["bm25"] == 1.0
    # so the held-out queries, whose relevant product BM25 ranks last, score nothing out of fold
    assert all(cv["per_query"]["fusion_fitted"][q] == 0.0 for q in held_out)
    # every other fold trains on three BM25 folds and the dense one: BM25 alone wins there too
    assert all(c["dense"] == 0.0 for c in cv["chosen_weights"][1:])
    assert cv["per_query"]["fusion_fitted"] == {q: 0.0 if q in held_out else 1.0 for q in qids}
    # and the choice matches choosing on the training queries alone, by hand
    grid = weight_grid()
    z_cols = [FEATURE_NAMES.index(f"z_{f}") for f in FUSION_FEATURES]
    w = np.array([[getattr(g, f) for g in grid] for f in FUSION_FEATURES])
    for (train_ids, _), chosen in zip(folds, cv["chosen_weights"], strict=True):
        rr = np.vstack([reciprocal_ranks(data[q], data[q].x[:, z_cols] @ w) for q in train_ids])
        assert grid[choose_weights(rr)].as_dict() == {f: chosen[f] for f in FUSION_FEATURES}
    # when every query favours the dense leg, every fold picks the grid's largest dense weight
    dense_cv = crossval({q: _hand_query(prefer_dense=True) for q in qids}, learned=False)
    assert {c["dense"] for c in dense_cv["chosen_weights"]} == {0.5}


@pytest.mark.unit
def test_reciprocal_ranks_break_ties_in_search_order_and_stop_at_ten():
    q = PoolQuery(
        "测试", ["a", "b", "c"], np.zeros((3, len(FEATURE_NAMES))), np.array([0, 0, 1]), np.array([1, 2, 0]), True
    )
    scores = np.array([[1.0, 5.0], [1.0, 4.0], [1.0, 3.0]])
    # column 0: all tied, c is first in the tie order; column 1: c is third
    assert reciprocal_ranks(q, scores).tolist() == pytest.approx([1.0, 1 / 3])
    many = PoolQuery(
        "测试", [str(i) for i in range(12)], np.zeros((12, 1)), np.eye(12, dtype=np.int64)[11], np.arange(12), True
    )
    assert reciprocal_ranks(many, -np.arange(12.0))[0] == 0.0  # the relevant one is 12th
    assert reciprocal_ranks(replace(many, grades=np.zeros(12, dtype=np.int64)), np.arange(12.0))[0] == 0.0


@pytest.mark.unit
def test_the_retrieval_view_prints_the_out_of_fold_line():
    from ui.cli.evals import VIEWS
    from ui.cli.output import Line, render

    def iv(m):
        return {"MRR@10": m, "ci95": [m - 0.05, m + 0.05]}

    result = {
        "systems": {"shopassist": 0.8, "bm25": 0.6},
        "crossval": {
            "folds": 5,
            "fusion_fitted_oof": iv(0.79),
            "chosen": ["0.8/0.2", "0.9/0.1"],
            "shipped_fusion": iv(0.8),
            "bm25": iv(0.6),
            "learned_oof": iv(0.75),
        },
    }
    line = next(spec for spec in VIEWS["retrieval"] if isinstance(spec, Line))
    text = render(line.template, result)
    assert text.startswith("5-fold out-of-fold MRR@10")
    assert "0.7900" in text and "0.8/0.2, 0.9/0.1" in text and "in-sample 0.8000" in text
    assert "learned ranker 0.7500" in text
    del result["crossval"]["learned_oof"]
    assert "learned" not in render(line.template, result)
    assert list(line.lines({"systems": {}, "crossval": None})) == []


@pytest.mark.integration
@pytest.mark.slow
def test_eval_retrieval_reports_the_out_of_fold_block(tmp_path, settings):
    docs, queries, qrels = _docs()
    data = tmp_path / "pool"
    data.mkdir()
    (data / "corpus.jsonl").write_text(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8"
    )
    (data / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()), encoding="utf-8")
    (data / "qrels.tsv").write_text(
        "".join(f"{q}\t0\t{d}\t{g}\n" for q, rel in qrels.items() for d, g in rel.items()), encoding="utf-8"
    )
    result = run_multicpr(data, settings=settings)
    cv = result["crossval"]
    assert cv["queries"] == len(POOL) and len(cv["chosen"]) == 5
    assert cv["shipped_fusion"]["MRR@10"] == pytest.approx(result["systems"]["shopassist"]["MRR@10"])
    assert cv["shipped_weights_rescored"]["MRR@10"] == pytest.approx(cv["shipped_fusion"]["MRR@10"])
    assert cv["bm25"]["MRR@10"] == pytest.approx(result["systems"]["bm25"]["MRR@10"])
    assert "per_query" not in cv and "learned_oof" in cv
    # too few queries for 5 folds: no block
    assert run_multicpr(data, settings=settings, limit=6)["crossval"] is None

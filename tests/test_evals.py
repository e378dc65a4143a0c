"""Eval suites: metric code against golden hand-computed values, and each suite end to end on a
tiny dataset in the shared formats."""

import json
from pathlib import Path

import pytest

from evals.common import evaluate, per_query
from evals.relevance import gain, run_crowdflower
from evals.retrieval import run_multicpr

GOLDEN = json.loads((Path(__file__).parent / "golden" / "metrics.json").read_text(encoding="utf-8"))


@pytest.mark.unit
def test_metrics_match_hand_computed_golden_values():
    qrels, run = GOLDEN["qrels"], GOLDEN["run"]
    for name, expected in GOLDEN["expected"].items():
        sub = {q: qrels[q] for q in expected}
        got = per_query(sub, run, name)
        assert got == pytest.approx(expected, abs=1e-5), name
        assert evaluate(sub, run, [name])[name] == pytest.approx(sum(expected.values()) / len(expected), abs=1e-5)


@pytest.mark.unit
def test_a_query_missing_from_the_run_counts_as_zero():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert evaluate(qrels, {"q1": {"d1": 1.0}}, ["MRR@10"])["MRR@10"] == pytest.approx(0.5)


@pytest.mark.unit
def test_crowdflower_gain_is_two_to_the_rel_minus_one_minus_one():
    assert [gain(r) for r in (1, 2, 3, 4)] == [0, 1, 3, 7]


@pytest.mark.integration
@pytest.mark.slow
def test_multicpr_suite_end_to_end(tmp_path, settings):
    data = tmp_path / "pool"
    data.mkdir()
    titles = [
        "304不锈钢保温杯 大容量",
        "adidas纸袋子 礼品袋",
        "c63方向盘 真皮",
        "华为手机壳 防摔",
        "儿童书包 护脊",
        "女士羊毛大衣",
    ]
    (data / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": f"d{i}", "title": t}, ensure_ascii=False) + "\n" for i, t in enumerate(titles)),
        encoding="utf-8",
    )
    (data / "queries.tsv").write_text("1\t保温杯\n2\t阿迪达斯 纸袋\n3\t手机壳华为\n", encoding="utf-8")
    (data / "qrels.tsv").write_text("1\t0\td0\t1\n2\t0\td1\t1\n3\t0\td3\t1\n", encoding="utf-8")
    result = run_multicpr(data, settings=settings)
    assert result["queries"] == 3 and result["corpus"] == 6
    assert set(result["systems"]) == {"shopassist", "bm25"}
    assert result["systems"]["shopassist"]["MRR@10"] == pytest.approx(1.0)
    # the BM25 baseline finds the same-script queries, and misses 阿迪达斯 -> adidas that shopassist finds
    assert 0 < result["systems"]["bm25"]["MRR@10"] < result["systems"]["shopassist"]["MRR@10"]
    # the indexed eval corpus is cached under the home and reused
    again = run_multicpr(data, settings=settings)
    assert again["systems"] == result["systems"]


@pytest.mark.integration
def test_crowdflower_suite_end_to_end(tmp_path, settings):
    rows = [
        ("red dress", "Red Cocktail Dress", "A <b>red</b> dress for parties", 4),
        ("red dress", "Blue Denim Jacket", "Jacket", 1),
        ("red dress", "Red Summer Dress, cotton", "", 3),
        ("hiking boots", "Waterproof Hiking Boots", "Leather boots for trails", 4),
        ("hiking boots", "Silk Scarf", "Soft scarf", 1),
    ]
    path = tmp_path / "judgements.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": i, "query": q, "product_title": t, "product_description": d, "median_relevance": r})
            + "\n"
            for i, (q, t, d, r) in enumerate(rows)
        ),
        encoding="utf-8",
    )
    result = run_crowdflower(path, settings=settings)
    assert result["queries"] == 2 and result["judged_pairs"] == 5
    assert set(result["systems"]) == {"shopassist", "bm25", "random"}
    assert result["systems"]["shopassist"]["nDCG@10"] > 0.95


def test_query_understanding_answer_sets_come_from_the_task_definition() -> None:
    from evals.query_understanding import options

    itc = {
        "task": "ITC",
        "system_prompt": "已知query候选意图有'买什么（如场景买什么品类）、怎么办（如场景下怎么办）、怎么挑/怎么买'，输出意图。",
        "prompt": "***query***：宽带灯不亮\n***答案***：",
    }
    assert options(itc) == ["买什么", "怎么办", "怎么挑/怎么买"]
    rlc = {"task": "RLC", "system_prompt": "已知query和商品相关性分为两档，分别为不相关、相关，定义如下", "prompt": "x"}
    assert options(rlc) == ["不相关", "相关"]
    cc = {"task": "CC", "system_prompt": "", "prompt": "***商品标题***：x\n候选细粒度品类：腿包,胸包\n***答案***："}
    assert options(cc) == ["腿包", "胸包"]
    assert options({"task": "CC", "system_prompt": "", "prompt": "商品海尔 X1是电蒸箱吗？\n***答案***："}) == [
        "是",
        "否",
    ]
    ac = options(
        {"task": "AC", "system_prompt": "", "prompt": "***query***：儿童泡沫垫\n***属性***：材质\n***答案***："}
    )
    assert ac is not None and "泡沫" in ac and "儿童泡沫垫" in ac and all(a in "儿童泡沫垫" for a in ac)
    assert options({"task": "SC", "system_prompt": "纠错", "prompt": "***query***：德运训鞋"}) is None

"""The dialogue format's keys on the agent's ``TurnResult`` (``evals.dialogues``) and the static
checker's rules for them (``evals.suite_check``) on a tiny synthetic suite. No stack, no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.events import DIALOGUE_ACTS, TurnResult
from evals.dialogues import (
    EXPECT_KEYS,
    answer_ok,
    check_result,
    check_turn,
    default_suite,
    demo_suites,
    resolve_suites,
)
from evals.suite_check import check_suite
from evals.suite_check.catalogs import DEMO_CATALOG, resolve_catalog
from evals.suite_check.expectations import DIALOGUE_ACTS as CHECKER_ACTS
from evals.suite_check.expectations import EXPECT_KEYS as CHECKER_KEYS
from shopassist.errors import UsageError
from shopassist.models import Product

BOOT = Product(id="b1", title="达芙妮马丁靴 粗跟 黑色", brand="Daphne/达芙妮", category="鞋 > 马丁靴", price=289.9)
BOOT2 = Product(id="b2", title="达芙妮切尔西靴 粗跟", brand="Daphne/达芙妮", category="鞋 > 马丁靴", price=379.9)


def _result(
    reply: str = "", act: str = "new", products: list[str] | None = None, alternatives: list[str] | None = None
) -> TurnResult:
    return TurnResult(
        session_id="s",
        message="m",
        intent={},
        intent_source="rules",
        constraints={},
        act=act,
        reply=reply,
        products=products or [],
        alternatives=alternatives or [],
    )


def test_the_runner_and_the_checker_know_the_same_keys_and_acts() -> None:
    assert set(EXPECT_KEYS) == set(CHECKER_KEYS)
    assert tuple(CHECKER_ACTS) == tuple(DIALOGUE_ACTS)


def test_reply_keys_on_a_turn_result() -> None:
    expect = {"reply_contains": ["没有", "暂无"], "reply_excludes": ["放宽价格"], "act": "new", "max_results": 0}
    honest = _result("抱歉，暂无 tasman 蛋糕鞋。可以看看雪地靴（替代）", alternatives=["x9"])
    assert check_result(honest, [], expect) == []  # labelled alternatives are not matches
    wrong = _result("为你找到：放宽价格可以看到更多", products=["b1"])
    problems = check_result(wrong, [BOOT], expect)
    assert any(p.startswith("reply_contains") for p in problems)
    assert any(p.startswith("reply_excludes") for p in problems)
    assert any(p.startswith("max_results 0: shown 1") for p in problems)
    assert check_result(_result("没有", act="question"), [], {"act": ["new", "refine"]}) == [
        "act: read as 'question', expected new/refine"
    ]


def test_answers_are_case_insensitive_and_counted_apart() -> None:
    expect = {"answer": ["SPF50"], "act": "question"}
    assert answer_ok("这款防晒 spf50+，适合户外", expect) is True
    assert answer_ok("记录里没有写防晒指数", expect) is False
    assert answer_ok("whatever", {"act": "question"}) is None  # no answer asked for
    assert check_result(_result("spf50", act="question"), [], expect) == []
    assert check_result(_result("不清楚", act="question"), [], expect) == ["answer: the reply does not state ['SPF50']"]


def test_not_shown_before_compares_with_the_previous_turn() -> None:
    expect = {"not_shown_before": True, "min_results": 1}
    assert check_result(_result(products=["b2"]), [BOOT2], expect, previous=["b1"]) == []
    again = check_result(_result(products=["b1", "b2"]), [BOOT, BOOT2], expect, previous=["b1"])
    assert again == ["not_shown_before: shown again ['b1']"]


def test_the_existing_keys_keep_their_meaning() -> None:
    expect = {"all_match": {"text_contains": ["粗跟"], "price_max": 300}, "min_results": 1}
    assert check_turn([BOOT], expect) == []
    assert check_turn([BOOT, BOOT2], expect) == ["all_match: b2 fails price_max"]
    assert check_turn([], {"min_results": 1}) == ["min_results 1: shown 0"]
    with pytest.raises(UsageError):
        check_turn([BOOT], {"reply": "x"})


def test_suites_resolve_by_name_file_or_folder(tmp_path: Path) -> None:
    assert resolve_suites("project") == [default_suite()]
    if demo_suites():
        assert resolve_suites("demo") == demo_suites()
    (tmp_path / "a.jsonl").write_text("", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text("", encoding="utf-8")
    assert resolve_suites(tmp_path) == [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    assert resolve_suites(tmp_path / "a.jsonl") == [tmp_path / "a.jsonl"]
    with pytest.raises(UsageError):
        resolve_suites(tmp_path / "missing.jsonl")


# -- the checker ---------------------------------------------------------------------------------
def _product(pid: str, title: str, price: float, **attrs: str) -> dict:
    return {
        "id": pid,
        "title": title,
        "description": title,
        "brand": "品牌",
        "category": "鞋 > 马丁靴",
        "price": price,
        "currency": "CNY",
        "stock": 5,
        "attributes": attrs or {"颜色": "黑色"},
        "tags": [],
        "language": "zh",
    }


CATALOG = [
    _product("p1", "达芙妮马丁靴 粗跟 加绒", 289.9, 鞋跟款式="粗跟"),
    _product("p2", "达芙妮马丁靴 切尔西 加绒", 299.9, 鞋跟款式="粗跟"),
    _product("p3", "马丁靴女 平底", 99.9, 鞋跟款式="平跟"),
    *[_product(f"q{i}", f"雪地靴 {i}", 100.0 + i) for i in range(24)],
]


def _check(tmp_path: Path, turns: list[dict], tags: list[list[str]]) -> list[str]:
    (tmp_path / "cat.jsonl").write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in CATALOG), "utf-8")
    suite = tmp_path / "s.jsonl"
    suite.write_text(json.dumps({"id": "d", "catalog": "cat.jsonl", "turns": turns}, ensure_ascii=False), "utf-8")
    labels = tmp_path / "s.labels.json"
    labels.write_text(json.dumps({"d": {"lang": "zh", "turns": tags}}), "utf-8")
    rep, _ = check_suite(suite, labels, verbose=False)
    return rep.errors


DAPHNE = {"all_match": {"text_contains": ["达芙妮"]}, "min_results": 2, "act": "new"}


def test_a_sound_synthetic_suite_passes(tmp_path: Path) -> None:
    turns = [
        {"user": "达芙妮马丁靴", "expect": DAPHNE},
        {"user": "是粗跟吗", "expect": {"act": "question", "answer": "粗跟"}},  # reply-only: not vacuous
        {"user": "保修几年", "expect": {"act": "question", "reply_contains": ["没有提到", "未注明"]}},
        {"user": "第一个和第三个比一下", "expect": {"act": "compare", "reply_contains": ["只有"]}},
    ]
    tags = [["category_first"], ["product_question"], ["not_in_record:保修|质保"], ["missing_reference:3"]]
    assert _check(tmp_path, turns, tags) == []


def test_the_checker_proves_answers_absences_and_references(tmp_path: Path) -> None:
    turns = [
        {"user": "马丁靴女", "expect": {"all_match": {"text_contains": ["马丁靴"]}, "min_results": 3}},
        {"user": "是粗跟吗", "expect": {"act": "question", "answer": "粗跟"}},  # p3 is flat: not every record says it
        {"user": "平底吗", "expect": {"act": "question", "reply_contains": ["未注明"]}},
        {"user": "第三个呢", "expect": {"act": "pick", "reply_contains": ["只有"]}},
    ]
    tags = [["category_first"], ["product_question"], ["not_in_record:平底"], ["missing_reference:3"]]
    errors = _check(tmp_path, turns, tags)
    assert any("answer ['粗跟'] is not in the record of 1 of the 3" in e for e in errors)
    assert any("not_in_record ['平底'], but these records say it: ['p3']" in e for e in errors)
    assert any("missing_reference:3, but 3 products may have been shown" in e for e in errors)


def test_the_checker_validates_the_new_keys(tmp_path: Path) -> None:
    turns = [
        {"user": "tasman蛋糕鞋", "expect": {"all_match": {"text_contains": ["雪地靴"]}, "max_results": 0}},
        {"user": "x", "expect": {"act": "buy", "answer": [], "reply_contains": "没有", "not_shown_before": False}},
        {"user": "y", "expect": {"max_results": 7, "min_results": 2, "reply_excludes": ["没有"], "answer": "没有"}},
    ]
    errors = _check(tmp_path, turns, [["not_carried"], [], []])
    assert any("nothing may be shown but the catalog has" in e for e in errors)
    assert any("act must be one of" in e for e in errors)
    assert any("answer must be a non-empty string" in e for e in errors)
    assert any("reply_contains must be a non-empty list" in e for e in errors)
    assert any("not_shown_before must be true" in e for e in errors)
    assert any("max_results must be an integer 0..5" in e for e in errors)
    assert any("reply_excludes rules out every way of meeting answer" in e for e in errors)


def test_show_more_needs_enough_products_beyond_the_first_five(tmp_path: Path) -> None:
    more = {"all_match": {"text_contains": ["达芙妮"]}, "min_results": 1, "act": "more", "not_shown_before": True}
    turns = [{"user": "达芙妮马丁靴", "expect": DAPHNE}, {"user": "还有吗", "expect": more}]
    errors = _check(tmp_path, turns, [["category_first"], ["show_more"]])
    assert any("not_shown_before with min_results 1: 2 in-stock products" in e for e in errors)


def test_demo_names_the_bundled_catalog(tmp_path: Path) -> None:
    assert resolve_catalog(tmp_path / "s.jsonl", "demo") == DEMO_CATALOG
    assert DEMO_CATALOG.exists()
    assert resolve_catalog(tmp_path / "s.jsonl", "catalogs/x.jsonl") == tmp_path / "catalogs" / "x.jsonl"

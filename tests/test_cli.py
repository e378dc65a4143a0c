"""The shopassist command line, as a user runs it."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ui.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture()
def run(tmp_path):
    runner = CliRunner()
    home = str(tmp_path / "home")

    def invoke(*args, input=None):
        return runner.invoke(main, [*args, "--home", home], input=input, catch_exceptions=False)

    return invoke


def test_ingest_search_delete_round_trip(run, sample_file):
    res = run("catalog", "ingest", str(sample_file), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["added"] == 10 and summary["rejected"] == 0

    res = run("search", "waterproof boots", "--max-price", "100", "--exclude-brand", "Summit", "--json")
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    assert rows and rows[0]["id"] == "b1"
    assert {"id", "title", "price", "currency", "score"} <= set(rows[0])
    assert all(r["price"] <= 100 for r in rows)

    res = run("search", "牛仔裤", "--category", "服饰 > 女装", "--in-stock", "--json")
    assert {r["id"] for r in json.loads(res.stdout)} == {"j1", "j2"}

    res = run("catalog", "delete", "j1", "zz", "--json")
    assert json.loads(res.stdout) == {"deleted": ["j1"], "not_found": ["zz"]}
    res = run("search", "牛仔裤", "--json")
    assert "j1" not in {r["id"] for r in json.loads(res.stdout)}

    res = run("search", "牛仔裤")
    assert "CNY" in res.stdout and "牛仔裤" in res.stdout


def test_usage_errors_exit_2_with_a_message(run, tmp_path):
    res = run("catalog", "ingest", str(tmp_path / "missing.jsonl"))
    assert res.exit_code == 2 and "does not exist" in res.stderr
    res = run("search", "x", "--min-price", "10", "--max-price", "1")
    assert res.exit_code == 2 and "above max_price" in res.stderr
    res = run("search", "x")
    assert res.exit_code == 2 and "catalog ingest" in res.stderr


def test_ask_then_edit_the_parsed_need_from_the_command_line(run, sample_file):
    assert run("catalog", "ingest", str(sample_file)).exit_code == 0
    first = run("ask", "running shoes", "--session", "e1", "--no-llm", "--json")
    assert first.exit_code == 0, first.stderr
    res = run("edit", "--session", "e1", "--price-max", "50", "--no-llm", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["intent"]["max_price"] == 50
    shown = run("edit", "--session", "e1", "--show")
    assert json.loads(shown.stdout)["max_price"] == 50
    bad = run("edit", "--session", "e1", "--price-min", "90", "--price-max", "10", "--no-llm")
    assert bad.exit_code == 2 and "above max_price" in bad.stderr
    empty = run("edit", "--session", "e1", "--no-llm")
    assert empty.exit_code == 2 and "Nothing to edit" in empty.stderr


def test_events_from_the_command_line_and_a_file_with_bad_lines(run, tmp_path):
    ok = run("event", "--session", "c1", "--type", "click", "--product", "j1", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["accepted"] == 1
    bad = run("event", "--session", "c1", "--type", "click", "--json")
    assert bad.exit_code == 1 and "needs a product_id" in bad.stdout
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"session_id": "c2", "type": "search", "query": "boots"}\n'
        "not json\n"
        '{"session_id": "c2", "type": "add_to_cart", "product_id": "b1"}\n'
        '{"session_id": "c2", "type": "wish", "product_id": "b1"}\n',
        encoding="utf-8",
    )
    res = run("event", "--file", str(events), "--json")
    out = json.loads(res.stdout)
    assert res.exit_code == 0 and out["accepted"] == 2 and out["events_in_log"] == 3
    assert [r["line"] for r in out["rejected"]] == [2, 4] and "not JSON" in out["rejected"][0]["reason"]
    assert run("event").exit_code == 2


def test_the_ui_refuses_to_start_on_an_empty_catalog_with_the_reason(run, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    res = run("ui", "--no-llm", "--catalog", str(empty), "--port", "7999")
    assert res.exit_code == 2
    assert "no products found" in res.output and "needs a catalog" in res.output


def test_ask_prints_each_grounded_line_as_it_comes_then_the_rest(run, sample_file, monkeypatch):
    import sys

    import ui.cli.chat as chat
    from assistant.llm.testing import ScriptedLLM

    printed_before_line_two: list[str] = []

    def second():  # the model is asked for the second product's line only after the first one
        sys.stdout.flush()
        printed_before_line_two.append(sys.stdout.buffer.getvalue().decode())  # what the shopper sees by now
        yield "[2] 宽松直筒，日常百搭。\n"

    real = chat.build_stack
    llm = ScriptedLLM(stream=["[1] 高腰修身，显腿长。\n", second()])
    monkeypatch.setattr(chat, "build_stack", lambda settings, llm_=None, **kw: real(settings, **{**kw, "llm": llm}))
    assert run("catalog", "ingest", str(sample_file)).exit_code == 0
    res = run("ask", "牛仔裤", "--session", "c1", "--no-llm")
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert out.startswith("为你找到") and "\n1. " in out and "\n2. " in out
    assert out.count("1. ") == 1 and out.endswith("\n")
    # the first line was on the screen before the model wrote the second
    assert printed_before_line_two and "1. " in printed_before_line_two[0] and "2. " not in printed_before_line_two[0]
    assert out.startswith(printed_before_line_two[0])


def test_model_status_and_stop_show_and_end_the_shared_model_server(run, tmp_path):
    from assistant.llm import DEFAULT_ALIAS, daemon

    home = tmp_path / "home"
    res = run("model", "status")
    assert res.exit_code == 0 and "no model server running" in res.stdout
    spec = daemon.ServerSpec("/models/m.gguf", "c" * 64, DEFAULT_ALIAS, 1, 2048, 2, 60.0)
    server = daemon.connect(spec, home, command=[*daemon.default_command(spec, home), "--stub"], start_timeout=20)
    try:
        res = run("model", "status")
        assert res.exit_code == 0 and server.base_url in res.stdout and "in use" in res.stdout
        assert f"pid {server.pid}" in res.stdout and "cccccccccccc" in res.stdout
        status = json.loads(run("model", "status", "--json").stdout)
        assert status["servers"][0]["alive"] and server.token not in json.dumps(status)  # the token stays private
    finally:
        server.stop()
    res = run("model", "stop")
    assert res.exit_code == 0 and f"pid {server.pid}: stopped" in res.stdout
    assert "no model server running" in run("model", "status").stdout
    res = run("model", "start", "--no-llm")
    assert res.exit_code == 2 and "embedded model" in res.stderr


def test_ask_says_so_when_the_reading_refines_the_products_after_the_first_lines(run, monkeypatch):
    import ui.cli.chat as chat
    from assistant.llm.testing import ScriptedLLM
    from evals.dialogues import default_suite

    apparel = Path(default_suite()).parent / "catalogs" / "apparel_zh.jsonl"
    reading = {"query": "夏天 连衣裙 雪纺 裙子", "category": None, "required": [], "excluded": []}
    llm = ScriptedLLM(
        structured=[reading], stream=["[1] 先写的一条", "[2] 先写的二条", "[1] 后写的一条", "[2] 后写的二条"]
    )
    real = chat.build_stack
    monkeypatch.setattr(chat, "build_stack", lambda settings, llm_=None, **kw: real(settings, **{**kw, "llm": llm}))
    assert run("catalog", "ingest", str(apparel)).exit_code == 0
    res = run("ask", "想买点夏天穿的", "--session", "r1", "--no-llm")
    assert res.exit_code == 0, res.stderr
    before, _, after = res.stdout.partition("更新了结果")
    assert "先写的一条" in before and "后写的一条" in after and "先写的" not in after
    assert after.count("1. ") == 1 and res.stdout.endswith("\n")

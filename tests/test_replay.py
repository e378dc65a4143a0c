"""Replay and diff: real traffic through the product's search, compared run against run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from evals.replay import diff_runs, overlap_at, rank_shift, read_queries
from ui.cli import main

pytestmark = pytest.mark.integration


def test_overlap_and_rank_shift_golden_values():
    a = [f"p{i}" for i in range(10)]
    b = ["p1", "p0", "x", *[f"p{i}" for i in range(2, 9)]]
    assert overlap_at(a, b) == 0.9  # p9 dropped, x new
    # p0 and p1 swap (1 each), p2..p8 move down one (1 each): mean 1.0
    assert rank_shift(a, b) == 1.0
    assert overlap_at([], []) == 1.0 and rank_shift(["a"], ["b"]) is None


def test_query_logs_in_three_formats(tmp_path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("7\t牛仔裤 女\n8\tboots\n", encoding="utf-8")
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"qid": "a", "query": "面霜"}\n\n{"query": "boots"}\n', encoding="utf-8")
    plain = tmp_path / "q.txt"
    plain.write_text("mascara\n", encoding="utf-8")
    assert read_queries(tsv) == [("7", "牛仔裤 女"), ("8", "boots")]
    assert read_queries(jsonl) == [("a", "面霜"), ("3", "boots")]
    assert read_queries(plain) == [("1", "mascara")]


def test_replay_resumes_and_diff_finds_what_a_catalog_change_moved(tmp_path, sample_file):
    runner = CliRunner()
    home = str(tmp_path / "home")

    def run(*args):
        res = runner.invoke(main, [*args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res

    run("catalog", "ingest", str(sample_file), "--home", home)
    queries = tmp_path / "queries.tsv"
    queries.write_text("1\t牛仔裤 女\n2\thiking boots\n3\t面霜\n4\tmascara\n", encoding="utf-8")
    a = tmp_path / "run-a"
    first = json.loads(
        run(
            "eval", "replay", "--queries", str(queries), "--limit", "4", "--out", str(a), "--home", home, "--json"
        ).stdout
    )
    assert first["replayed_now"] == 4
    again = json.loads(
        run(
            "eval", "replay", "--queries", str(queries), "--limit", "4", "--out", str(a), "--home", home, "--json"
        ).stdout
    )
    assert again["replayed_now"] == 0  # resumed: nothing left to do
    assert len((a / "run.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    manifest = json.loads((a / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["catalog_snapshot"] and manifest["versions"]["python"]

    # a new product that matches one query changes that query's results, and only the catalog changed
    new = tmp_path / "new.jsonl"
    new.write_text(
        json.dumps({"id": "b9", "title": "Hiking Boots Pro, waterproof hiking boots"}) + "\n", encoding="utf-8"
    )
    run("catalog", "ingest", str(new), "--home", home)
    b = tmp_path / "run-b"
    run("eval", "replay", "--queries", str(queries), "--limit", "4", "--out", str(b), "--home", home, "--json")
    diff = diff_runs(a, b)
    assert diff["a"]["catalog_snapshot"] != diff["b"]["catalog_snapshot"]
    assert diff["common_queries"] == 4 and diff["overlap_at_10"] < 1.0
    changed = {row["query"]: row for row in diff["changed_most"]}
    assert "b9" in changed["hiking boots"]["b_top3"] and "b9" not in changed["hiking boots"]["a_top3"]
    text = run("eval", "diff", str(a), str(b)).stdout
    assert "overlap@10" in text and "hiking boots" in text


def test_a_resume_with_other_settings_is_refused(tmp_path, sample_file):
    runner = CliRunner()
    home = str(tmp_path / "home")
    runner.invoke(main, ["catalog", "ingest", str(sample_file), "--home", home], catch_exceptions=False)
    queries = tmp_path / "queries.txt"
    queries.write_text("boots\njeans\nmascara\n", encoding="utf-8")
    out = str(tmp_path / "run")
    ok = runner.invoke(
        main, ["eval", "replay", "--queries", str(queries), "--limit", "2", "--out", out, "--home", home]
    )
    assert ok.exit_code == 0
    bad = runner.invoke(
        main, ["eval", "replay", "--queries", str(queries), "--limit", "3", "--out", out, "--home", home]
    )
    assert bad.exit_code == 2 and "other settings" in bad.output

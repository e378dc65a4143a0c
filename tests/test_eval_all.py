"""`shopassist eval all` on small data: every suite's result lands in its own file, the report is
written as JSON and self-contained HTML with plots, a stopped run resumes, missing data skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.all import run_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture()
def shared(tmp_path: Path) -> Path:
    root = tmp_path / "shared"
    (root / "querylogs").mkdir(parents=True)
    (root / "querylogs" / "multicpr_ecom_train_queries.tsv").write_text(
        "1\t牛仔裤 女\n2\t面霜\n3\thiking boots\n4\t羽绒服\n", encoding="utf-8"
    )
    digi = root / "sessions" / "diginetica"
    digi.mkdir(parents=True)
    with open(digi / "train_sessions.jsonl", "w", encoding="utf-8") as handle:
        for k in range(300):
            start = 1 + k % 20
            handle.write(json.dumps({"items": [start, start % 20 + 1, (start + 1) % 20 + 1]}) + "\n")
    with open(digi / "test_prefixes.jsonl", "w", encoding="utf-8") as handle:
        for start in range(1, 21):
            handle.write(json.dumps({"prefix": [start], "next": start % 20 + 1}) + "\n")
    return root


def test_report_with_plots_resume_and_skips(tmp_path, shared, settings, monkeypatch):
    pytest.importorskip("torch")
    logs: list[str] = []
    out = tmp_path / "report"
    report = run_all(
        out,
        shared=shared,
        settings=settings,
        suites=("retrieval", "sessions", "replay", "dialogues"),
        dialogue_limit=2,
        session_sample=0,
        session_epochs=2,
        replay_limit=4,
        progress=False,
        log=logs.append,
    )
    suites = report["suites"]
    assert "data not found" in suites["retrieval"]["skipped"]  # no Multi-CPR pool in this shared folder
    assert suites["sessions"]["results"]["statistics"]["P@20"] > 90
    assert suites["replay"]["queries"] == 4 and len(suites["replay"]["search_ms"]) == 4
    assert suites["dialogues"]["turns"] > 0
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["manifest"]["versions"]["python"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert (page.count("data:image/png;base64,") >= 2 and "Diginetica P@20" not in page) or "<img" in page
    assert ("SR-GNN" in page and "search latency" not in page) or "<img" in page

    # a second run resumes: nothing is run again
    logs.clear()
    run_all(out, shared=shared, settings=settings, suites=("sessions", "replay"), progress=False, log=logs.append)
    assert all("kept" in line for line in logs)

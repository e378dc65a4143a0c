"""Catalog ingest: every bad row reported with line and reason, every good row lands."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from retrieval import Catalog, ingest_file
from retrieval.store import ProductStore

pytestmark = pytest.mark.integration

GOOD = {"id": "g1", "title": "保温杯 316不锈钢", "price": 59, "stock": 3}


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_bad_rows_are_rejected_with_line_and_reason(tmp_path, catalog):
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            json.dumps(GOOD, ensure_ascii=False),
            '{"id": "x", "title": "broken json',  # line 2
            json.dumps({"title": "no id"}),  # line 3
            json.dumps({"id": "n1", "title": "负价格", "price": -1}),  # line 4
            json.dumps({"id": "t1", "title": "错类型", "stock": "many"}),  # line 5
            "",
            json.dumps({"id": "g2", "title": "Stainless steel bottle", "price": 19.5, "currency": "USD"}),  # line 7
            "[1, 2]",  # line 8
        ],
    )
    report = ingest_file(catalog, path)
    assert (report.added, report.rejected) == (2, 5)
    by_line = {r.line: r.reason for r in report.rejects}
    assert set(by_line) == {2, 3, 4, 5, 8}
    assert "invalid JSON" in by_line[2]
    assert "id: is required" in by_line[3]
    assert "must not be negative" in by_line[4]
    assert by_line[5].startswith("stock:")
    assert "expected a JSON object" in by_line[8]
    # the rejects file holds the same rows, with their raw text
    with open(report.rejects_file, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    assert [r["line"] for r in rows] == [2, 3, 4, 5, 8]
    assert catalog.get("g1").price == 59 and catalog.get("g2").currency == "USD"


def test_reingest_changes_nothing_and_updates_are_counted(tmp_path, catalog, sample_file):
    first = ingest_file(catalog, sample_file)
    assert first.added == 10 and first.rejected == 0
    seq = catalog.store.seq()
    again = ingest_file(catalog, sample_file)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 10)
    assert catalog.store.seq() == seq  # nothing written at all
    changed = tmp_path / "changed.jsonl"
    changed.write_text(
        json.dumps({"id": "j1", "title": "高腰修身牛仔裤女 黑色", "price": 199}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    third = ingest_file(catalog, changed)
    assert third.updated == 1 and catalog.get("j1").price == 199


def test_csv_and_json_array(tmp_path, catalog):
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(
        "id,title,price,currency,stock,brand,attr:颜色,tags\n"
        "c1,羊毛围巾 女,129,CNY,4,例牌,红色|灰色,冬季|保暖\n"
        "c2,,10,CNY,1,,,\n"
        "c3,Wool scarf,-5,USD,1,,,\n"
        "c4,Cotton socks,3.5,USD,x,,,\n",
        encoding="utf-8",
    )
    report = ingest_file(catalog, csv_path)
    assert report.added == 1 and report.rejected == 3
    assert {r.line for r in report.rejects} == {3, 4, 5}
    c1 = catalog.get("c1")
    assert c1.attributes == {"颜色": ["红色", "灰色"]} and c1.tags == ["冬季", "保暖"]

    json_path = tmp_path / "items.json"
    json_path.write_text(
        '{"products": [\n  {"id": 1, "title": "Phone case", "price": 5},\n  {"id": 2, "price": 5},\n  "oops"\n]}',
        encoding="utf-8",
    )
    report = ingest_file(catalog, json_path)
    assert report.added == 1 and report.rejected == 2
    assert {r.line for r in report.rejects} == {3, 4}


def test_json_syntax_error_keeps_rows_before_it(tmp_path, catalog):
    path = tmp_path / "broken.json"
    path.write_text('[\n{"id": "a", "title": "first"},\n{"id": "b", "title": "second",,}\n]', encoding="utf-8")
    report = ingest_file(catalog, path)
    assert report.added == 1
    assert report.rejects[0].line == 3 and "could not be read" in report.rejects[0].reason


def _committed_rows(db) -> int:
    """Rows another process has committed, read without writing anything (0 before its schema exists)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM products WHERE deleted=0").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_kill_9_mid_ingest_loses_no_committed_row(tmp_path, settings):
    """A killed ingest keeps every committed batch; the rerun completes the rest."""
    path = tmp_path / "many.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(1200):
            handle.write(
                json.dumps({"id": f"p{i}", "title": f"测试商品 {i} 号 保温杯", "price": i % 97 + 1}, ensure_ascii=False)
                + "\n"
            )
    env = {**os.environ, "SHOPASSIST_HOME": str(settings.home)}
    log = (tmp_path / "ingest.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "catalog", "ingest", str(path), "--batch-size", "50", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    committed = 0
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        # read-only: opening a ProductStore here would create the schema while the ingest does
        committed = _committed_rows(settings.catalog_db)
        if committed >= 100:
            break
        time.sleep(0.05)
    log.close()
    assert proc.poll() is None, (
        "ingest ended before it could be killed: " + (tmp_path / "ingest.log").read_text()[-1500:]
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert committed >= 100
    after_kill = ProductStore(settings.catalog_db).count()
    assert after_kill >= committed and after_kill % 50 == 0  # whole batches only
    assert after_kill < 1200
    catalog = Catalog(settings)
    report = ingest_file(catalog, path)
    assert report.unchanged == after_kill and report.added == 1200 - after_kill
    assert len(catalog) == 1200 and catalog.vectors.count() == 1200

"""Hostile catalog files and stored rows: every bad row is reported with its line and reason,
every good row lands, and no single stored value can stop the service."""

import json
import logging
import sqlite3
import time

import numpy as np
import pytest
from click.testing import CliRunner

from retrieval import Catalog, HybridRetriever, ingest_file
from retrieval.mirror import Mirror
from shopassist.models import Product
from ui.cli import main

pytestmark = pytest.mark.integration

MAX_STOCK = 10**12  # the largest stock a product may hold (shopassist.models.MAX_STOCK)
GOOD = {"id": "g1", "title": "保温杯 316不锈钢", "price": 59, "stock": 3}
GOOD2 = {"id": "g2", "title": "Stainless steel bottle", "price": 19.5, "currency": "USD"}


def jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def reasons(report):
    return {r.line: r.reason for r in report.rejects}


# -- 1. one row must not take the home down --------------------------------------------------------------
def test_a_stock_the_store_cannot_hold_is_rejected_at_the_door_and_good_rows_land(tmp_path, catalog):
    path = jsonl(
        tmp_path / "huge.jsonl",
        [
            GOOD,
            {"id": "n1", "title": "x", "stock": 100000000000000000000},  # line 2
            {"id": "n2", "title": "x", "price": 1e300},  # line 3
            {"id": "n3", "title": "x", "stock": MAX_STOCK},  # line 4: the largest allowed stock
            GOOD2,
        ],
    )
    report = ingest_file(catalog, path)
    assert (report.added, report.rejected) == (3, 2)
    assert "stock must be at most 1,000,000,000,000" in reasons(report)[2]
    assert reasons(report)[3].startswith("price: price must be at most")
    assert catalog.get("n1") is None and catalog.get("n3").stock == MAX_STOCK
    # the home still works: get, search, a second ingest
    assert catalog.get("g1").price == 59
    assert HybridRetriever(catalog).search("保温杯", top_k=3)[0].product.id == "g1"
    assert ingest_file(catalog, path).unchanged == 3


def _write_raw_row(db, pid, data, tokens="x"):
    """A row as an older version (or a hand edit) could have stored it: no validation at all."""
    with sqlite3.connect(db) as conn:
        seq = int(conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]) + 1
        conn.execute(
            "INSERT OR REPLACE INTO products(id, data, tokens, hash, seq, deleted) VALUES (?, ?, ?, 'h', ?, 0)",
            (pid, data, tokens, seq),
        )
        conn.execute("UPDATE meta SET value=? WHERE key='seq'", (str(seq),))


def test_a_stored_row_that_does_not_validate_never_stops_loading_search_or_stats(settings, catalog, caplog, tmp_path):
    catalog.upsert([Product.model_validate(GOOD), Product.model_validate(GOOD2)])
    db = settings.catalog_db
    _write_raw_row(db, "n1", json.dumps({"id": "n1", "title": "x", "stock": 10**20}))  # OverflowError before
    _write_raw_row(db, "n2", '{"id": "n2", "title": ')  # not even JSON
    _write_raw_row(db, "n3", json.dumps({"id": "n3", "title": "x", "brand": "b" * 1_000_000}))  # over a limit now
    _write_raw_row(db, "n4", json.dumps({"id": "other", "title": "x"}))  # the record's id is not the row's
    bad = {"n1", "n2", "n3", "n4"}

    # the process that already had the catalog loaded picks the change up incrementally
    with caplog.at_level(logging.WARNING, logger="retrieval.catalog"):
        assert len(catalog) == 2
    assert "4 catalog row(s)" in caplog.text and "cannot be read" in caplog.text
    assert set(catalog.unreadable) == bad and "stock" in catalog.unreadable["n1"]
    assert HybridRetriever(catalog).search("bottle", top_k=2)[0].product.id == "g2"

    # a fresh process loads the whole catalog around them
    fresh = Catalog(settings, embedder=catalog.embedder)
    assert len(fresh) == 2 and fresh.get("g1").title == GOOD["title"] and fresh.get("n1") is None
    assert set(fresh.unreadable) == bad
    assert HybridRetriever(fresh).search("保温杯", top_k=1)[0].product.id == "g1"
    assert {p.id for p in fresh.store.iter_products()} == {"g1", "g2"}
    assert fresh.store.get("n1") is None

    # the command line: stats and get work, and say what is wrong
    runner = CliRunner()
    res = runner.invoke(main, ["catalog", "stats", "--json", "--home", str(settings.home)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["products"] == 2 and json.loads(res.stdout)["unreadable_rows"] == 4
    res = runner.invoke(main, ["catalog", "get", "n1", "--home", str(settings.home)], catch_exceptions=False)
    assert res.exit_code == 2 and "cannot be read" in res.stderr and "catalog delete n1" in res.stderr

    # deleting (or re-ingesting) a bad row clears it
    fresh.delete(["n1"])
    assert "n1" not in fresh.unreadable
    ingest_file(fresh, jsonl(tmp_path / "fix.jsonl", [{"id": "n2", "title": "fixed"}]))
    assert fresh.get("n2").title == "fixed" and set(fresh.unreadable) == {"n3", "n4"}


def test_the_mirror_refuses_a_value_it_cannot_hold_without_changing_anything():
    mirror = Mirror(0.3, 0.5)
    mirror.put(Product(id="a", title="first", stock=1), ["first"])
    broken = Product.model_construct(id="a", title="second", stock=10**20, price=None, currency="CNY")
    with pytest.raises(ValueError, match="stock"):
        mirror.put(broken, ["second"])
    assert mirror.products["a"].title == "first" and mirror.stock[mirror.bm25.slot("a")] == 1
    mirror.put(Product(id="b", title="b"), ["b"], np.ones(4, dtype=np.float32))
    mirror.put(Product(id="c", title="c"), ["c"], np.ones(3, dtype=np.float32))  # wrong size: left out
    assert mirror.has_vector[mirror.bm25.slot("b")] and not mirror.has_vector[mirror.bm25.slot("c")]


# -- 2. unbounded text ----------------------------------------------------------------------------------
def test_oversized_free_text_is_rejected_with_line_and_reason(tmp_path, catalog):
    path = jsonl(
        tmp_path / "big.jsonl",
        [
            GOOD,
            {"id": "b1", "title": "x", "brand": "b" * 1_000_000},  # line 2
            {"id": "b2", "title": "x", "category": "c" * 5000},  # line 3
            {"id": "b3", "title": "x", "attributes": {"颜色": "红" * 5000}},  # line 4
            {"id": "b4", "title": "x", "tags": ["t"] * 5000},  # line 5
            {"id": "b5", "title": "x", "notes": "n" * 100_000},  # line 6: an unknown field
            GOOD2,
        ],
    )
    started = time.perf_counter()
    report = ingest_file(catalog, path)
    assert time.perf_counter() - started < 30
    assert (report.added, report.rejected) == (2, 5)
    by_line = reasons(report)
    assert by_line[2] == "brand: String should have at most 200 characters"
    assert by_line[3].startswith("category:")
    assert "attribute '颜色'" in by_line[4] and "at most 1,000" in by_line[4]
    assert by_line[5] == "tags: 5,000 tags; at most 100 are allowed"
    assert "at most 65,536" in by_line[6]
    # the report keeps the start of a rejected row, not the megabyte
    assert all(len(r.raw) <= 2000 for r in report.rejects)


def test_a_csv_field_over_the_csv_module_limit_is_one_rejected_row(tmp_path, catalog):
    path = tmp_path / "wide.csv"
    path.write_text(
        "id,title,brand,description\n"
        f"c1,first,{'b' * 200_000},\n"  # over csv's default 131,072-character field limit
        "c2,second,Acme,\n"
        f"c3,third,Acme,{'d' * 3_000_000}\n"  # over what the reader takes at all
        "c4,fourth,Acme,fine\n",
        encoding="utf-8",
    )
    report = ingest_file(catalog, path)
    assert {p for p in ("c1", "c2", "c3", "c4") if catalog.get(p)} == {"c2", "c4"}
    by_line = reasons(report)
    assert set(by_line) == {2, 4}
    assert by_line[2] == "brand: String should have at most 200 characters"
    assert "field larger than field limit" in by_line[4]


# -- 3. encodings and file shapes -------------------------------------------------------------------
def test_a_line_that_is_not_utf8_is_rejected_with_its_line(tmp_path, catalog):
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(
        json.dumps(GOOD, ensure_ascii=False).encode()
        + b'\n{"id": "u1", "title": "broken \xff byte"}\n'
        + '{"id": "u2", "title": "你好"}\n'.encode("gbk")
        + b'{"id": "u3", "title": "fine"}\n'
    )
    report = ingest_file(catalog, path)
    assert report.added == 2 and catalog.get("u1") is None and catalog.get("u2") is None
    by_line = reasons(report)
    assert by_line[2].startswith("not UTF-8: byte 0xFF at column 31")
    assert by_line[3].startswith("not UTF-8") and "GBK" in by_line[3]
    assert all("\ufffd" not in p.title for p in catalog.products())
    # the rejects file is valid UTF-8 JSON with the bad bytes escaped
    with open(report.rejects_file, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    assert [r["line"] for r in rows] == [2, 3] and "\\udcff" in rows[0]["raw"]


def test_a_gbk_file_is_refused_whole_with_what_to_do_and_read_with_an_encoding(tmp_path, catalog):
    path = tmp_path / "gbk.csv"
    path.write_bytes("id,title,brand\nk1,保温杯 不锈钢,象印\nk2,Plain ASCII row,Acme\n".encode("gbk"))
    report = ingest_file(catalog, path)
    assert report.rows == 0 and len(catalog) == 0
    assert "looks GBK/GB18030-encoded" in report.fatal and "iconv -f GB18030 -t UTF-8" in report.fatal
    report = ingest_file(catalog, path, encoding="gb18030")
    assert report.added == 2 and catalog.get("k1").title == "保温杯 不锈钢" and catalog.get("k1").brand == "象印"

    res = CliRunner().invoke(
        main, ["catalog", "ingest", str(path), "--home", str(catalog.settings.home)], catch_exceptions=False
    )
    assert res.exit_code == 2 and "iconv -f GB18030 -t UTF-8" in res.stderr


def test_a_bom_is_accepted_in_jsonl_and_csv(tmp_path, catalog):
    path = tmp_path / "bom.jsonl"
    path.write_text("\ufeff" + json.dumps(GOOD, ensure_ascii=False) + "\n", encoding="utf-8")
    assert ingest_file(catalog, path).added == 1
    csv_path = tmp_path / "bom.csv"
    csv_path.write_text("\ufeffid,title\nb1,Bottle\n", encoding="utf-8")
    assert ingest_file(catalog, csv_path).added == 1 and catalog.get("b1").title == "Bottle"


def test_a_json_object_with_a_products_list_lands_and_one_without_is_reported(tmp_path, catalog):
    path = tmp_path / "wrapped.json"
    path.write_text(
        json.dumps({"type": "products", "version": [1, 0], "products": [GOOD, GOOD2, {"id": "x"}]}, indent=1)
    )
    report = ingest_file(catalog, path)
    assert (report.added, report.rejected) == (2, 1) and report.fatal is None
    assert "title: is required" in report.rejects[0].reason
    starts = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line == "  {"]
    assert len(starts) == 3 and report.rejects[0].line == starts[2]  # the line the element starts on

    empty = tmp_path / "meta.json"
    empty.write_text('{"type": "products", "version": [1, 0]}')
    report = ingest_file(catalog, empty)
    assert report.rows == 0 and 'no "products" list' in report.fatal and "'type', 'version'" in report.fatal


# -- 4. the smaller ones -----------------------------------------------------------------------------
def test_repeated_ids_are_reported_and_the_last_row_wins(tmp_path, catalog):
    path = jsonl(
        tmp_path / "dups.jsonl",
        [{"id": "d1", "title": "first"}, {"id": "d2", "title": "other"}, {"id": "d1", "title": "second"}],
    )
    report = ingest_file(catalog, path)
    assert [(d.line, d.id, d.first_line) for d in report.duplicates] == [(3, "d1", 1)]
    assert report.summary()["duplicates"] == 1 and catalog.get("d1").title == "second"
    # across batches too
    report = ingest_file(catalog, path, batch_size=1)
    assert len(report.duplicates) == 1 and catalog.get("d1").title == "second"

    res = CliRunner().invoke(
        main, ["catalog", "ingest", str(path), "--home", str(catalog.settings.home)], catch_exceptions=False
    )
    assert res.exit_code == 0 and "line 3: id 'd1' was already on line 1" in res.stderr


@pytest.mark.parametrize(
    ("name", "content"), [("empty.jsonl", ""), ("blank.json", "\n  \n"), ("head.csv", "id,title\n")]
)
def test_an_empty_file_is_reported_by_the_library_and_fails_the_command(tmp_path, catalog, name, content):
    path = tmp_path / name
    path.write_text(content)
    report = ingest_file(catalog, path)
    assert report.fatal and report.fatal.startswith(f"no products found in {path}")
    res = CliRunner().invoke(
        main, ["catalog", "ingest", str(path), "--home", str(catalog.settings.home)], catch_exceptions=False
    )
    assert res.exit_code == 2 and f"no products found in {path}" in res.stderr


def test_control_characters_are_stripped_from_text_and_refused_in_ids(tmp_path, catalog):
    path = jsonl(
        tmp_path / "ctl.jsonl",
        [
            {"id": "c1", "title": "保温\u0000杯\u001b[31m", "brand": "Ac\u0007me", "description": "a\nb\u0000c"},
            {"id": "c\u00002", "title": "x"},  # line 2
            {"id": "c3\n", "title": "x"},  # line 3: a trailing newline is whitespace, stripped like spaces
            {"id": "c 4\t", "title": "x\u0000", "tags": "a|\u0000|b"},
        ],
    )
    report = ingest_file(catalog, path)
    assert reasons(report) == {
        2: "id: id must not contain control characters (NUL, tab, line break, escape ...) or broken Unicode: "
        "fix the id in the source"
    }
    c1 = catalog.get("c1")
    assert (c1.title, c1.brand, c1.description) == ("保温杯[31m", "Acme", "a\nbc")
    assert catalog.get("c3") is not None and catalog.get("c 4").tags == ["a", "b"]


def test_broken_unicode_deep_nesting_and_giant_numbers_are_rows_not_crashes(tmp_path, catalog):
    path = jsonl(
        tmp_path / "odd.jsonl",
        [
            '{"id": "s1", "title": "lone \\ud800 surrogate", "note": "\\udfff"}',  # line 1: cleaned, lands
            "[" * 50_000,  # line 2
            '{"id": "n1", "title": "x", "weight": ' + "9" * 5000 + "}",  # line 3
            '{"id": "n2", "title": "x", "sale_count": "many"}',  # line 4: the sales sort reads it
            '{"id": "n3", "title": "x", "extra": 1e999}',  # line 5
            GOOD,
        ],
    )
    report = ingest_file(catalog, path)
    assert {p.id for p in catalog.products()} == {"s1", "g1"}
    by_line = reasons(report)
    assert set(by_line) == {2, 3, 4, 5}
    assert "nested too deeply" in by_line[2] and "4,300 digits" in by_line[3]
    assert "sale_count must be a number" in by_line[4] and "not finite" in by_line[5]
    assert catalog.get("s1").title == "lone  surrogate"


def test_a_file_of_garbage_is_counted_and_written_out_without_piling_up_in_memory(tmp_path, catalog):
    path = jsonl(tmp_path / "garbage.jsonl", ["not json"] * 3000 + [GOOD])
    report = ingest_file(catalog, path)
    assert (report.rejected, report.added, len(report.rejects)) == (3000, 1, 1000)
    with open(report.rejects_file, encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == 3000

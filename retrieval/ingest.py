"""Catalog files in, products out: JSONL, JSON (an array, or an object with a "products" array)
and CSV. Every bad row is reported with its line number and the reason, and every good row lands.

CSV columns map to product fields by name; ``attr:NAME`` columns (or an ``attributes`` column
holding a JSON object) become attributes; ``tags`` may be separated by ``|``, ``,`` or ``;``.

Rows are committed in batches (one SQLite transaction per batch, after their vectors are in
Chroma); the progress bar counts committed rows. Killed mid-way, a rerun skips what is already
there (same content hash) and completes the rest.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from retrieval.catalog import Catalog
from shopassist.errors import UsageError
from shopassist.models import Product

FORMATS = ("jsonl", "json", "csv")


@dataclass
class Reject:
    line: int
    reason: str
    raw: str

    def record(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "raw": self.raw[:2000]}


@dataclass
class IngestReport:
    file: str
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects: list[Reject] = field(default_factory=list)
    rejects_file: str | None = None
    seconds: float = 0.0
    fatal: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "rejects_file": self.rejects_file,
            "seconds": round(self.seconds, 3),
            "products_per_second": round((self.added + self.updated) / self.seconds, 1) if self.seconds else None,
            "fatal": self.fatal,
            "first_rejects": [r.record() for r in self.rejects[:20]],
        }


# -- readers: yield (line, dict) or (line, Reject) ---------------------------------------------------
Row = tuple[int, dict[str, Any] | Reject]


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise UsageError(f"Unknown catalog format {fmt!r}: use one of {', '.join(FORMATS)}.")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in ("json", "csv"):
        return suffix
    raise UsageError(f"Cannot tell the format of {path.name}: name it .jsonl, .json or .csv, or pass --format.")


def read_jsonl(path: Path) -> Iterator[Row]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, 1):
            text = line.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line_no, Reject(line_no, f"invalid JSON: {exc.msg} (column {exc.colno})", text)
                continue
            if not isinstance(obj, dict):
                yield line_no, Reject(line_no, f"expected a JSON object, got {type(obj).__name__}", text)
                continue
            yield line_no, obj


def read_json(path: Path) -> Iterator[Row]:
    """A JSON array (or {"products": [...]}) read element by element, with each element's line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if text.startswith("{", pos):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield exc.lineno, Reject(exc.lineno, f"invalid JSON: {exc.msg}; nothing after this could be read", "")
            return
        items = obj.get("products") if isinstance(obj, dict) else None
        if not isinstance(items, list):
            yield 1, Reject(1, 'a JSON object file must hold a "products" array', "")
            return
        # Re-scan the array to learn where each element starts.
        start = text.find("[", text.find('"products"'))
        yield from _scan_array(text, start, decoder)
        return
    if not text.startswith("[", pos):
        yield 1, Reject(1, 'a .json catalog must be an array of objects or {"products": [...]}', text[:200])
        return
    yield from _scan_array(text, pos, decoder)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n\ufeff":
        pos += 1
    return pos


def _scan_array(text: str, pos: int, decoder: json.JSONDecoder) -> Iterator[Row]:
    pos = _skip_ws(text, pos + 1)  # after '['
    while pos < len(text) and text[pos] != "]":
        line_no = text.count("\n", 0, pos) + 1
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield exc.lineno, Reject(exc.lineno, f"invalid JSON: {exc.msg}; the rest of the file could not be read", "")
            return
        if isinstance(obj, dict):
            yield line_no, obj
        else:
            yield line_no, Reject(line_no, f"expected a JSON object, got {type(obj).__name__}", text[pos:end][:200])
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)


def read_csv(path: Path) -> Iterator[Row]:
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            return
        line_no = reader.line_num
        for row in reader:
            start = line_no + 1
            line_no = reader.line_num
            if None in row:
                yield (
                    start,
                    Reject(
                        start,
                        f"{len(row[None])} more values than columns",
                        json.dumps(row, ensure_ascii=False, default=str),
                    ),
                )
                continue
            obj: dict[str, Any] = {}
            attributes: dict[str, Any] = {}
            try:
                for key, value in row.items():
                    key = (key or "").strip()
                    if value is None or value == "":
                        continue
                    if key.startswith("attr:"):
                        parts = [v.strip() for v in value.split("|") if v.strip()]
                        attributes[key[5:]] = parts if len(parts) > 1 else value.strip()
                    elif key == "attributes":
                        parsed = json.loads(value)
                        if not isinstance(parsed, dict):
                            raise ValueError("the attributes column must hold a JSON object")
                        attributes.update(parsed)
                    else:
                        obj[key] = value
            except (json.JSONDecodeError, ValueError) as exc:
                yield start, Reject(start, f"attributes: {exc}", json.dumps(row, ensure_ascii=False))
                continue
            if attributes:
                obj["attributes"] = attributes
            yield start, obj


def read_rows(path: Path, fmt: str | None = None) -> Iterator[Row]:
    if not path.exists():
        raise UsageError(f"Catalog file {path} does not exist.")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a .jsonl, .json or .csv file.")
    kind = detect_format(path, fmt)
    return {"jsonl": read_jsonl, "json": read_json, "csv": read_csv}[kind](path)


def explain(exc: ValidationError) -> str:
    """'price: must not be negative (got -5); title: field required' from pydantic's errors."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "record"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse_product(obj: dict[str, Any]) -> Product:
    return Product.model_validate(obj)


def ingest_file(
    catalog: Catalog,
    path: Path | str,
    *,
    fmt: str | None = None,
    batch_size: int = 256,
    progress: bool = False,
    rejects_path: Path | None = None,
) -> IngestReport:
    path = Path(path)
    report = IngestReport(file=str(path))
    started = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(unit="row", desc=f"ingest {path.name}", disable=not progress, smoothing=0.1)
    batch: list[Product] = []

    def flush() -> None:
        if not batch:
            return
        result = catalog.upsert(batch)
        report.added += len(result.added)
        report.updated += len(result.updated)
        report.unchanged += len(result.unchanged)
        bar.update(len(batch))
        bar.set_postfix(added=report.added, updated=report.updated, rejected=report.rejected, refresh=False)
        batch.clear()

    for line_no, item in read_rows(path, fmt):
        report.rows += 1
        if isinstance(item, Reject):
            report.rejects.append(item)
            report.rejected += 1
            continue
        try:
            batch.append(parse_product(item))
        except ValidationError as exc:
            report.rejects.append(Reject(line_no, explain(exc), json.dumps(item, ensure_ascii=False, default=str)))
            report.rejected += 1
            continue
        if len(batch) >= batch_size:
            flush()
    flush()
    bar.close()
    report.seconds = time.perf_counter() - started
    if report.rejects:
        target = rejects_path or (
            catalog.settings.rejects_dir / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}.rejects.jsonl"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as handle:
            for r in report.rejects:
                handle.write(json.dumps(r.record(), ensure_ascii=False) + "\n")
        report.rejects_file = str(target)
    return report

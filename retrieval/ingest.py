"""Catalog files in, products out: JSONL, JSON (an array, or an object with a "products" array)
and CSV. Every bad row is reported with its line number and the reason, and every good row lands.

CSV columns map to product fields by name; ``attr:NAME`` columns (or an ``attributes`` column
holding a JSON object) become attributes; ``tags`` may be separated by ``|``, ``,`` or ``;``.

Files are read as strict UTF-8 (a BOM is fine): a line that is not UTF-8 is rejected with its
line number, never stored as replacement characters. A file whose text is GBK/GB18030 (or
UTF-16, or compressed) is refused as a whole with what to do (``encoding="gb18030"`` reads it).
Problems with the whole file (nothing to read, no "products" list ...) go to
``IngestReport.fatal``; an id seen again later in the file is reported in ``duplicates`` (the last
row wins, as in the store).

Rows are committed in batches (one SQLite transaction per batch, after their vectors are in
Chroma); the progress bar counts committed rows. Killed mid-way, a rerun skips what is already
there (same content hash) and completes the rest.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from retrieval.catalog import Catalog
from shopassist.errors import UsageError
from shopassist.models import Product

FORMATS = ("jsonl", "json", "csv")
# One row (a JSONL line, a JSON array element, a CSV field) longer than this is rejected unread:
# a valid product takes a fraction of it (see the MAX_* limits in shopassist.models).
MAX_ROW_CHARS = 2 * 1024 * 1024
RAW_KEEP = 2000  # characters of a rejected row kept in the report and the rejects file
KEEP_REJECTS = 1000  # rejected rows an IngestReport holds (the rejects file has every one)
# characters that stand for bytes the decoder could not read (errors="surrogateescape")
_UNDECODED = re.compile("[\udc80-\udcff]")


class CatalogFileError(UsageError):
    """The file as a whole cannot be read as a catalog (nothing in it was ingested after this)."""


def _printable(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes) written as escapes, so it can be printed."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class Reject:
    line: int
    reason: str
    raw: str

    def __post_init__(self) -> None:
        self.raw = self.raw[:RAW_KEEP]  # a rejected row may be megabytes: keep the start only

    def record(self) -> dict[str, Any]:
        return {"line": self.line, "reason": _printable(self.reason), "raw": _printable(self.raw)}


@dataclass
class Duplicate:
    """A row whose id an earlier row of the same file already had; the later row wins."""

    line: int
    id: str
    first_line: int

    def record(self) -> dict[str, Any]:
        return {"line": self.line, "id": self.id, "first_line": self.first_line}


@dataclass
class IngestReport:
    """What an ingest did. ``rejects`` and ``duplicates`` hold the first ``KEEP_REJECTS`` of each
    (``rejected`` and ``duplicated`` count them all; the rejects file lists every rejected row)."""

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
    duplicates: list[Duplicate] = field(default_factory=list)
    duplicated: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "duplicates": self.duplicated,
            "rejects_file": self.rejects_file,
            "seconds": round(self.seconds, 3),
            "products_per_second": round((self.added + self.updated) / self.seconds, 1) if self.seconds else None,
            "fatal": self.fatal,
            "first_rejects": [r.record() for r in self.rejects[:20]],
            "first_duplicates": [d.record() for d in self.duplicates[:20]],
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


def _codec(encoding: str | None) -> str:
    """The codec to read with: UTF-8 (BOM or not) unless the caller names another."""
    if encoding is None:
        return "utf-8-sig"
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise UsageError(f"Unknown encoding {encoding!r}: use utf-8 (the default) or e.g. gb18030.") from None
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name


def check_encoding(path: Path) -> None:
    """Refuse (CatalogFileError) a file that is not UTF-8 text as a whole: UTF-16, compressed,
    or GBK/GB18030. A UTF-8 file with a few bad lines passes: those lines are rejected one by one."""
    name = path.name
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise CatalogFileError(
                f"{name} is UTF-16-encoded: convert it to UTF-8 (iconv -f UTF-16 -t UTF-8 {name} > utf8-{name}) "
                "and ingest that file."
            )
        if head.startswith((b"\x1f\x8b", b"PK\x03\x04", b"BZh", b"\xfd7zXZ")):
            raise CatalogFileError(f"{name} is compressed (gzip/zip/bzip2/xz): decompress it and ingest the result.")
        handle.seek(0)
        utf8_lines = bad_lines = gb_lines = 0
        for raw in handle:
            if raw.isascii():
                continue
            try:
                raw.decode("utf-8")
                utf8_lines += 1
            except UnicodeDecodeError:
                bad_lines += 1
                try:
                    raw.decode("gb18030")
                    gb_lines += 1
                except UnicodeDecodeError:
                    pass
    # Every line with non-ASCII text fails UTF-8 and reads as GB18030: the file is GBK/GB18030.
    if bad_lines and gb_lines == bad_lines and utf8_lines == 0:
        raise CatalogFileError(
            f"{name} is not UTF-8: the file looks GBK/GB18030-encoded; convert it to UTF-8 "
            f"(iconv -f GB18030 -t UTF-8 {name} > utf8-{name}) and ingest that file, or pass "
            "--encoding gb18030. Nothing was ingested."
        )


def _not_decoded(text: str, encoding: str, where: str | None = None) -> str | None:
    """Why ``text`` (read with errors='surrogateescape') is not valid ``encoding``; None when it is."""
    bad = _UNDECODED.search(text)
    if bad is None:
        return None
    codec = "UTF-8" if encoding == "utf-8-sig" else encoding
    reason = f"not {codec}: byte 0x{ord(bad.group()) - 0xDC00:02X} {where or f'at column {bad.start() + 1}'}"
    if codec == "UTF-8":
        try:
            text.encode("utf-8", "surrogateescape").decode("gb18030")
            reason += " (this line looks GBK/GB18030-encoded)"
        except UnicodeError:
            pass
        reason += "; save the file as UTF-8"
    return reason


def _json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply to read"
    if "digits" in str(exc):  # int('9' * 5000): Python's own limit on integer conversion
        return "invalid JSON: a number has more than 4,300 digits"
    return f"invalid JSON: {exc}"


def read_jsonl(path: Path, encoding: str | None = None) -> Iterator[Row]:
    codec = _codec(encoding)
    with path.open("r", encoding=codec, errors="surrogateescape") as handle:
        for line_no, line in enumerate(handle, 1):
            text = line.strip()
            if not text:
                continue
            if (problem := _not_decoded(text, codec)) is not None:
                yield line_no, Reject(line_no, problem, text)
                continue
            if len(text) > MAX_ROW_CHARS:
                yield line_no, Reject(line_no, f"the row is {len(text):,} characters; at most {MAX_ROW_CHARS:,}", text)
                continue
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, too-long integers, deep nesting
                yield line_no, Reject(line_no, _json_error(exc), text)
                continue
            if not isinstance(obj, dict):
                yield line_no, Reject(line_no, f"expected a JSON object, got {type(obj).__name__}", text)
                continue
            yield line_no, obj


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def read_json(path: Path, encoding: str | None = None) -> Iterator[Row]:
    """A JSON array (or {"products": [...]}) read element by element, with each element's line."""
    codec = _codec(encoding)
    text = path.read_text(encoding=codec, errors="surrogateescape")
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text):
        return  # empty: the caller says there are no products
    if text.startswith("{", pos):
        start = _products_array(path.name, text, pos, decoder)
        yield from _scan_array(text, start, decoder, codec)
        return
    if not text.startswith("[", pos):
        raise CatalogFileError(
            f"{path.name} is not a JSON catalog: a .json catalog must be an array of products or an object with a "
            f'"products" array (it starts with {_printable(text[pos : pos + 40])!r}).'
        )
    yield from _scan_array(text, pos, decoder, codec)


def _products_array(name: str, text: str, pos: int, decoder: json.JSONDecoder) -> int:
    """Where the "products" array of the top-level object at ``pos`` starts (its '[')."""
    keys: list[str] = []

    def broken(at: int, msg: str) -> CatalogFileError:
        msg = msg.removeprefix("invalid JSON: ")
        return CatalogFileError(f"{name}: invalid JSON at line {_line_at(text, at)}: {msg}; nothing could be read.")

    pos = _skip_ws(text, pos + 1)
    while pos < len(text) and text[pos] != "}":
        if text[pos] != '"':
            raise broken(pos, "expected a quoted key")
        try:
            key, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            raise broken(getattr(exc, "pos", pos), _json_error(exc)) from None
        pos = _skip_ws(text, pos)
        if not text.startswith(":", pos):
            raise broken(pos, "expected ':' after a key")
        pos = _skip_ws(text, pos + 1)
        if key == "products":
            if text.startswith("[", pos):
                return pos
            kind = "nothing" if pos >= len(text) else "a JSON object" if text[pos] == "{" else "a single value"
            raise CatalogFileError(
                f'{name}: "products" holds {kind}, not a list: it must be an array of product objects.'
            )
        keys.append(str(key))
        try:
            _, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            raise broken(getattr(exc, "pos", pos), _json_error(exc)) from None
        pos = _skip_ws(text, pos)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
        elif not text.startswith("}", pos):
            raise broken(pos, "expected ',' or '}'")
    shown = ", ".join(repr(k[:40]) for k in keys[:8]) or "none"
    hint = ""
    if _skip_ws(text, pos + 1) < len(text):
        hint = (
            " It holds more than one JSON value: if it has one product per line, name it .jsonl or pass --format jsonl."
        )
    raise CatalogFileError(
        f'{name}: the JSON object has no "products" list (its keys: {_printable(shown)}); a .json catalog must be '
        f'an array of products or an object with a "products" array. Nothing was ingested.{hint}'
    )


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n\ufeff":
        pos += 1
    return pos


def _scan_array(text: str, pos: int, decoder: json.JSONDecoder, codec: str = "utf-8-sig") -> Iterator[Row]:
    pos = _skip_ws(text, pos + 1)  # after '['
    line_no, counted = 1, 0  # the line at ``counted``, advanced as we go (not recounted per element)
    while pos < len(text) and text[pos] != "]":
        line_no += text.count("\n", counted, pos)
        counted = pos
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield exc.lineno, Reject(exc.lineno, f"invalid JSON: {exc.msg}; the rest of the file could not be read", "")
            return
        except (ValueError, RecursionError) as exc:
            reason = f"{_json_error(exc)}; the rest of the file could not be read"
            yield line_no, Reject(line_no, reason, text[pos : pos + 200])
            return
        raw = text[pos:end]
        if (problem := _not_decoded(raw, codec)) is not None:
            yield line_no, Reject(line_no, problem, raw)
        elif end - pos > MAX_ROW_CHARS:
            yield line_no, Reject(line_no, f"the row is {end - pos:,} characters; at most {MAX_ROW_CHARS:,}", raw)
        elif isinstance(obj, dict):
            yield line_no, obj
        else:
            yield line_no, Reject(line_no, f"expected a JSON object, got {type(obj).__name__}", raw[:200])
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)


def read_csv(path: Path, encoding: str | None = None) -> Iterator[Row]:
    codec = _codec(encoding)
    # Fields up to a whole row's worth are read (and then judged by the product's limits); a larger
    # one is a csv.Error, reported for its row below.
    if csv.field_size_limit() < MAX_ROW_CHARS:
        csv.field_size_limit(MAX_ROW_CHARS)
    with path.open("r", encoding=codec, errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            fieldnames = reader.fieldnames
        except csv.Error as exc:
            raise CatalogFileError(f"{path.name}: the header line cannot be read as CSV: {exc}.") from None
        if not fieldnames:
            return
        if (problem := _not_decoded(",".join(fieldnames), codec)) is not None:
            raise CatalogFileError(f"{path.name}: the header line is {problem}. Nothing was ingested.")
        line_no = reader.reader.line_num
        while True:
            start = line_no + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line_no = reader.reader.line_num
                yield start, Reject(start, f"unreadable CSV: {exc}", "")
                continue
            line_no = reader.reader.line_num
            raw_row = json.dumps(row, ensure_ascii=False, default=str)
            if (problem := _undecoded_field(row, codec)) is not None:
                yield start, Reject(start, problem, raw_row)
                continue
            if None in row:
                yield start, Reject(start, f"{len(row[None])} more values than columns", raw_row)
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
            except (ValueError, RecursionError) as exc:
                yield start, Reject(start, f"attributes: {exc}", raw_row)
                continue
            if attributes:
                obj["attributes"] = attributes
            yield start, obj


def _undecoded_field(row: dict[str | None, Any], codec: str) -> str | None:
    for key, value in row.items():
        for text in value if isinstance(value, list) else [value]:
            where = f"in column {key!r}" if key is not None else "in a value past the last column"
            if isinstance(text, str) and (problem := _not_decoded(text, codec, where)) is not None:
                return problem
    return None


def read_rows(path: Path, fmt: str | None = None, encoding: str | None = None) -> Iterator[Row]:
    """The file's rows. UsageError when it is missing; CatalogFileError (a UsageError) when it is
    not text in the expected encoding or not a catalog at all."""
    if not path.exists():
        raise UsageError(f"Catalog file {path} does not exist.")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a .jsonl, .json or .csv file.")
    kind = detect_format(path, fmt)
    _codec(encoding)  # an unknown encoding is a usage error before anything is read
    if encoding is None:
        check_encoding(path)
    reader = {"jsonl": read_jsonl, "json": read_json, "csv": read_csv}[kind]
    return reader(path, encoding)


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


def _raw(item: dict[str, Any]) -> str:
    try:
        return json.dumps(item, ensure_ascii=False, default=str)[:RAW_KEEP]
    except (ValueError, RecursionError):
        return "(the row cannot be shown)"


def ingest_file(
    catalog: Catalog,
    path: Path | str,
    *,
    fmt: str | None = None,
    batch_size: int = 256,
    progress: bool = False,
    rejects_path: Path | None = None,
    encoding: str | None = None,
) -> IngestReport:
    """Upsert every valid row of a catalog file; the report lists each rejected row (line and
    reason), each repeated id (the last row wins) and, in ``fatal``, a problem with the whole file
    (not UTF-8, no products in it ...). ``encoding`` reads a file that is not UTF-8 (e.g. gb18030)."""
    path = Path(path)
    report = IngestReport(file=str(path))
    started = time.perf_counter()
    rows: Iterator[Row] = iter(())
    try:
        rows = read_rows(path, fmt, encoding)  # a missing file or an unknown format raises UsageError
    except CatalogFileError as exc:
        report.fatal = str(exc)
    from tqdm import tqdm

    bar = tqdm(unit="row", desc=f"ingest {path.name}", disable=not progress, smoothing=0.1)
    batch: list[Product] = []
    first_line: dict[str, int] = {}

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

    rejects_out: TextIO | None = None

    def reject(item: Reject) -> None:
        # Written as they come (a file of garbage must not pile up in memory); the report keeps
        # the first KEEP_REJECTS, and counts them all.
        nonlocal rejects_out
        report.rejected += 1
        if len(report.rejects) < KEEP_REJECTS:
            report.rejects.append(item)
        if rejects_out is None:
            target = rejects_path or (
                catalog.settings.rejects_dir / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}.rejects.jsonl"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            rejects_out = target.open("w", encoding="utf-8", errors="backslashreplace")
            report.rejects_file = str(target)
        rejects_out.write(json.dumps(item.record(), ensure_ascii=False) + "\n")

    try:
        for line_no, item in rows:
            report.rows += 1
            if isinstance(item, Reject):
                reject(item)
                continue
            try:
                product = parse_product(item)
            except ValidationError as exc:
                reject(Reject(line_no, explain(exc), _raw(item)))
                continue
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                reject(Reject(line_no, f"cannot be read: {exc}", _raw(item)))
                continue
            if product.id in first_line:
                report.duplicated += 1
                if len(report.duplicates) < KEEP_REJECTS:
                    report.duplicates.append(Duplicate(line_no, product.id, first_line[product.id]))
            else:
                first_line[product.id] = line_no
            batch.append(product)
            if len(batch) >= batch_size:
                flush()
        flush()
    except CatalogFileError as exc:
        report.fatal = str(exc)
    finally:
        bar.close()
        if rejects_out is not None:
            rejects_out.close()
    if report.fatal is None and report.rows == 0:
        report.fatal = f"no products found in {path}: the file holds no catalog rows."
    report.seconds = time.perf_counter() - started
    return report

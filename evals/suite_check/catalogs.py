"""Loading a catalog (JSONL in the catalog schema) and validating every product record."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

from .report import Report

PRODUCT_KEYS = {
    "id",
    "title",
    "description",
    "brand",
    "category",
    "price",
    "currency",
    "stock",
    "attributes",
    "tags",
    "language",
    "image_url",
    "rating",
}
CURRENCIES = {"CNY", "USD"}
CATALOG_SIZE = (25, 45)  # products per catalog the suite aims at (a warning outside it)
_CJK = re.compile(r"[\u3400-\u9fff]")
DEMO = "demo"  # ``"catalog": "demo"`` names the bundled demo catalog
# the bundled demo catalog, beside the ``evals`` package (in the repository and in an installed wheel)
DEMO_CATALOG = Path(__file__).resolve().parents[2] / "shopassist" / "resources" / "demo_catalog.jsonl"
# fields a bundled catalog record may carry beyond the suite's schema (provenance, popularity)
BUNDLED_KEYS = PRODUCT_KEYS | {"sale_count", "comment_count", "source", "generated_fields"}


def resolve_catalog(suite_path: Path, name: str) -> Path:
    """The file a dialogue's ``catalog`` names: ``"demo"`` or a path relative to the suite file."""
    return DEMO_CATALOG if name == DEMO else suite_path.parent / name


def category_ok(path: object) -> bool:
    """A category path like ``A > B > C``: at least two non-empty, trimmed parts."""
    if not isinstance(path, str) or not path:
        return False
    parts = path.split(" > ")
    return len(parts) >= 2 and all(p and p == p.strip() and ">" not in p for p in parts)


def load_catalog(path: Path, rep: Report, bundled: bool = False) -> list[dict]:
    """Every JSON object of the catalog file (valid or not), with its problems reported to ``rep``.

    ``bundled``: the demo catalog, built from real datasets rather than written for the suite:
    its records may lack a brand, a description or attributes, carry provenance fields and a
    one-level category, and mix currencies by language (a price bound is read in the currency
    of the products its other checks allow); the suite's size target does not apply."""
    if bundled:
        return _load_bundled(path, rep)
    rows: list[dict] = []
    seen: set[str] = set()
    currencies: set[str] = set()
    for where, p in _records(path, rep):
        check_product(where, p, rep, seen, currencies)
        rows.append(p)
    if len(currencies) > 1:
        rep.error(f"{path.name}: mixes currencies {sorted(currencies)}; price bounds would be ambiguous")
    lo, hi = CATALOG_SIZE
    if not lo <= len(rows) <= hi:
        rep.warn(f"{path.name}: {len(rows)} products (the suite aims at {lo}-{hi} per catalog)")
    return rows


def check_product(where: str, p: dict, rep: Report, seen: set[str], currencies: set[str]) -> None:
    """Validate one record; adds its id to ``seen`` and its currency to ``currencies``."""
    extra = set(p) - PRODUCT_KEYS
    if extra:
        rep.error(f"{where}: unknown fields {sorted(extra)}")
    _check_identity(where, p, rep, seen)
    _check_offer(where, p, rep, currencies)
    if not category_ok(p.get("category")):
        rep.error(f"{where}: category {p.get('category')!r} is not a path like 'A > B > C'")
    _check_attributes(where, p, rep)
    tags = p.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        rep.error(f"{where}: tags must be a list of text")
    lang = p.get("language")
    if lang not in ("zh", "en"):
        rep.error(f"{where}: language must be zh or en")
    elif isinstance(p.get("title"), str) and lang != ("zh" if _CJK.search(p["title"]) else "en"):
        rep.warn(f"{where}: language {lang} does not match the title's script")


def _check_identity(where: str, p: dict, rep: Report, seen: set[str]) -> None:
    """A unique id and non-empty title, description and brand."""
    pid = p.get("id")
    if not isinstance(pid, str) or not pid:
        rep.error(f"{where}: id must be a non-empty string")
    elif pid in seen:
        rep.error(f"{where}: duplicate id {pid}")
    else:
        seen.add(pid)
    if not isinstance(p.get("title"), str) or not p["title"].strip():
        rep.error(f"{where}: title missing")
    for key in ("description", "brand"):
        if not isinstance(p.get(key), str) or not p[key].strip():
            rep.error(f"{where}: {key} must be non-empty text")


def _check_offer(where: str, p: dict, rep: Report, currencies: set[str]) -> None:
    """A finite price >= 0, a known currency and an integer stock >= 0."""
    price = p.get("price")
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price < 0:
        rep.error(f"{where}: price must be a finite number >= 0 (got {price!r})")
    if p.get("currency") not in CURRENCIES:
        rep.error(f"{where}: currency must be one of {sorted(CURRENCIES)}")
    else:
        currencies.add(p["currency"])
    stock = p.get("stock")
    if isinstance(stock, bool) or not isinstance(stock, int) or stock < 0:
        rep.error(f"{where}: stock must be an integer >= 0 (got {stock!r})")


def _check_attributes(where: str, p: dict, rep: Report) -> None:
    """A non-empty object of name -> text | non-empty list of text."""
    attrs = p.get("attributes")
    if not isinstance(attrs, dict) or not attrs:
        rep.error(f"{where}: attributes must be a non-empty object")
        return
    for k, v in attrs.items():
        ok = (isinstance(v, str) and v) or (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v))
        if not ok:
            rep.error(f"{where}: attribute {k!r} must be text or a list of text")


def _records(path: Path, rep: Report) -> Iterator[tuple[str, dict]]:
    """Each JSON object line of a catalog with its ``file:line``; a bad line is reported."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{n}"
            try:
                p = json.loads(line)
            except json.JSONDecodeError as exc:
                rep.error(f"{where}: invalid JSON ({exc})")
                continue
            if not isinstance(p, dict):
                rep.error(f"{where}: not an object")
                continue
            yield where, p


def _load_bundled(path: Path, rep: Report) -> list[dict]:
    """The bundled catalog's records, validated for what the checks read: a unique id, a title, a
    finite price >= 0 with its currency, integer stock >= 0, a category, attributes, tags, language."""
    rows: list[dict] = []
    seen: set[str] = set()
    for where, p in _records(path, rep):
        extra = set(p) - BUNDLED_KEYS
        if extra:
            rep.error(f"{where}: unknown fields {sorted(extra)}")
        pid = p.get("id")
        if not isinstance(pid, str) or not pid or pid in seen:
            rep.error(f"{where}: id must be a unique non-empty string")
        else:
            seen.add(pid)
        if not isinstance(p.get("title"), str) or not p["title"].strip():
            rep.error(f"{where}: title missing")
        _check_offer(where, p, rep, set())
        if not isinstance(p.get("category"), str) or not p["category"].strip():
            rep.error(f"{where}: category must be non-empty text")
        if p.get("attributes"):
            _check_attributes(where, p, rep)
        if not isinstance(p.get("tags", []), list):
            rep.error(f"{where}: tags must be a list of text")
        if p.get("language") not in ("zh", "en"):
            rep.error(f"{where}: language must be zh or en")
        rows.append(p)
    return rows

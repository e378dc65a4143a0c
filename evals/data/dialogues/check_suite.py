#!/usr/bin/env python3
"""Static checker for the dialogue suite in this folder (stdlib only; no shopassist import).

It proves that every expectation can be met by the catalog the dialogue names, so that a
failing turn is the assistant's fault and never the suite's:

* catalogs: JSONL in the catalog schema; unique ids, non-negative finite prices, one currency
  per catalog, integer stock >= 0, attributes name -> text | list of text, well-formed
  ``A > B > C`` category paths, ``language`` zh/en;
* dialogues: unique ids, 2-4 turns, only the defined ``expect`` keys and check fields;
* every turn, under two readings of the matching rules (``strict``: case-sensitive text, brand
  equal to the record's brand or one of its ``/`` parts -- the reading of ``evals/dialogues.py``;
  ``lenient``: case-insensitive text, brand as a case-insensitive substring), the set of catalog
  products allowed by ``all_match`` and ``none_match`` (the "pool") is the same, and a set of at
  most 5 products exists that satisfies the whole ``expect`` -- ``min_results`` and ``any_match``
  counted with in-stock products only, so hiding sold-out items never makes a turn impossible;
* every turn rules at least one catalog product out (no vacuous checks), and no catalog price
  sits exactly on a ``price_max`` / ``price_min`` the dialogue uses (so "under 200" never hinges
  on whether 200 itself counts);
* with ``labels.json`` (behaviour tags per turn), the behaviour-specific rules:
  - ``no_result``: the pool is empty (the catalog really has nothing that fits) and the turn
    asks for no results (no ``min_results``/``any_match``);
  - ``relative_price`` ("便宜点", "cheaper"): the previous turn's shown set is forced (its pool
    has exactly ``min_results`` <= 5 products, sold-out ones included), and the new
    ``price_max`` lies below the most expensive product of that set and at or above the second
    most expensive one -- so every reading of "cheaper" (below the cheapest, the median or the
    top shown price) passes, and ignoring the request fails;
  - after a ``relative_price`` turn (until a ``relax`` turn), ``min_results`` must be reachable
    with products no dearer than the cheapest product of the forced set, so a follow-up never
    depends on how far down the assistant moved the price;
  - ``price_around:N`` ("500左右", "around $120"): the turn's price range contains every product
    within +-30% of N that its other checks allow (a loose reading of "around" never fails), and
    ``min_results`` -- here and in the later turns that keep the range -- is reachable with
    products within +-20% of N (a tight reading never comes up short);
  - ``reference:N`` ("第二个", "compare 1 and 3"): the previous turn showed at least N
    products, and every product of its pool satisfies this turn's checks (whichever product
    the shopper points at, the check holds);
  - refinements (``negation``, ``attribute``, ``price_cap``, ``price_range``, ``price_around``,
    ``brand_filter``, ``brand_exclude``, ``audience_filter``) after the first turn: the pool
    strictly shrinks (unless the turn also relaxes: ``relax``);
  - ``brand_swap`` / ``audience_swap``: the new pool is disjoint from the previous one.

Warnings (not failures): an ASCII ``text_contains`` string found starting inside a longer word
of some product (e.g. "tan" in "resistant"), which would make a check depend on an accident of
wording.

Usage::

    python evals/data/dialogues/check_suite.py            # check, print a summary; exit 1 on errors
    python evals/data/dialogues/check_suite.py -v         # also print each turn's pool and a witness set
    python evals/data/dialogues/check_suite.py --markdown # the count tables used in README.md
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHOWN = 5
CHECK_FIELDS = ("price_max", "price_min", "category_contains", "text_contains", "brand_in")
EXPECT_KEYS = ("all_match", "any_match", "none_match", "min_results")
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
MODES = ("strict", "lenient")
REFINE_TAGS = {
    "negation",
    "attribute",
    "price_cap",
    "price_range",
    "price_around",
    "brand_filter",
    "brand_exclude",
    "audience_filter",
}
SWAP_TAGS = {"brand_swap", "audience_swap"}
KNOWN_TAGS = REFINE_TAGS | SWAP_TAGS | {"category_first", "relative_price", "no_result", "relax", "reference"}
_CJK = re.compile(r"[\u3400-\u9fff]")


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, msg: str) -> None:
        self.errors.append(msg)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)


# -- catalogs -------------------------------------------------------------------------------


def category_ok(path: object) -> bool:
    if not isinstance(path, str) or not path:
        return False
    parts = path.split(" > ")
    return len(parts) >= 2 and all(p and p == p.strip() and ">" not in p for p in parts)


def load_catalog(path: Path, rep: Report) -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    currencies: set[str] = set()
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
            extra = set(p) - PRODUCT_KEYS
            if extra:
                rep.error(f"{where}: unknown fields {sorted(extra)}")
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
            if not category_ok(p.get("category")):
                rep.error(f"{where}: category {p.get('category')!r} is not a path like 'A > B > C'")
            attrs = p.get("attributes")
            if not isinstance(attrs, dict) or not attrs:
                rep.error(f"{where}: attributes must be a non-empty object")
            else:
                for k, v in attrs.items():
                    ok = (isinstance(v, str) and v) or (
                        isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)
                    )
                    if not ok:
                        rep.error(f"{where}: attribute {k!r} must be text or a list of text")
            tags = p.get("tags")
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                rep.error(f"{where}: tags must be a list of text")
            lang = p.get("language")
            if lang not in ("zh", "en"):
                rep.error(f"{where}: language must be zh or en")
            elif isinstance(p.get("title"), str) and lang != ("zh" if _CJK.search(p["title"]) else "en"):
                rep.warn(f"{where}: language {lang} does not match the title's script")
            rows.append(p)
    if len(currencies) > 1:
        rep.error(f"{path.name}: mixes currencies {sorted(currencies)}; price bounds would be ambiguous")
    if not 25 <= len(rows) <= 45:
        rep.warn(f"{path.name}: {len(rows)} products (the suite aims at 25-45 per catalog)")
    return rows


# -- matching -------------------------------------------------------------------------------


def haystack(p: dict) -> str:
    values: list[str] = []
    for v in (p.get("attributes") or {}).values():
        values.extend(v if isinstance(v, list) else [v])
    return " ".join([p.get("title") or "", p.get("brand") or "", *values])


def field_ok(p: dict, name: str, value: object, mode: str) -> bool:
    price = p.get("price")
    if name == "price_max":
        return price is not None and price <= float(value)  # type: ignore[arg-type]
    if name == "price_min":
        return price is not None and price >= float(value)  # type: ignore[arg-type]
    if name == "category_contains":
        return str(value) in (p.get("category") or "")
    if name == "text_contains":
        text = haystack(p)
        if mode == "strict":
            return any(str(v) in text for v in value)  # type: ignore[union-attr]
        return any(str(v).casefold() in text.casefold() for v in value)  # type: ignore[union-attr]
    if name == "brand_in":
        brand = p.get("brand") or ""
        if mode == "strict":
            names = {brand} | set(brand.split("/"))
            return any(str(b) in names for b in value)  # type: ignore[union-attr]
        return any(str(b).casefold() in brand.casefold() for b in value)  # type: ignore[union-attr]
    raise ValueError(name)


def satisfies_all(p: dict, check: dict, mode: str) -> bool:
    return all(field_ok(p, f, v, mode) for f, v in check.items())


def hits_any(p: dict, check: dict, mode: str) -> bool:
    return any(field_ok(p, f, v, mode) for f, v in check.items())


def pool(catalog: list[dict], expect: dict, mode: str) -> list[dict]:
    """Products a correct assistant may show: they pass all_match and avoid none_match."""
    out = []
    for p in catalog:
        if "all_match" in expect and not satisfies_all(p, expect["all_match"], mode):
            continue
        if "none_match" in expect and hits_any(p, expect["none_match"], mode):
            continue
        out.append(p)
    return out


def in_stock(p: dict) -> bool:
    return p.get("stock") is None or p["stock"] > 0


def witness(catalog: list[dict], expect: dict, mode: str, cap: float | None = None) -> list[dict] | None:
    """A set of <= 5 in-stock products (priced <= cap, if given) satisfying the whole expect, or None."""
    avail = [p for p in pool(catalog, expect, mode) if in_stock(p) and (cap is None or p["price"] <= cap)]
    need = int(expect.get("min_results", 0))
    chosen: list[dict] = []
    if "any_match" in expect:
        hit = [p for p in avail if satisfies_all(p, expect["any_match"], mode)]
        if not hit:
            return None
        chosen.append(hit[0])
    for p in avail:
        if len(chosen) >= max(need, 1 if avail else 0) or len(chosen) >= SHOWN:
            break
        if p not in chosen:
            chosen.append(p)
    return chosen if len(chosen) >= need else None


# -- suite ----------------------------------------------------------------------------------


def validate_expect(where: str, expect: object, rep: Report) -> bool:
    if not isinstance(expect, dict) or not expect:
        rep.error(f"{where}: expect must be a non-empty object")
        return False
    ok = True
    for key, val in expect.items():
        if key not in EXPECT_KEYS:
            rep.error(f"{where}: unknown expect key {key!r}")
            ok = False
        elif key == "min_results":
            if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= SHOWN:
                rep.error(f"{where}: min_results must be an integer 1..{SHOWN}")
                ok = False
        else:
            if not isinstance(val, dict) or not val:
                rep.error(f"{where}: {key} must be a non-empty check object")
                ok = False
                continue
            for f, v in val.items():
                if f not in CHECK_FIELDS:
                    rep.error(f"{where}: {key} has unknown field {f!r}")
                    ok = False
                elif f in ("price_max", "price_min") and (
                    isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
                ):
                    rep.error(f"{where}: {key}.{f} must be a number >= 0")
                    ok = False
                elif f in ("text_contains", "brand_in") and (
                    not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v)
                ):
                    rep.error(f"{where}: {key}.{f} must be a non-empty list of strings")
                    ok = False
                elif f == "category_contains" and (not isinstance(v, str) or not v):
                    rep.error(f"{where}: {key}.category_contains must be a non-empty string")
                    ok = False
            lo, hi = val.get("price_min"), val.get("price_max")
            if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
                rep.error(f"{where}: {key} has price_min > price_max")
                ok = False
    return ok


def inside_word_hits(needle: str, catalog: list[dict]) -> list[str]:
    if not needle.isascii() or not any(c.isalpha() for c in needle):
        return []
    out = []
    pat = re.compile(re.escape(needle), re.IGNORECASE)
    for p in catalog:
        text = haystack(p)
        for m in pat.finditer(text):
            before = text[m.start() - 1] if m.start() > 0 else " "
            # a match that starts mid-word ("stem" in "system", "rain" in "grain") is an accident;
            # a word prefix ("wood" in "Wooden") is intended
            if needle[0].isalpha() and before.isascii() and before.isalpha():
                out.append(f"{p['id']} ({text[max(0, m.start() - 8) : m.end() + 8]!r})")
                break
    return out


def ids(products: list[dict]) -> set[str]:
    return {p["id"] for p in products}


def check_suite(suite_path: Path, labels_path: Path | None, verbose: bool) -> tuple[Report, dict]:
    rep = Report()
    catalogs: dict[str, list[dict]] = {}
    dialogues = []
    with open(suite_path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                rep.error(f"{suite_path.name}:{n}: invalid JSON ({exc})")
                continue
            dialogues.append((n, d))
    labels: dict = {}
    if labels_path and labels_path.exists():
        labels = json.loads(labels_path.read_text(encoding="utf-8"))
    seen_ids: set[str] = set()
    stats = {
        "dialogues": 0,
        "turns": 0,
        "lang_dialogues": Counter(),
        "lang_turns": Counter(),
        "tag_turns": Counter(),
        "tag_dialogues": Counter(),
        "catalog_use": Counter(),
        "catalog_sizes": {},
    }
    warned_needles: set[tuple[str, str]] = set()

    for n, d in dialogues:
        did = d.get("id") if isinstance(d, dict) else None
        where = f"line {n} ({did})"
        if not isinstance(d, dict) or not isinstance(did, str) or not did:
            rep.error(f"line {n}: dialogue needs a string id")
            continue
        extra = set(d) - {"id", "catalog", "turns"}
        if extra:
            rep.error(f"{where}: unknown keys {sorted(extra)}")
        if did in seen_ids:
            rep.error(f"{where}: duplicate dialogue id")
        seen_ids.add(did)
        turns = d.get("turns")
        if not isinstance(turns, list) or not 2 <= len(turns) <= 4:
            rep.error(f"{where}: needs 2-4 turns")
            continue
        cat_rel = d.get("catalog")
        if not isinstance(cat_rel, str) or Path(cat_rel).is_absolute() or ".." in Path(cat_rel).parts:
            rep.error(f"{where}: catalog must be a path relative to the suite file, inside its folder")
            continue
        cat_path = suite_path.parent / cat_rel
        if not cat_path.exists():
            rep.error(f"{where}: catalog {cat_rel} not found")
            continue
        if cat_rel not in catalogs:
            catalogs[cat_rel] = load_catalog(cat_path, rep)
            stats["catalog_sizes"][cat_rel] = len(catalogs[cat_rel])
        catalog = catalogs[cat_rel]
        prices = {float(p["price"]) for p in catalog if isinstance(p.get("price"), (int, float))}
        label = labels.get(did)
        if labels and label is None:
            rep.error(f"{where}: no entry in {labels_path.name}")
        if label is not None and len(label.get("turns", [])) != len(turns):
            rep.error(f"{where}: labels list {len(label.get('turns', []))} turns, dialogue has {len(turns)}")
            label = None
        stats["dialogues"] += 1
        stats["catalog_use"][cat_rel] += 1
        lang = label["lang"] if label else "?"
        stats["lang_dialogues"][lang] += 1
        dialogue_tags: set[str] = set()
        prev: dict[str, list[dict]] | None = None
        prev_expect: dict | None = None
        cheap_cap: float | None = None  # cheapest price of the set a "cheaper" request started from
        around_window: tuple[float, float, float] | None = None  # (N, price_min, price_max) of "around N"
        for i, turn in enumerate(turns):
            tw = f"{where} turn {i + 1}"
            if not isinstance(turn, dict) or not isinstance(turn.get("user"), str) or not turn["user"].strip():
                rep.error(f"{tw}: needs a non-empty user message")
                prev = None
                continue
            if set(turn) - {"user", "expect"}:
                rep.error(f"{tw}: unknown keys {sorted(set(turn) - {'user', 'expect'})}")
            expect = turn.get("expect")
            stats["turns"] += 1
            stats["lang_turns"][lang] += 1
            if not validate_expect(tw, expect, rep):
                prev = None
                continue
            tags = label["turns"][i] if label else []
            ref_n = 0
            plain_tags = set()
            if "relax" in tags:
                around_window = None  # a relaxed turn drops the earlier "around" range
            for t in tags:
                if t.startswith("reference:"):
                    ref_n = int(t.split(":", 1)[1])
                    plain_tags.add("reference")
                elif t.startswith("price_around:"):
                    around = float(t.split(":", 1)[1])
                    plain_tags.add("price_around")
                    rng = expect.get("all_match") or {}
                    lo, hi = rng.get("price_min"), rng.get("price_max")
                    if lo is None or hi is None:
                        rep.error(f"{tw}: price_around needs all_match.price_min and price_max")
                    else:
                        around_window = (around, lo, hi)
                        others = {f: v for f, v in rng.items() if f not in ("price_min", "price_max")}
                        missed = [
                            q["id"]
                            for q in catalog
                            if 0.7 * around <= q["price"] <= 1.3 * around
                            and satisfies_all(q, others, "strict")
                            and not lo <= q["price"] <= hi
                        ]
                        if missed:
                            rep.error(f"{tw}: range [{lo}, {hi}] leaves out {missed}, within +-30% of {around:g}")
                else:
                    plain_tags.add(t)
            unknown = plain_tags - KNOWN_TAGS
            if unknown:
                rep.error(f"{tw}: unknown behaviour tags {sorted(unknown)}")
            for t in plain_tags:
                stats["tag_turns"][t] += 1
            dialogue_tags |= plain_tags

            # price bounds never sit exactly on a catalog price
            for key in ("all_match", "any_match", "none_match"):
                for f in ("price_max", "price_min"):
                    v = (expect.get(key) or {}).get(f)
                    if v is not None and float(v) in prices:
                        rep.error(f"{tw}: {key}.{f}={v} equals a catalog price; move the bound off it")
            # inside-word lint
            for key in ("all_match", "any_match", "none_match"):
                for needle in (expect.get(key) or {}).get("text_contains", []):
                    if (cat_rel, needle) in warned_needles:
                        continue
                    hits = inside_word_hits(needle, catalog)
                    if hits:
                        warned_needles.add((cat_rel, needle))
                        rep.warn(f"{tw}: {needle!r} occurs inside a longer word in {', '.join(hits)}")

            pools = {m: pool(catalog, expect, m) for m in MODES}
            if ids(pools["strict"]) != ids(pools["lenient"]):
                diff = ids(pools["strict"]) ^ ids(pools["lenient"])
                rep.error(f"{tw}: pool depends on case/brand matching rules (differs on {sorted(diff)})")
            cur = pools["strict"]
            if len(cur) == len(catalog):
                rep.error(f"{tw}: expectation rules no product out (vacuous)")
            is_no_result = "no_result" in plain_tags
            for m in MODES:
                if is_no_result:
                    if pools[m]:
                        rep.error(f"{tw}: tagged no_result but the catalog has {sorted(ids(pools[m]))} ({m})")
                    if "min_results" in expect or "any_match" in expect:
                        rep.error(f"{tw}: a no_result turn cannot ask for min_results/any_match")
                else:
                    w = witness(catalog, expect, m)
                    if w is None or not w:
                        rep.error(f"{tw}: not satisfiable by the catalog ({m}): pool {sorted(ids(pools[m]))}")
            if "relax" in plain_tags:
                cheap_cap = None
            if around_window is not None and not is_no_result:
                n_, lo_, hi_ = around_window
                rng = expect.get("all_match") or {}
                if rng.get("price_min") == lo_ and rng.get("price_max") == hi_:
                    tight = {**expect, "all_match": {**rng, "price_min": 0.8 * n_, "price_max": 1.2 * n_}}
                    if witness(catalog, tight, "strict") is None:
                        rep.error(
                            f"{tw}: min_results is not reachable within +-20% of {n_:g} (a tight reading of 'around')"
                        )
                else:
                    around_window = None
            if "relative_price" in plain_tags and prev is not None:
                cheap_cap = min((p["price"] for p in prev["strict"]), default=None)
            if cheap_cap is not None and not is_no_result and witness(catalog, expect, "strict", cheap_cap) is None:
                rep.error(
                    f"{tw}: after a 'cheaper' request, min_results must be reachable with products "
                    f"priced <= {cheap_cap} (the cheapest one shown before it)"
                )
            if verbose:
                w = witness(catalog, expect, "strict")
                print(f"{did} t{i + 1} {turn['user']!r} tags={tags}")
                print(
                    f"    pool ({len(cur)}): "
                    + ", ".join(
                        f"{p['id']}:{p['price']}{'' if in_stock(p) else '(sold out)'}"
                        for p in sorted(cur, key=lambda p: p["price"])
                    )
                )
                print(f"    witness: {[p['id'] for p in w] if w else w}")

            # behaviour-specific rules (need the previous turn)
            if i > 0 and prev is not None and prev_expect is not None:
                prev_pool = prev["strict"]
                if "relative_price" in plain_tags:
                    k = prev_expect.get("min_results")
                    bound = (expect.get("all_match") or {}).get("price_max")
                    if k is None or len(prev_pool) != k or k > SHOWN:
                        rep.error(
                            f"{tw}: relative_price needs the previous turn's shown set forced "
                            f"(pool {len(prev_pool)}, min_results {k})"
                        )
                    elif bound is None:
                        rep.error(f"{tw}: relative_price needs all_match.price_max")
                    else:
                        ps = sorted(p["price"] for p in prev_pool)
                        second = ps[-2] if len(ps) > 1 else 0.0
                        if not (second <= bound < ps[-1]):
                            rep.error(
                                f"{tw}: cheaper bound {bound} must be in [{second}, {ps[-1]}) "
                                f"(previous shown prices {ps})"
                            )
                    if not ids(cur) < ids(prev_pool):
                        rep.error(f"{tw}: relative_price pool should be a strict subset of the previous pool")
                if ref_n:
                    if int(prev_expect.get("min_results", 0)) < ref_n:
                        rep.error(
                            f"{tw}: refers to item {ref_n} but the previous turn only guarantees "
                            f"{prev_expect.get('min_results', 0)} shown"
                        )
                    if not ids(prev_pool) <= ids(cur):
                        rep.error(
                            f"{tw}: some product the shopper may point at fails this turn's checks: "
                            f"{sorted(ids(prev_pool) - ids(cur))}"
                        )
                    if int(expect.get("min_results", 0)) > ref_n:
                        rep.error(f"{tw}: min_results exceeds the number of referenced items")
                narrows = plain_tags & REFINE_TAGS and not plain_tags & (SWAP_TAGS | {"relax", "reference"})
                if narrows and not ids(cur) < ids(prev_pool):
                    rep.error(
                        f"{tw}: refinement should strictly narrow the previous pool ({len(prev_pool)} -> {len(cur)})"
                    )
                if plain_tags & SWAP_TAGS and ids(cur) & ids(prev_pool):
                    rep.error(f"{tw}: swap pool overlaps the previous pool: {sorted(ids(cur) & ids(prev_pool))}")
            elif i > 0 and ("relative_price" in plain_tags or ref_n):
                rep.error(f"{tw}: needs a valid previous turn")
            prev, prev_expect = pools, expect
        for t in dialogue_tags:
            stats["tag_dialogues"][t] += 1
    if labels:
        for did in set(labels) - seen_ids:
            rep.error(f"{labels_path.name}: labels for unknown dialogue {did}")
    return rep, stats


def markdown(stats: dict) -> str:
    lines = ["| language | dialogues | turns |", "|---|---:|---:|"]
    for lang in sorted(stats["lang_dialogues"]):
        lines.append(f"| {lang} | {stats['lang_dialogues'][lang]} | {stats['lang_turns'][lang]} |")
    lines.append(f"| **all** | **{stats['dialogues']}** | **{stats['turns']}** |")
    lines += ["", "| behaviour | turns | dialogues |", "|---|---:|---:|"]
    for tag, cnt in sorted(stats["tag_turns"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| `{tag}` | {cnt} | {stats['tag_dialogues'][tag]} |")
    lines += ["", "| catalog | products | dialogues |", "|---|---:|---:|"]
    for cat in sorted(stats["catalog_sizes"]):
        lines.append(f"| `{cat}` | {stats['catalog_sizes'][cat]} | {stats['catalog_use'][cat]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", type=Path, default=HERE / "dialogues.jsonl")
    ap.add_argument("--labels", type=Path, default=HERE / "labels.json")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every turn's pool and witness set")
    ap.add_argument("--markdown", action="store_true", help="print the count tables as Markdown")
    args = ap.parse_args(argv)
    rep, stats = check_suite(args.suite, args.labels, args.verbose)
    if args.markdown:
        print(markdown(stats))
        return 1 if rep.errors else 0
    for w in rep.warnings:
        print(f"warning: {w}")
    for e in rep.errors:
        print(f"ERROR: {e}")
    langs = ", ".join(f"{k} {v}" for k, v in sorted(stats["lang_dialogues"].items()))
    print(
        f"{stats['dialogues']} dialogues ({langs}), {stats['turns']} turns, "
        f"{sum(stats['catalog_sizes'].values())} products in {len(stats['catalog_sizes'])} catalogs"
    )
    print("behaviours (turns): " + ", ".join(f"{k} {v}" for k, v in sorted(stats["tag_turns"].items())))
    print(f"{'FAIL' if rep.errors else 'OK'}: {len(rep.errors)} errors, {len(rep.warnings)} warnings")
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())

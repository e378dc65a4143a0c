#!/usr/bin/env python3
"""Build the bundled bilingual demo catalog (``shopassist/resources/demo_catalog.jsonl``).

Usage::

    python scripts/build_demo_catalog.py [--data ../shared/data] [--out shopassist/resources/demo_catalog.jsonl]
                                         [--seed 13] [--doc shopassist/resources/DEMO_CATALOG.md] [--verify-only]

Inputs (read-only) live in ``<data>/catalogs/``; the data directory defaults to ``../shared/data``
relative to the repository root, or to ``$SHOPASSIST_SHARED_DATA`` when that is set. ``--data``
wins over both.

Four public sources are merged, in this priority order (an exact duplicate title keeps the record
of the earlier source):

1. ``dummyjson``            - DummyJSON products (English, MIT). Everything but the category path is
                              taken as-is; the category path maps DummyJSON's slug to a readable path.
2. ``taobao_double11_2016`` - real Taobao beauty listings, Double-11 2016. Real title, price, sales
                              and comment counts; brand from the title's ``EN/中文`` prefix or the
                              shop; category by keyword rules on the title; stock is generated.
3. ``openbg``               - Alibaba OpenBG products as they appear in EcomGPT task rows. One
                              product per distinct title, merging every row that mentions it.
                              Attributes are only taken from rows where they belong to the title
                              (``title_attribute_matching`` rows labelled 不匹配 pair a title with
                              another product's attributes, so their attributes are dropped).
                              Price and stock are generated.
4. ``taobao_titles_ner``    - Taobao titles with brand / product-word spans (MultiDigraphNER).
                              Filtered by generic quality rules; price and stock are generated.

Every record says where it came from (``source``) and which of its fields were not in the source
(``generated_fields``). Generated values are drawn from a per-record RNG seeded by
``sha256(seed, record id, field)``, so a record's values do not depend on which other records are
in the catalog, and the output is byte-identical between runs.

Only the standard library is used, so the script runs anywhere the repository is checked out. The
code lives in ``scripts/demo_catalog/`` and its data tables (category maps, keyword lists, rules)
in ``scripts/demo_catalog/data/*.json``; see ``scripts/demo_catalog/README.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from demo_catalog.build import DEFAULT_OUT, build, resolve_data_dir
from demo_catalog.report import summarize, verify, write_doc, write_jsonl
from demo_catalog.tables import SOURCE_ORDER


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", help="shared data dir (default: $SHOPASSIST_SHARED_DATA or ../shared/data from the repo root)"
    )
    ap.add_argument(
        "--out", default=str(DEFAULT_OUT), help="output JSONL (default: shopassist/resources/demo_catalog.jsonl)"
    )
    ap.add_argument("--doc", default=None, help="provenance notes (default: DEMO_CATALOG.md next to --out)")
    ap.add_argument("--seed", type=int, default=13, help="seed for generated price/stock (default: 13)")
    ap.add_argument("--verify-only", action="store_true", help="only check an existing --out file")
    ap.add_argument("--show-rejects", action="store_true", help="print example titles per reject reason")
    args = ap.parse_args(argv)

    out = Path(args.out)
    if not out.is_absolute():
        out = (Path.cwd() / out).resolve()
    if args.verify_only:
        return verify(out)

    data_dir = resolve_data_dir(args.data)
    records, rejects, candidates = build(data_dir, args.seed)
    write_jsonl(records, out)
    doc = Path(args.doc) if args.doc else out.parent / "DEMO_CATALOG.md"
    write_doc(doc, records, rejects, candidates, args.seed, out)

    s = summarize(records)
    print(f"data: {data_dir}")
    print(f"wrote {len(records)} products to {out} ({out.stat().st_size:,} bytes); notes in {doc}")
    print("per source (kept / candidates):")
    for src in SOURCE_ORDER:
        print(f"  {src:22s} {s['counts'][src]:6d} / {candidates[src]}")
    print("rejects per source and reason:")
    for src in SOURCE_ORDER:
        for reason, n in sorted(rejects.counts[src].items()):
            print(f"  {src:22s} {reason:24s} {n:6d}")
            if args.show_rejects:
                for ex in rejects.examples.get((src, reason), []):
                    print(f"      e.g. {ex[:70]}")
    print("top-level categories:", ", ".join(f"{k} {v}" for k, v in s["tops"].most_common()))
    return verify(out)


if __name__ == "__main__":
    sys.exit(main())

"""Resident memory of a fresh worker as the catalog grows, and the formula it grows by.

    .venv/bin/python benchmarks/bench_memory.py [--src CATALOG.jsonl] [--sizes 100000,250000,500000]
        [--point 1000000:RSS_MB] [--work DIR]

Ingests the first products of the million-product benchmark's catalog file (built by
benchmarks/bench_million.py: real text recombined, see its docstring) into a home of its own, in
one process per size, and at each size spawns a fresh worker exactly as bench_million does (build
the stack and the mirror without a snapshot, answer 20 real queries, report VmRSS). ``--point``
adds a size measured elsewhere (the million run's own worker). ``MB = a + b x products`` is
fitted by least squares and written to benchmarks/results/memory-<date>.json.

Why apart from bench_million: a resumed million run measures its early checkpoints with the code
of the day it started; this one measures every size with today's code.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_million import SHARED, drop_snapshot, fit_memory, fresh_worker, run_phase  # noqa: E402
from common import machine  # noqa: E402


def real_queries(n: int = 20) -> list[str]:
    path = SHARED / "querylogs" / "multicpr_ecom_train_queries.tsv"
    out: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and parts[1].strip():
                out.append(parts[1].strip())
            if len(out) >= n:
                break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=Path.home() / ".shopassist-bench-million" / "catalog-1000000.jsonl")
    ap.add_argument("--sizes", default="100000,250000,500000", help="comma-separated product counts")
    ap.add_argument("--point", action="append", default=[], help="PRODUCTS:RSS_MB measured elsewhere; repeatable")
    ap.add_argument("--work", type=Path, default=Path.home() / ".shopassist-bench-memory")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    if not args.src.exists():
        ap.error(f"{args.src} does not exist: run benchmarks/bench_million.py first (it writes the catalog file)")
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    home = args.work / "home"
    queries = real_queries()
    points: list[dict[str, float]] = []
    for size in sizes:
        seg = run_phase("--ingest-segment", {"home": str(home), "src": str(args.src), "upto": size, "every": size})
        drop_snapshot(home)
        worker = fresh_worker(home, queries, save_snapshot=False)
        points.append(
            {
                "products": seg["to"],
                "rss_mb": worker["rss_mb"],
                "spawn_to_first_answer_s": worker["spawn_to_first_answer_s"],
            }
        )
        print(json.dumps(points[-1]), flush=True)
    for spec in args.point:
        products, rss = spec.split(":")
        points.append({"products": int(products), "rss_mb": float(rss), "measured": "elsewhere"})
    fit = fit_memory([(p["products"], p["rss_mb"]) for p in points])
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "src": str(args.src),
        "points": points,
        "fit": {
            "formula": fit.formula(),
            "a_mb": round(fit.a, 1),
            "b_kb_per_product": round(fit.b * 1024, 3),
            "r2": round(fit.r2, 4),
            "at_1m_mb": round(fit.at(1_000_000), 0),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"memory-{result['date']}.json"
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"{fit.formula()} ; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

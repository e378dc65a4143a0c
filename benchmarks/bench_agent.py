"""Agent turn latency with the embedded LLM: time to first products and the full turn.

    .venv/bin/python benchmarks/bench_agent.py [--queries 100] [--no-llm] [--home DIR]

Real Taobao queries from ../shared/data/querylogs (seeded sample), each as the first turn of its
own session, against the bundled demo catalog (loaded into --home once). Reports p50/p90 of:
rules + search (``first_products_ms``: what the shopper waits for before products appear), the
first copy line after the products (``first_line_ms``: from the products on screen to the first
grounded line streamed; turns with LLM copy only), the LLM intent call, the copy, and the full turn; plus the very first turn after the server started
(cold prompt cache) against the rest (warm), which is the prompt-caching effect in a turn.
Writes benchmarks/results/agent-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import machine, pct  # noqa: E402

from assistant.stack import build_stack  # noqa: E402
from shopassist.config import Settings  # noqa: E402
from shopassist.resources import demo_catalog_path  # noqa: E402

SHARED = Path(os.environ.get("SHOPASSIST_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--home", type=Path, default=Path.home() / ".shopassist-bench" / "agent")
    ap.add_argument("--no-llm", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()

    with open(SHARED / "querylogs" / "multicpr_ecom_train_queries.tsv", encoding="utf-8") as handle:
        log = [line.rstrip("\n").split("\t", 1)[1] for line in handle if "\t" in line]
    queries = random.Random(args.seed).sample(log, args.queries)

    settings = Settings.from_env(home=str(args.home))
    llm_settings = None
    if not args.no_llm:
        from assistant.llm import LLMSettings

        llm_settings = LLMSettings.from_env()
    # a fresh session store per run: with a reused one, every query would be a follow-up turn of
    # the previous run's session (longer prompts, different relation); no behaviour ranker
    sessions = args.home / "bench-sessions"
    shutil.rmtree(sessions, ignore_errors=True)
    stack = build_stack(
        settings, llm=llm_settings, catalog_file=demo_catalog_path(), progress=True, rank=False, sessions_dir=sessions
    )
    catalog = stack.catalog
    started = time.perf_counter()
    _ = stack.llm  # starts the LLM (the embedded server) here, to time it
    llm_start_s = time.perf_counter() - started
    agent = stack.agent
    rows = []
    try:
        for i, q in enumerate(queries):
            r = agent.ask(f"bench-{args.seed}-{i}", q)
            rows.append(
                {
                    "query": q,
                    **r.timings,
                    "products": len(r.products),
                    "intent_source": r.intent_source,
                    "replaced": r.grounding.get("ungrounded_replaced", 0),
                    "llm_lines": r.grounding.get("checked_lines", 0),
                }
            )
            print(f"{i + 1:>3}/{len(queries)} {r.timings}", flush=True)
    finally:
        stack.close()

    def stats(key: str, sample: list[dict]) -> dict:
        values = [row[key] for row in sample if key in row]
        if not values:
            return {}
        return {
            "p50_ms": round(pct(values, 50), 1),
            "p90_ms": round(pct(values, 90), 1),
            "mean_ms": round(statistics.mean(values), 1),
        }

    def llm_label() -> str:
        from assistant.llm import LLMSettings

        threads = LLMSettings.from_env().threads
        return f"embedded Qwen2.5-Coder-1.5B-Instruct Q4_K_M (xllamacpp, {threads} thread{'s' if threads != 1 else ''})"

    warm = rows[1:] if len(rows) > 1 else rows
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "queries": len(rows),
        "catalog_products": len(catalog),
        "llm": None if args.no_llm else llm_label(),
        "llm_start_seconds": round(llm_start_s, 2),
        "first_products": stats("first_products_ms", rows),
        # products on screen -> first grounded copy line (ReplyLineEvent), over turns that have one
        "first_line_after_products": stats("first_line_ms", rows),
        "with_first_line_share": round(sum(1 for r in rows if "first_line_ms" in r) / max(1, len(rows)), 3),
        "llm_intent": stats("llm_intent_ms", rows),
        "copy": stats("copy_ms", rows),
        "full_turn": stats("total_ms", rows),
        "full_turn_warm": stats("total_ms", warm),
        "first_turn_cold_cache_ms": rows[0]["total_ms"] if rows else None,
        "with_products_share": round(sum(1 for r in rows if r["products"]) / max(1, len(rows)), 3),
        "copy_lines_replaced": sum(r["replaced"] for r in rows),
        "llm_copy_lines": sum(r.get("llm_lines", 0) for r in rows),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-nollm" if args.no_llm else ""
    out = args.out / f"agent{suffix}-{result['date']}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, ensure_ascii=False, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Real-time ranking benchmark: event log throughput, event → next ranking latency, and ranking
200 candidates, on the bundled demo catalog with shared knowledge learned from real sessions.

    .venv/bin/python benchmarks/bench_ranking.py [--home DIR] [--events 50000] [--trials 500]

Shared knowledge: the real Diginetica click sessions (CIKM Cup 2016) with their anonymous item
ids mapped onto demo catalog products (id mod catalog size), so the statistics have a realistic
size and shape (~186k sessions). Candidates: the hybrid retriever's top 200 for real Taobao
queries from the query log. Measured:

* ``append``: events/s into the durable SQLite log, one transaction per batch of 500 (how the
  API accepts a burst) and one per event (worst case, a shopper clicking);
* ``event_to_ranking``: one click written to the log (fsync included) and applied, then the
  same session's next ranking of 200 candidates, p50/p99;
* ``rank_200``: ranking 200 candidates for a session with history, p50/p99.

Results go to benchmarks/results/ranking-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import machine, pct  # noqa: E402

from assistant.stack import build_stack  # noqa: E402
from shopassist.config import Settings  # noqa: E402
from shopassist.models import Event, EventType, SearchFilters  # noqa: E402
from shopassist.resources import demo_catalog_path  # noqa: E402

SHARED = Path(os.environ.get("SHOPASSIST_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=Path.home() / ".shopassist-bench" / "ranking")
    ap.add_argument("--events", type=int, default=50_000, help="events for the throughput test")
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    rng = random.Random(args.seed)

    settings = Settings.from_env(home=str(args.home))
    # the event log under test: a fresh one, apart from HOME/events.sqlite
    events_dir = args.home / "bench-events"
    shutil.rmtree(events_dir, ignore_errors=True)
    stack = build_stack(
        settings, catalog_file=demo_catalog_path(), progress=True, events_path=events_dir / "events.sqlite"
    )
    catalog = stack.catalog
    ids = sorted(p.id for p in catalog.products())

    # shared knowledge from real sessions mapped onto the catalog
    sessions = []
    with open(SHARED / "sessions" / "diginetica" / "train_sessions.jsonl", encoding="utf-8") as handle:
        for line in handle:
            sessions.append([ids[i % len(ids)] for i in json.loads(line)["items"]])
    ranker = stack.ranker  # over the fresh (empty) log: the shared knowledge is what is learned here
    assert ranker is not None
    t = time.perf_counter()
    ranker.knowledge.learn_sessions(sessions)
    learn_s = time.perf_counter() - t
    print(f"learned {len(sessions)} sessions in {learn_s:.1f}s: {ranker.knowledge.stats()}", flush=True)

    log = stack.events

    def random_event(k: int) -> dict:
        return {"session_id": f"load{k % 1000}", "type": "click", "product_id": rng.choice(ids)}

    # append throughput: batches of 500 (an API burst), then single events (a click each)
    batch = 500
    t = time.perf_counter()
    for start in range(0, args.events, batch):
        log.append([random_event(k) for k in range(start, start + batch)])
    batched_rate = args.events / (time.perf_counter() - t)
    singles = 2000
    t = time.perf_counter()
    for k in range(singles):
        log.append([random_event(k)])
    single_rate = singles / (time.perf_counter() - t)
    print(f"append: {batched_rate:.0f} events/s in batches of {batch}, {single_rate:.0f}/s one by one", flush=True)

    # candidates: the retriever's top 200 for real queries
    with open(SHARED / "querylogs" / "multicpr_ecom_train_queries.tsv", encoding="utf-8") as handle:
        log_queries = [line.rstrip("\n").split("\t", 1)[1] for line in handle if "\t" in line]
    retriever = stack.retriever
    pools = []
    for q in rng.sample(log_queries, 200):
        found = retriever.search(q, SearchFilters(), top_k=200)
        if len(found) >= 100:
            pools.append((q, found))
        if len(pools) >= 50:
            break
    print(f"{len(pools)} candidate pools, mean size {sum(len(p) for _, p in pools) / len(pools):.0f}", flush=True)

    event_to_rank, rank_only, changed = [], [], 0
    for k in range(args.trials):
        q, pool = pools[k % len(pools)]
        session = f"trial{k}"
        ranker.record([{"session_id": session, "type": "click", "product_id": rng.choice(ids)} for _ in range(3)])
        t0 = time.perf_counter()
        before = ranker.rank(session, pool, query=q, k=10)
        rank_only.append((time.perf_counter() - t0) * 1000)
        clicked = before[3].product.id
        t0 = time.perf_counter()
        ranker.record([Event(session_id=session, type=EventType.click, product_id=clicked)])
        after = ranker.rank(session, pool, query=q, k=10)
        event_to_rank.append((time.perf_counter() - t0) * 1000)
        changed += [c.product.id for c in after] != [c.product.id for c in before]
    stack.close()

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "catalog_products": len(ids),
        "knowledge": {**ranker.knowledge.stats(), "learn_seconds": round(learn_s, 1), "sessions": len(sessions)},
        "append_events_per_s": {"batch_500": round(batched_rate), "one_by_one": round(single_rate)},
        "event_to_next_ranking_ms": {
            "p50": round(pct(event_to_rank, 50), 2),
            "p99": round(pct(event_to_rank, 99), 2),
            "rankings_changed_share": round(changed / args.trials, 3),
        },
        "rank_200_ms": {"p50": round(pct(rank_only, 50), 2), "p99": round(pct(rank_only, 99), 2)},
        "trials": args.trials,
        "candidates_per_ranking": round(sum(len(p) for _, p in pools) / len(pools)),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"ranking-{result['date']}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Event flood through the real API: does memory stay flat when forged sessions pour in events?

    .venv/bin/python benchmarks/event_flood.py [--per-round 100000] [--rounds 2]

Builds a home in a temporary folder with the first 300 products of the bundled demo catalog, the
real ranker and SQLite event log, and the real FastAPI app (through its ASGI interface). Each round
posts ``--per-round`` events with the API key (the worst case: session-token writes are rate
limited long before this volume), 1,000 per request, every pair from a new forged session with a
new query. Prints and writes (``benchmarks/results/event-flood-<date>.json``) the process RSS after
a warm-up and after each round, and the sizes of the shared-knowledge maps, which are LRU-bounded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-round", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from assistant.agent import ShoppingAgent
    from assistant.state import SessionStore
    from ranking.events import SQLiteEventLog
    from ranking.ranker import Ranker
    from retrieval import Catalog
    from retrieval.embedders import USEEmbedder
    from shopassist.config import Settings
    from shopassist.models import Product
    from shopassist.resources import demo_catalog_path
    from ui.api import create_app

    with tempfile.TemporaryDirectory(prefix="shopassist-flood-") as tmp:
        home = Path(tmp)
        catalog = Catalog(Settings(home=home), embedder=USEEmbedder(threads=1))
        with open(demo_catalog_path(), encoding="utf-8") as handle:
            rows = [json.loads(line) for line in itertools.islice(handle, 300)]
        catalog.upsert([Product.model_validate(r) for r in rows])
        ranker = Ranker(catalog, SQLiteEventLog(home / "events.sqlite"))
        agent = ShoppingAgent(catalog, SessionStore(home / "sessions"), ranker=ranker)
        client = TestClient(create_app(catalog, agent, ranker, api_key="k", rate_per_minute=10**9))
        ids = [r["id"] for r in rows]
        rng = random.Random(0)
        counter = itertools.count()

        def flood(n: int) -> None:
            sent = 0
            while sent < n:
                batch = []
                while len(batch) < 1000:
                    sid = f"forged-{next(counter):07d}-{rng.getrandbits(32):08x}"
                    batch.append({"session_id": sid, "type": "search", "query": f"q {rng.getrandbits(48):012x} words"})
                    kind = rng.choice(["click", "add_to_cart", "purchase"])
                    batch.append({"session_id": sid, "type": kind, "product_id": rng.choice(ids)})
                res = client.post("/v1/events", json=batch, headers={"X-API-Key": "k"})
                if res.status_code != 200:
                    raise SystemExit(f"flood request refused: {res.status_code} {res.text[:300]}")
                sent += len(batch)

        flood(2000)
        gc.collect()
        base = rss_mb()
        started = time.perf_counter()
        out: dict[str, object] = {"per_round": args.per_round, "rss_base_mb": round(base, 1)}
        for k in range(1, args.rounds + 1):
            flood(args.per_round)
            gc.collect()
            out[f"rss_after_{k * args.per_round // 1000}k_mb"] = round(rss_mb(), 1)
            print(f"after {k * args.per_round:,} events: RSS {rss_mb():.1f} MB (+{rss_mb() - base:.1f})", flush=True)
        out["seconds"] = round(time.perf_counter() - started, 1)
        out["knowledge"] = ranker.knowledge.stats()
        out["growth_mb"] = round(rss_mb() - base, 1)
    print(json.dumps(out))
    path = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"event-flood-{dt.date.today()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

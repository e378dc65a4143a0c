"""Bounded load test of the HTTP API on loopback: N concurrent sessions for a fixed time, each
mixing search tool calls, behaviour events and chat turns, with real queries from the log.

    .venv/bin/python benchmarks/load_api.py [--sessions 50] [--seconds 60] [--llm] [--workers N]

Starts `shopassist serve` on a free port over the demo catalog (no LLM by default: the chat turn
is then rules + templates, which is what a loaded server degrades to; `--llm` uses the embedded
model, whose single 2-core instance serialises chat turns). Each session loops: a search tool
call, a chat turn on its session, an event (click / add to cart / not this on a shown product),
another search. Reports requests, errors (any non-2xx or transport failure) and p50/p99 per
endpoint; writes benchmarks/results/load-api-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from common import machine, pct  # noqa: E402

SHARED = Path(os.environ.get("SHOPASSIST_SHARED_DATA", REPO.parent / "shared" / "data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summary(latencies_ms: list[float]) -> dict[str, float]:
    """Count, p50 and p99 of one endpoint's latencies."""
    return {
        "requests": len(latencies_ms),
        "p50_ms": round(pct(latencies_ms, 50), 1),
        "p99_ms": round(pct(latencies_ms, 99), 1),
    }


def start_shared_backends(home: Path) -> tuple[list[object], dict[str, str]]:
    """Start Redis and PostgreSQL (the test suite's throwaway servers), copy the catalog under
    ``home`` into PostgreSQL with its stored vectors (no re-embedding), and return the servers and
    the environment that points workers at them."""
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO))
    from postgres_server import PostgresServer, missing_reason
    from redis_server import RedisServer

    from retrieval.pg_store import PostgresProductStore
    from retrieval.store import ProductStore, StoreItem, product_hash

    if (why := missing_reason()) is not None:
        raise SystemExit(f"--shared needs PostgreSQL: {why}")
    pg = PostgresServer()
    pg.start()
    redis = RedisServer(Path(pg.root) / "redis")
    redis.start()
    source = ProductStore(home / "catalog.sqlite")
    _, changes = source.changes_since(0)
    live = [c for c in changes if not c.deleted and c.product is not None]
    if not live:
        raise SystemExit(f"the catalog under {home} is empty: `shopassist catalog ingest` the demo catalog first")
    target = PostgresProductStore(pg.url)
    for i in range(0, len(live), 1000):
        target.upsert(
            StoreItem(c.product, c.tokens, product_hash(c.product), c.vector, c.doc_vector)
            for c in live[i : i + 1000]
            if c.product is not None
        )
    for key in ("tokenizer", "embedder"):
        if (value := source.meta(key)) is not None:
            target.set_meta(key, value)
    target.close()
    source.close()
    print(f"shared backends: Redis {redis.url}, PostgreSQL {pg.url} ({len(live)} products copied)", flush=True)
    env = dict(
        os.environ,
        SHOPASSIST_REDIS_URL=redis.url,
        SHOPASSIST_DATABASE_URL=pg.url,
        SHOPASSIST_PSEUDONYM_SECRET=secrets.token_hex(16),
    )
    return [redis, pg], env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--home", type=Path, default=Path.home() / ".shopassist-bench" / "ranking")
    ap.add_argument("--llm", action="store_true", help="chat turns use the embedded LLM")
    ap.add_argument("--workers", type=int, default=1, help="API worker processes (serve --workers)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument(
        "--shared",
        action="store_true",
        help="the production shape: start a throwaway Redis (AOF, appendfsync always) and PostgreSQL "
        "15 (Debian's packages), load the demo catalog into PostgreSQL, and serve events and "
        "sessions from Redis (each worker keeps only its mirror and a private ANN index)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()

    with open(SHARED / "querylogs" / "multicpr_ecom_train_queries.tsv", encoding="utf-8") as handle:
        queries = [line.rstrip("\n").split("\t", 1)[1] for line in handle if "\t" in line]
    rng = random.Random(args.seed)
    queries = rng.sample(queries, 2000)

    env = dict(os.environ)
    backends = None
    if args.shared:
        backends, env = start_shared_backends(args.home)
    port = free_port()
    # shared: the workers' own home holds only their private ANN index (the catalog is in PostgreSQL)
    serve_home = args.home.parent / f"{args.home.name}-shared-worker" if args.shared else args.home
    cmd = [sys.executable, "-m", "ui.cli", "serve", "--port", str(port), "--home", str(serve_home)]
    cmd += ["--rate", "100000"] + ([] if args.llm else ["--no-llm"])
    # the load comes from one backend holding the API key (as a shop's server would call the API):
    # keyed requests are not held to the per-client chat budget meant for anonymous browsers
    key = secrets.token_urlsafe(16)
    cmd += ["--api-key", key, "--workers", str(args.workers)]
    # the catalog must be loaded already (`shopassist demo --home HOME` or bench_ranking.py)
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        if server.poll() is not None:  # it exited: say why instead of waiting out the deadline
            raise SystemExit("the API exited at start: " + (server.stderr.read() if server.stderr else ""))
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        server.kill()
        raise SystemExit("the API did not start: " + (server.stderr.read() if server.stderr else ""))

    latencies: dict[str, list[float]] = defaultdict(list)
    started: dict[str, list[float]] = defaultdict(list)  # when each request was sent (s after the start)
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.time() + args.seconds

    def call(client: httpx.Client, name: str, method: str, path: str, **kw: object) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = client.request(method, path, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            with lock:
                errors.append(f"{name}: {type(exc).__name__}")
            return None
        ms = (time.perf_counter() - t0) * 1000
        with lock:
            latencies[name].append(ms)
            started[name].append(t0 - begin)
            if not 200 <= r.status_code < 300:
                errors.append(f"{name}: HTTP {r.status_code} {r.text[:120]}")
        return r

    def shopper(k: int) -> None:
        local = random.Random(args.seed * 1000 + k)
        sid = f"load-{k}"
        with httpx.Client(base_url=base, timeout=120, headers={"X-API-Key": key}) as client:
            while time.time() < stop_at:
                q = local.choice(queries)
                call(client, "POST /v1/tools/search_products", "POST", "/v1/tools/search_products", json={"query": q})
                r = call(
                    client,
                    "POST /v1/chat/completions",
                    "POST",
                    "/v1/chat/completions",
                    headers={"X-Session-Id": sid},
                    json={"messages": [{"role": "user", "content": local.choice(queries)}]},
                )
                shown = r.json().get("shopassist", {}).get("products", []) if r is not None and r.is_success else []
                if shown:
                    event = {
                        "session_id": sid,
                        "type": local.choice(["click", "add_to_cart", "dislike"]),
                        "product_id": local.choice(shown),
                    }
                    call(client, "POST /v1/events", "POST", "/v1/events", json=event)
                call(client, "GET /v1/tools", "GET", "/v1/tools")

    threads = [threading.Thread(target=shopper, args=(k,)) for k in range(args.sessions)]
    begin = time.perf_counter()
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    server.terminate()
    server.wait(timeout=30)
    if backends is not None:
        for backend in backends:
            backend.destroy() if hasattr(backend, "destroy") else backend.stop()

    total = sum(len(v) for v in latencies.values())
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "sessions": args.sessions,
        "workers": args.workers,
        "seconds": round(wall, 1),
        "llm": args.llm,
        "backends": "Redis + PostgreSQL (throwaway, fsync off in PostgreSQL)"
        if args.shared
        else "embedded (SQLite, JSON files)",
        "requests": total,
        "requests_per_s": round(total / wall, 1),
        "errors": len(errors),
        "error_samples": errors[:10],
        "endpoints": {name: summary(v) for name, v in sorted(latencies.items())},
        # the same after the first 10 s: all sessions start at once, and their first requests
        # (cold caches, one burst) make a queue that the rest of the run never sees again
        "after_10s": {
            name: summary(kept)
            for name, v in sorted(latencies.items())
            if (kept := [ms for ms, at in zip(v, started[name], strict=True) if at >= 10.0])
        },
        "slowest": {
            name: [
                {"at_s": round(at, 1), "ms": round(ms, 1)}
                for ms, at in sorted(zip(v, started[name], strict=True), reverse=True)[:5]
            ]
            for name, v in sorted(latencies.items())
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    shape = f"-{args.workers}workers" + ("-shared" if args.shared else "")
    out = args.out / f"load-api{'-llm' if args.llm else ''}{shape}-{result['date']}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

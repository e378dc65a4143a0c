"""An online experiment on a replayed log: real Diginetica sessions, two ranking variants, the
clicks simulated from what each variant would show, read back by ``shopassist eval ab``.

    python benchmarks/replay_ab.py --sessions 2000

writes ``HOME/replay-ab/events.sqlite`` (the experiment's event log; ``shopassist eval ab --events
that-file --experiment replay-ab``, or ``--experiment replay-il``, prints the same report) and
``benchmarks/results/ab-replay-<date>.json``.

How the log is made -- what is real and what is simulated:

* **Sessions (real).** Diginetica train sessions (CIKM Cup 2016, ``train_sessions.jsonl``), a run of
  consecutive sessions from a seeded offset. Their anonymous items are mapped onto the bundled demo
  catalog as ``ranking.tune`` does (item ``i`` -> the ``i mod N``-th product id in sorted order), so
  the order in which a shopper went from item to item is real, the products are stand-ins.
* **Warm-up (real).** The first ``--warmup`` sessions are recorded as click events into the behaviour
  ranker before the experiment (its shared knowledge: transitions, co-occurrence, popularity), not
  into the experiment's log.
* **Assignment.** Each experiment session (``--sessions``, those with at least two items) gets a
  pseudonym from the home's secret (``shopassist.privacy.Pseudonyms``), and is split by
  ``ranking.experiments`` hashing: 2/3 go to the A/B experiment ``replay-ab`` (``fusion`` = 50,
  ``no-behaviour`` = 50), 1/3 to the interleaving experiment ``replay-il``.
* **Searches (simulated).** Before each logged item after the first, the shopper searches for that
  item's category (the last level of the product's category path, e.g. 面膜). The candidates are
  the demo catalog's real hybrid retrieval for that query, top ``--pool`` (30, what the agent ranks).
  ``fusion`` shows the top ``--k`` (5) of ``Ranker.rank`` over them (today's ranking: behaviour
  ranker with MMR), ``no-behaviour`` the top ``--k`` in retrieval order; an interleaved session is
  shown the team-draft merge of the two (``ranking.experiments.team_draft``, coin seeded per
  session and step).
* **Click model (simulated).** The shopper clicks only the item the log says came next, and only
  when it is shown: at position ``p`` (1-based) it is examined, and then clicked, with probability
  ``p ** -eta`` (position bias, ``--eta`` 1.0); nothing else is clicked. Whether or not it was
  clicked, the session then goes on along its logged items (the log cannot say what a shopper
  would have done after a different list): an item reached without a click is recorded as a view.
* **Cart and purchase (simulated, not informative).** Diginetica has no carts or purchases here; a
  click is followed by an add-to-cart with probability ``--cart`` (0.10) and a cart by a purchase
  with ``--purchase`` (0.30), the same in every variant. Their differences between variants only
  follow from the clicks; they are there to exercise the report, not to measure anything.
* Every event (search, click, view, add-to-cart, purchase) is also recorded into the ranker as it
  happens, so both variants' traffic teaches the shared knowledge, as in one live deployment.

What it measures, then: how often each ranking puts the shopper's real next item in the top k of a
category search, weighted by position, and whether the report's intervals and sign test see it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.stack import build_stack
from evals.ab import run_ab
from ranking.events import SQLiteEventLog
from ranking.experiments import FUSION, INTERLEAVED, NO_BEHAVIOUR, Experiment, tag, team_draft
from ranking.ranker import Ranker
from shopassist.config import Settings
from shopassist.models import Candidate, Event, EventType
from shopassist.resources import demo_catalog_path

REPO = Path(__file__).resolve().parents[1]
AB, IL = "replay-ab", "replay-il"


def load_sessions(path: Path, count: int, seed: int) -> list[list[int]]:
    with open(path, encoding="utf-8") as handle:
        sessions = [json.loads(line)["items"] for line in handle]
    start = random.Random(seed).randrange(0, max(1, len(sessions) - count))
    return sessions[start : start + count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--diginetica", type=Path, default=REPO.parent / "shared" / "data" / "sessions" / "diginetica")
    ap.add_argument("--sessions", type=int, default=2000, help="experiment sessions (with 2+ items)")
    ap.add_argument("--warmup", type=int, default=20000, help="sessions that only teach the ranker first")
    ap.add_argument("--home", type=Path, default=Path.home() / ".shopassist-bench" / "ab")
    ap.add_argument("--k", type=int, default=5, help="products shown per search")
    ap.add_argument("--pool", type=int, default=30, help="retrieval candidates per search")
    ap.add_argument("--eta", type=float, default=1.0, help="position bias: P(examine position p) = p ** -eta")
    ap.add_argument("--cart", type=float, default=0.10, help="P(add to cart | click)")
    ap.add_argument("--purchase", type=float, default=0.30, help="P(purchase | add to cart)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    t0 = time.perf_counter()

    stack = build_stack(Settings.from_env(home=str(args.home)), catalog_file=demo_catalog_path(), rank=False)
    catalog, retriever, pseudonyms = stack.catalog, stack.retriever, stack.pseudonyms
    ids = sorted(p.id for p in catalog.products())
    # the experiment's sessions are the first --sessions with 2+ items after the warm-up
    raw = load_sessions(args.diginetica / "train_sessions.jsonl", args.warmup + 4 * args.sessions, args.seed)
    warm, rest = raw[: args.warmup], [s for s in raw[args.warmup :] if len(s) >= 2][: args.sessions]
    t_setup = time.perf_counter() - t0

    ranker = Ranker(catalog)  # in memory: the warm-up never reaches the experiment's log
    ts = time.time() - 10 * 86400.0
    batch: list[Event] = []
    for k, items in enumerate(warm):
        for item in items:
            ts += 1.0
            batch.append(Event(session_id=f"warm{k}", type=EventType.click, product_id=ids[item % len(ids)], ts=ts))
        if len(batch) >= 5000:
            ranker.record(batch)
            batch = []
    ranker.record(batch)
    t_warm = time.perf_counter() - t0 - t_setup

    split = Experiment("replay-split", (("ab", 2.0), ("il", 1.0)))
    ab = Experiment(AB, ((FUSION, 1.0), (NO_BEHAVIOUR, 1.0)))
    cache: dict[str, list[Candidate]] = {}
    log_events: list[Event] = []
    shown_at: dict[str, list[int]] = {FUSION: [], NO_BEHAVIOUR: [], INTERLEAVED: []}  # target's position, 0 = not shown

    def record(**fields: Any) -> None:
        nonlocal ts
        ts += 1.0
        event = Event(ts=ts, **fields)
        ranker.record([event])
        log_events.append(event)

    for k, items in enumerate(rest):
        key = pseudonyms(f"diginetica-{args.seed}-{k}")
        arm = ab.assign(key) if split.assign(key) == "ab" else INTERLEAVED
        variant = tag(AB, arm) if arm != INTERLEAVED else tag(IL, INTERLEAVED)
        products = [ids[i % len(ids)] for i in items]
        record(session_id=key, type=EventType.view, product_id=products[0], variant=variant)
        for step, target in enumerate(products[1:], 1):
            product = catalog.get(target)
            query = ((product.category if product else "") or "").split(" > ")[-1].strip() or "其他"
            if query not in cache:
                cache[query] = retriever.search(query, top_k=args.pool)
            found = cache[query]
            record(session_id=key, type=EventType.search, query=query, variant=variant)
            teams: dict[str, str] = {}
            if arm == NO_BEHAVIOUR:
                shown = [c.product.id for c in found[: args.k]]
            elif arm == FUSION:
                shown = [c.product.id for c in ranker.rank(key, found, query=query, k=args.k)]
            else:
                fused = [c.product.id for c in ranker.rank(key, found, query=query, k=2 * args.k)]
                plain = [c.product.id for c in found]
                merged = team_draft(fused, plain, args.k, random.Random(f"{key}:{step}"), (FUSION, NO_BEHAVIOUR))
                shown = [str(i) for i in merged.items]
                teams = {str(i): t for i, t in merged.teams.items()}
            rng = random.Random(f"{args.seed}:{key}:{step}")
            pos = shown.index(target) + 1 if target in shown else 0
            shown_at[arm].append(pos)
            if pos and rng.random() < pos**-args.eta:
                credit = tag(IL, teams[target]) if arm == INTERLEAVED else variant
                record(session_id=key, type=EventType.click, product_id=target, variant=credit)
                if rng.random() < args.cart:
                    record(session_id=key, type=EventType.add_to_cart, product_id=target, variant=variant)
                    if rng.random() < args.purchase:
                        record(session_id=key, type=EventType.purchase, product_id=target, variant=variant)
            else:
                record(session_id=key, type=EventType.view, product_id=target, variant=variant)
    t_sim = time.perf_counter() - t0 - t_setup - t_warm

    run_dir = args.home / "replay-ab"
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "events.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{log_path}{suffix}").unlink(missing_ok=True)
    with SQLiteEventLog(log_path) as log:
        log.append(log_events)
    reports = {name: run_ab(log_path, name, bootstrap=args.bootstrap, seed=args.seed) for name in (AB, IL)}
    stack.close()

    date = time.strftime("%Y-%m-%d")
    result = {
        "date": date,
        "command": "python benchmarks/replay_ab.py " + " ".join(sys.argv[1:]),
        "report_command": f"shopassist eval ab --events {log_path} --experiment {AB}|{IL} --json",
        "log": (
            f"Diginetica train sessions ({args.warmup} warm-up + {len(rest)} experiment sessions with 2+ items, "
            f"consecutive from a seed-{args.seed} offset), items mapped onto the demo catalog ({len(ids)} products)"
        ),
        "simulated": (
            "each logged item after the first is preceded by a search for its category (last path level); "
            f"candidates: hybrid retrieval top {args.pool}; shown: top {args.k} of the variant's ranking; "
            f"the logged next item is clicked iff shown, with probability position**-{args.eta}; other items "
            f"are never clicked; unclicked logged items are views; add-to-cart P={args.cart} per click, purchase "
            f"P={args.purchase} per cart (not informative)"
        ),
        "params": vars(args) | {"home": str(args.home), "diginetica": str(args.diginetica), "out": str(args.out)},
        "events_logged": len(log_events),
        "distinct_queries": len(cache),
        "target_shown_top_k": {
            arm: {
                "searches": len(p),
                "shown_share": round(sum(1 for x in p if x) / len(p), 4) if p else None,
                "mean_reciprocal_position": round(sum(1 / x for x in p if x) / len(p), 4) if p else None,
            }
            for arm, p in shown_at.items()
        },
        "seconds": {
            "setup": round(t_setup, 1),
            "warmup": round(t_warm, 1),
            "simulate": round(t_sim, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
        "reports": reports,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"ab-replay-{date}.json"
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(result, indent=1, ensure_ascii=False))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

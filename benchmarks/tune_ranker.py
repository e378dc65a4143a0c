"""Fit the ranker's behaviour weights on real Diginetica click sessions mapped onto the demo
catalog (``ranking.tune`` does the replay and the fitting) and write
``benchmarks/results/ranking-tune-<date>.json``.

    python benchmarks/tune_ranker.py --diginetica ../shared/data/sessions/diginetica --sessions 30000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.stack import build_stack
from ranking.ranker import FEATURES, Ranker, RankingWeights
from ranking.tune import behaviour_pool, diginetica_events, fit, mrr, replay
from shopassist.config import Settings
from shopassist.resources import demo_catalog_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--diginetica", type=Path, required=True, help="folder with train_sessions.jsonl")
    ap.add_argument("--sessions", type=int, default=30_000)
    ap.add_argument("--home", type=Path, default=Path.home() / ".shopassist-bench" / "ranking")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()

    stack = build_stack(Settings.from_env(home=str(args.home)), catalog_file=demo_catalog_path())
    catalog = stack.catalog
    ids = sorted(p.id for p in catalog.products())
    events = diginetica_events(args.diginetica / "train_sessions.jsonl", ids, args.sessions, args.seed)
    ranker = Ranker(catalog)
    t0 = time.perf_counter()
    warm = len(events) // 2  # the first half only builds the shared knowledge
    instances = replay(events, ranker, behaviour_pool(100), record_from=warm)
    sessions = sorted({i.session for i in instances})
    random.Random(args.seed).shuffle(sessions)
    train_s = set(sessions[: len(sessions) // 2])
    train = [i for i in instances if i.session in train_s]
    test = [i for i in instances if i.session not in train_s]
    start = RankingWeights()
    # items are mapped onto demo products at random: their content (similarity, dislike) and stock
    # mean nothing here, and the log has no queries (text, query); only behaviour weights are fitted
    fitted, info = fit(train, start, fixed=("interest",), only=("popularity", "exploration"))
    w0 = np.array([getattr(start, n) for n in FEATURES])
    w1 = np.array([getattr(fitted, n) for n in FEATURES])
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "log": f"Diginetica train sessions ({args.sessions} from a seeded offset), items mapped onto the demo catalog",
        "instances": {"train": len(train), "held_out": len(test)},
        "mrr_held_out": {"before": round(mrr(test, w0), 4), "after": round(mrr(test, w1), 4)},
        "mrr_train": {"before": round(mrr(train, w0), 4), "after": round(mrr(train, w1), 4)},
        "weights_before": start.model_dump(),
        "weights_after": fitted.model_dump(),
        **info,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"ranking-tune-{result['date']}.json"
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

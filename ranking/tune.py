"""Fit the ranker's weights on a behaviour log, not by hand.

Replay: events are applied in log order to a fresh in-memory ranker. At every positive event
(click, add to cart, purchase) the candidates the shopper could have been shown are scored
with the ranker's features *as they were just before the event*; the clicked item is the label.
The ranker's score is linear in its weights, so features are computed once per instance and any
weight vector is evaluated by a dot product: coordinate ascent over a grid maximises the MRR of
the clicked item on a training part of the sessions and reports it on a held-out part.

Candidates for an instance: the retrieval results for the session's last query when the log
has searches (``candidates_fn``), else a behaviour pool (next-item statistics plus popular
items), which is how a log without queries (Diginetica) still fits the behaviour weights.

    python benchmarks/tune_ranker.py --diginetica ../shared/data/sessions/diginetica --sessions 30000

fits the behaviour weights (interest vs popularity vs exploration) on real Diginetica click
sessions mapped onto the demo catalog and writes ``benchmarks/results/ranking-tune-<date>.json``.
Features a log cannot inform (no queries: text and query; no content: similarity) keep their
values and are reported as not fitted.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ranking.knowledge import POSITIVE
from ranking.ranker import FEATURES, Ranker, RankingWeights
from ranking.session import SessionProfile
from shopassist.models import Candidate, Event, EventType

SIGN = {name: (-1.0 if name in ("dislike", "stock") else 1.0) for name in FEATURES}
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0, 5.0)

CandidatesFn = Callable[[SessionProfile, str | None, Ranker], Sequence[Candidate]]


@dataclass
class Instance:
    features: np.ndarray  # (n candidates, len(FEATURES)), signed so the score is features @ weights
    target: int  # index of the clicked candidate
    session: str


def behaviour_pool(size: int = 100) -> CandidatesFn:
    """Candidates from behaviour alone: next-item statistics of the session, then popular items."""

    def pool(profile: SessionProfile, query: str | None, ranker: Ranker) -> list[Candidate]:
        ids: list[str] = []
        interests = profile.top_interests(20)
        if interests:
            nxt = ranker.knowledge.next_scores([i for i, _ in reversed(interests)], [w for _, w in reversed(interests)])
            ids += sorted(nxt, key=lambda i: -nxt[i])[: size // 2]
        for i in ranker.knowledge.popular_items(size):
            if len(ids) >= size:
                break
            if i not in ids:
                ids.append(i)
        products = [ranker.catalog.get(i) for i in ids]
        return [Candidate(product=p, score=0.0) for p in products if p is not None]

    return pool


def replay(
    events: Iterable[Event], ranker: Ranker, candidates_fn: CandidatesFn, record_from: int = 0
) -> list[Instance]:
    """Instances from a log; the first ``record_from`` events only warm the knowledge up."""
    instances: list[Instance] = []
    last_query: dict[str, str] = {}
    for k, e in enumerate(events):
        if e.type == EventType.search:
            last_query[e.session_id] = e.query or ""
        elif e.type in POSITIVE and e.type != EventType.view and k >= record_from:
            profile = ranker.profile(e.session_id)
            pool = list(candidates_fn(profile, last_query.get(e.session_id), ranker))
            ids = [c.product.id for c in pool]
            if e.product_id in ids and len(pool) > 1:
                feats, _ = ranker.features(pool, profile, last_query.get(e.session_id))
                matrix = np.stack([SIGN[name] * feats[name] for name in FEATURES], axis=1)
                instances.append(Instance(matrix, ids.index(e.product_id or ""), e.session_id))
        ranker.record([e])
    return instances


def mrr(instances: Sequence[Instance], weights: np.ndarray) -> float:
    if not instances:
        return 0.0
    total = 0.0
    for inst in instances:
        scores = inst.features @ weights
        target = scores[inst.target]
        # rank with ties counted against the target (no credit for a tie)
        rank = int((scores > target).sum() + (scores == target).sum())
        total += 1.0 / rank
    return total / len(instances)


def fit(
    instances: Sequence[Instance],
    start: RankingWeights,
    fixed: Iterable[str] = ("text",),
    rounds: int = 3,
    only: Iterable[str] | None = None,
) -> tuple[RankingWeights, dict[str, Any]]:
    """Coordinate ascent over ``GRID`` for every weight not in ``fixed`` (and in ``only`` when
    given: features whose values mean nothing in this log stay out) that varies in the log."""
    w = np.array([getattr(start, name) for name in FEATURES], dtype=np.float64)
    allowed = set(FEATURES if only is None else only) - set(fixed)
    informative = [
        name
        for j, name in enumerate(FEATURES)
        if name in allowed and any(float(np.ptp(inst.features[:, j])) > 0 for inst in instances)
    ]
    best = mrr(instances, w)
    history = [{"round": 0, "mrr": round(best, 4)}]
    for r in range(1, rounds + 1):
        for name in informative:
            j = FEATURES.index(name)
            for value in GRID:
                trial = w.copy()
                trial[j] = value
                score = mrr(instances, trial)
                if score > best + 1e-9:
                    best, w = score, trial
        history.append({"round": r, "mrr": round(best, 4)})
    fitted = start.model_copy(update={name: float(w[FEATURES.index(name)]) for name in informative})
    return fitted, {"fitted": informative, "not_informed_by_this_log": [n for n in FEATURES if n not in informative]}


def diginetica_events(path: Path, ids: Sequence[str], limit: int, seed: int) -> list[Event]:
    """Real Diginetica click sessions as click events, anonymous items mapped onto ``ids``."""
    sessions = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            sessions.append(json.loads(line)["items"])
    rng = random.Random(seed)
    start = rng.randrange(0, max(1, len(sessions) - limit))
    events = []
    t = 1.7e9
    for k, items in enumerate(sessions[start : start + limit]):
        for item in items:
            t += 1.0
            events.append(
                Event.model_construct(
                    session_id=f"d{k}", type=EventType.click, product_id=ids[item % len(ids)], ts=t, seq=None
                )
            )
    return events

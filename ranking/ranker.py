"""The embedding ranker: retrieval candidates re-scored with what this shopper and all shoppers did.

The product's seed design was ``R = w1·interest + w2·similarity``. Generalised, every candidate
gets a linear score over features that are each put on a comparable scale within the candidate
list::

    R = w_text·text            retrieval score, z-scored over the candidates
      + w_interest·interest    shared knowledge: transitions/co-occurrence from the session's items
      + w_similarity·similarity  content (embedding) similarity to the session's items, interest-weighted
      + w_query·query          items shoppers clicked/carted after this same query
      + w_popularity·popularity  decayed event counts, log-scaled; for a cold item, borrowed from
                                 its content neighbours among warm items
      + w_exploration·exploration  a bonus for items with little exposure (new products get seen)
      - w_dislike·dislike      similarity to items the shopper rejected ("not this" and near-duplicates)
      - w_stock·out_of_stock

Weights (``RankingWeights``) are documented with how they were chosen; ``ranking/tune.py``
re-fits them on a log. The list is then diversified by MMR over the product embeddings
(``mmr_lambda``), so the top of the list is not five near-duplicates. Each result carries the
reasons whose contribution moved it most, for the UI's "why this".
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ranking.events import AppendResult, EventLog, validate_events
from ranking.knowledge import SharedKnowledge
from ranking.session import SessionProfile, SessionTracker
from shopassist.models import Candidate, Event, Product

CATCH_UP_S = 0.5  # how stale the shared knowledge may be with respect to other processes


class RankingWeights(BaseModel):
    """Feature weights; text relevance is the unit.

    ``popularity`` was fitted by ``python benchmarks/tune_ranker.py`` on real Diginetica sessions against
    ``interest`` (0.3 → 0.05; held-out MRR 0.2924 → 0.2930, ~4,800 clicks: once a session has
    history, what it did says far more than what is popular). The others are not fitted yet: no
    log here has searches and product content (see ``ranking/tune.py``); they are set so that a
    click's content similarity or shared-knowledge signal can move an item past a slightly better
    text match (interest, similarity ~ 1-1.5 z-units), and a "not this" near-duplicate sinks
    below everything else (dislike 3)."""

    text: float = 1.0
    interest: float = 1.2
    similarity: float = 1.5
    query: float = 0.8
    popularity: float = 0.05
    exploration: float = 0.2
    dislike: float = 3.0
    stock: float = 2.0
    mmr_lambda: float = Field(default=0.8, ge=0.0, le=1.0)


FEATURES = ("text", "interest", "similarity", "query", "popularity", "exploration", "dislike", "stock")
WARM_REFERENCE = 500  # popular items a cold item's popularity is borrowed from
NEAR_DUPLICATE = 0.9  # cosine above which a product counts as a near-duplicate of a disliked one


EVENT_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


@dataclass
class RecordResult(AppendResult):
    """``AppendResult`` plus the events skipped as retries of ones already recorded (same
    ``event_id`` in the same session): ``(index in the batch, seq of the first recording)``,
    the seq None for a repeat within the same batch."""

    duplicates: list[tuple[int, int | None]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "duplicates": [{"index": i, "seq": seq} for i, seq in self.duplicates]}


class _Gate:
    """Many holders at once (``shared``: recording events), or one alone (``exclusive``: forgetting
    a session, which must not race an append of that session's events)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._closed = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._closed = False
                self._cond.notify_all()


class RecentEventIds:
    """The (session, event id) pairs recorded lately, for idempotent retries: at most ``size``
    of them, none older than ``ttl_s`` (the oldest go first). Kept in memory: the event log has
    no column for them, so a retry that comes after a restart of the server counts again."""

    def __init__(self, size: int = 50_000, ttl_s: float = 86_400.0) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._seen: OrderedDict[bytes, tuple[int | None, float]] = OrderedDict()

    @staticmethod
    def key(session_id: str, event_id: str) -> bytes:
        return hashlib.blake2b(f"{session_id}\0{event_id}".encode(), digest_size=16).digest()

    def __contains__(self, key: bytes) -> bool:
        self._expire(time.monotonic())
        return key in self._seen

    def seq(self, key: bytes) -> int | None:
        """The seq of the first recording of this key (None if unknown)."""
        hit = self._seen.get(key)
        return None if hit is None else hit[0]

    def add(self, key: bytes, seq: int | None) -> None:
        now = time.monotonic()
        self._seen[key] = (seq, now)
        self._seen.move_to_end(key)
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._seen and (len(self._seen) > self.size or now - next(iter(self._seen.values()))[1] > self.ttl_s):
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


def _z(values: np.ndarray) -> np.ndarray:
    if len(values) < 2:
        return np.zeros_like(values)
    sd = float(values.std())
    return (values - values.mean()) / sd if sd > 1e-9 else np.zeros_like(values)


def _scaled(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values)


class Ranker:
    """Re-ranks candidates for a session; owns the event log, live sessions and shared knowledge.

    ``catalog`` needs ``vectors_for(ids)``, ``nearest(vector, k, exclude)`` and ``get(id)``
    (``retrieval.Catalog``). Events go through ``record``: written to the log first (durable),
    then applied to the session and the shared knowledge, so the next ``rank`` sees them.
    """

    def __init__(
        self,
        catalog: Any,
        log: EventLog | None = None,
        weights: RankingWeights | None = None,
        knowledge: SharedKnowledge | None = None,
    ) -> None:
        self.catalog = catalog
        self.log = log
        self.weights = weights or RankingWeights()
        self.knowledge = knowledge or SharedKnowledge()
        self.sessions = SessionTracker(log)
        self._lock = threading.Lock()
        # the duplicate check and the id registration, each one step; the append between them runs
        # unlocked (requests append at once: Redis then commits their fsyncs together), the ids in
        # flight meanwhile reserved in ``_inflight`` so that a retry racing its original is a duplicate
        self._record_lock = threading.Lock()
        self._inflight: set[bytes] = set()
        self._gate = _Gate()  # appends share it; forgetting a session takes it alone
        self.event_ids = RecentEventIds()
        self._warm_cache: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None
        self._caught_up_at = time.monotonic()
        if log is not None:  # the shared knowledge is rebuilt by replaying the whole log
            self.knowledge.observe_all(log.replay())

    # -- events --------------------------------------------------------------------------------
    def record(
        self,
        events: Iterable[Event | Mapping[str, Any]],
        known_product: Callable[[str], bool] | None = None,
    ) -> RecordResult:
        """Validate, write durably, then apply. Invalid events are returned with their reasons.

        An event may carry an ``event_id`` (1-128 letters, digits or . _ : @ -): a second event
        with the same id in the same session within the dedupe window (``event_ids``) is not
        recorded again but reported in ``duplicates``, so a client can retry safely after a lost
        answer. With ``known_product``, an event about a product it does not know is refused."""
        result = RecordResult()
        with self._gate.shared():
            kept: list[int] = []
            clean: list[Event | Mapping[str, Any]] = []
            keys: list[bytes | None] = []
            batch: dict[bytes, int] = {}
            with self._record_lock:
                for i, raw in enumerate(events):
                    key = None
                    if isinstance(raw, Mapping):
                        if "event_id" in raw:
                            raw = dict(raw)
                            event_id = raw.pop("event_id")
                            if event_id is not None:
                                if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
                                    result.rejected.append((i, "event_id must be 1-128 letters, digits or . _ : @ -"))
                                    continue
                                key = RecentEventIds.key(str(raw.get("session_id")), event_id)
                                if key in batch or key in self._inflight:
                                    result.duplicates.append((i, None))
                                    continue
                                if key in self.event_ids:
                                    result.duplicates.append((i, self.event_ids.seq(key)))
                                    continue
                                batch[key] = i
                        product = raw.get("product_id")
                        if (
                            known_product is not None
                            and raw.get("type") != "search"
                            and isinstance(product, str)
                            and product.strip()
                            and not known_product(product)
                        ):
                            result.rejected.append(
                                (i, f"product_id: no product with id {product[:80]!r} in the catalog")
                            )
                            continue
                    kept.append(i)
                    clean.append(raw)
                    keys.append(key)
                self._inflight.update(batch)
            try:
                appended = self.log.append(clean) if self.log is not None and clean else validate_events(clean)
            except BaseException:
                with self._record_lock:
                    self._inflight.difference_update(batch)
                raise
            refused = {j for j, _ in appended.rejected}
            result.rejected += [(kept[j], reason) for j, reason in appended.rejected]
            result.rejected.sort()
            result.accepted = appended.accepted
            landed = [j for j in range(len(clean)) if j not in refused]
            with self._record_lock:
                for j, event in zip(landed, appended.accepted, strict=True):
                    if (key := keys[j]) is not None:
                        self.event_ids.add(key, event.seq)
                self._inflight.difference_update(batch)
            with self._lock:
                for e in result.accepted:
                    self.sessions.observe(e)
                if self.log is not None and result.accepted:
                    # from the log, in order: events other processes appended before these are
                    # taken too (observing only ours would move past theirs for good)
                    self._caught_up_at = time.monotonic()
                    self.knowledge.observe_all(self.log.replay(self.knowledge.last_seq))
                else:
                    for e in result.accepted:
                        self.knowledge.observe(e)
        return result

    def catch_up(self) -> int:
        """Apply events other processes appended to the log since this process last looked."""
        if self.log is None:
            return 0
        with self._lock:
            self._caught_up_at = time.monotonic()
            return self.knowledge.observe_all(self.log.replay(self.knowledge.last_seq))

    def _catch_up_if_due(self) -> None:
        # another worker on the same log (``serve`` processes sharing a home) recorded events:
        # the shared knowledge takes them in before ranking, at most every CATCH_UP_S (one
        # indexed read); a session's own profile catches up on every read (SessionTracker.profile)
        if self.log is not None and time.monotonic() - self._caught_up_at >= CATCH_UP_S:
            self.catch_up()

    def profile(self, session_id: str) -> SessionProfile:
        return self.sessions.profile(session_id)

    def forget_session(self, *session_ids: str) -> tuple[int, bool]:
        """Forget sessions (each id as the caller knows it: raw or pseudonym): their events leave
        the log, their profiles leave memory, and the shared knowledge is rebuilt from what the log
        still holds (as a restart would), so nothing they did or typed stays in it. Without a log
        only their per-session state leaves the knowledge. Returns (events deleted, whether a
        profile was in memory). A knowledge seeded by ``learn_sessions`` loses that seed."""
        with self._gate.exclusive():
            delete = getattr(self.log, "delete_sessions", None)
            deleted = int(delete(session_ids)) if delete is not None else 0
            fresh = None
            if self.log is not None:
                fresh = SharedKnowledge(self.knowledge.params, limits=self.knowledge.limits)
                fresh.observe_all(self.log.replay())
            with self._lock:
                had = [self.sessions.forget(sid) for sid in session_ids]
                if fresh is not None:
                    self.knowledge = fresh
                    self._warm_cache = None
                else:
                    for sid in session_ids:
                        self.knowledge.forget_session(sid)
        return deleted, any(had)

    # -- ranking -------------------------------------------------------------------------------
    def features(
        self, candidates: Sequence[Candidate], profile: SessionProfile, query: str | None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        ids = [c.product.id for c in candidates]
        n = len(ids)
        vecs, has = self.catalog.vectors_for(ids)
        f: dict[str, np.ndarray] = {}
        f["text"] = _z(np.array([c.score for c in candidates], dtype=np.float64))

        interests = profile.top_interests(20)
        if interests:
            next_scores = self.knowledge.next_scores(
                [i for i, _ in reversed(interests)], [w for _, w in reversed(interests)]
            )
            f["interest"] = _scaled(np.log1p(np.array([next_scores.get(i, 0.0) for i in ids]) * 100))
            ivecs, ihas = self.catalog.vectors_for([i for i, _ in interests])
            w = np.array([wt for _, wt in interests], dtype=np.float64) * ihas
            if w.sum() > 0:
                sims = vecs @ ivecs[ihas].T  # (n, k)
                weights = w[ihas] / w[ihas].sum()
                f["similarity"] = (sims * weights).sum(axis=1) + 0.5 * sims.max(axis=1)
                f["similarity"] = np.where(has, f["similarity"] - f["similarity"][has].mean(), 0.0)
            else:
                f["similarity"] = np.zeros(n)
        else:
            f["interest"] = np.zeros(n)
            f["similarity"] = np.zeros(n)

        q = self.knowledge.query_scores(query)
        f["query"] = _scaled(np.array([q.get(i, 0.0) for i in ids]))
        f["popularity"] = _scaled(np.log1p(self.popularities(ids, vecs, has)))
        exposure = np.array([self.knowledge.exposure.get(i, 0) for i in ids], dtype=np.float64)
        f["exploration"] = 1.0 / np.sqrt(1.0 + exposure)

        if profile.disliked:
            dvecs, dhas = self.catalog.vectors_for(profile.disliked[-20:])
            if dhas.any():
                dsim = (vecs @ dvecs[dhas].T).max(axis=1)
                f["dislike"] = np.where(has, np.clip((dsim - 0.5) / (NEAR_DUPLICATE - 0.5), 0.0, 1.5), 0.0)
            else:
                f["dislike"] = np.zeros(n)
        else:
            f["dislike"] = np.zeros(n)
        f["stock"] = np.array(
            [1.0 if c.product.stock is not None and c.product.stock <= 0 else 0.0 for c in candidates]
        )
        return f, vecs

    def _warm_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Vectors and popularity of the most popular warm items (cached; refreshed every 200
        events), which cold items borrow popularity from by content similarity."""
        kn = self.knowledge
        version = (kn.events_seen // 200, len(kn.popular.value))
        if self._warm_cache is None or self._warm_cache[0] != version:
            top = kn.popular.top(WARM_REFERENCE, kn.last_ts)
            vecs, has = self.catalog.vectors_for([i for i, _ in top])
            pops = np.array([v for _, v in top], dtype=np.float64)
            self._warm_cache = (version, vecs[has], pops[has])
        return self._warm_cache[1], self._warm_cache[2]

    def popularities(self, ids: Sequence[str], vecs: np.ndarray, has: np.ndarray) -> np.ndarray:
        """Decayed event counts; a cold item (no events yet) borrows a damped popularity from its
        10 most similar warm items, so a new product is not stuck at zero."""
        kn = self.knowledge
        pops = np.array(kn.popular.get_many(ids, kn.last_ts), dtype=np.float64)
        warm = np.array([kn.is_warm(i) for i in ids], dtype=bool)
        pops[~warm] = np.nan
        cold = ~warm & has
        if cold.any():
            ref, ref_pop = self._warm_reference()
            if len(ref):
                sims = vecs[cold] @ ref.T
                k = min(10, len(ref))
                top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
                near = np.take_along_axis(sims, top, axis=1).clip(0.0, None)
                pops[cold] = 0.5 * (near * ref_pop[top]).mean(axis=1)
        return np.nan_to_num(pops, nan=0.0)

    def score(
        self, candidates: Sequence[Candidate], profile: SessionProfile, query: str | None
    ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        f, vecs = self.features(candidates, profile, query)
        w = self.weights
        total = (
            w.text * f["text"]
            + w.interest * f["interest"]
            + w.similarity * f["similarity"]
            + w.query * f["query"]
            + w.popularity * f["popularity"]
            + w.exploration * f["exploration"]
            - w.dislike * f["dislike"]
            - w.stock * f["stock"]
        )
        return total, f, vecs

    def rank(
        self, session_id: str | None, candidates: Sequence[Candidate], query: str | None = None, k: int | None = None
    ) -> list[Candidate]:
        """The candidates re-ordered for this session, diversified, each with its reasons."""
        if not candidates:
            return []
        self._catch_up_if_due()
        profile = self.profile(session_id) if session_id else SessionProfile("_anonymous")
        disliked = set(profile.disliked)
        pool = [c for c in candidates if c.product.id not in disliked]
        if not pool:
            return []
        total, f, vecs = self.score(pool, profile, query)
        order = self._mmr(total, vecs, min(k or len(pool), len(pool)))
        means = {name: float(v.mean()) for name, v in f.items()}
        out = []
        for idx in order:
            c = pool[idx]
            reasons = self._reasons(idx, f, means, c.product, profile, query)
            out.append(c.model_copy(update={"score": float(total[idx]), "reasons": [*c.reasons, *reasons]}))
        return out

    def _mmr(self, scores: np.ndarray, vecs: np.ndarray, k: int) -> list[int]:
        lam = self.weights.mmr_lambda
        n = len(scores)
        if lam >= 1.0 or n <= 1:
            return list(np.argsort(-scores, kind="stable")[:k])
        # relevance on a 0..1 scale so it trades against cosine similarity
        rel = (scores - scores.min()) / (scores.max() - scores.min() + 1e-9)
        # one matrix-vector product per pick (k x n similarities, not n x n)
        chosen: list[int] = []
        max_sim = np.full(n, -np.inf)
        remaining = np.ones(n, dtype=bool)
        for _ in range(k):
            penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
            mmr = lam * rel - (1 - lam) * penalty
            mmr[~remaining] = -np.inf
            pick = int(np.argmax(mmr))
            chosen.append(pick)
            remaining[pick] = False
            max_sim = np.maximum(max_sim, vecs @ vecs[pick])
        return chosen

    def _reasons(
        self,
        idx: int,
        f: dict[str, np.ndarray],
        means: dict[str, float],
        product: Product,
        profile: SessionProfile,
        query: str | None,
    ) -> list[str]:
        # what moved it: a feature's contribution above that feature's mean over the candidates
        w = self.weights
        names = ("interest", "similarity", "query", "popularity", "exploration")
        lift = {name: float(f[name][idx] - means[name]) for name in names}
        # a reason is a feature this product stands out on (0.2 above the candidates' mean, on the
        # feature's own 0..1 scale) and that the ranker weighs; ordered by what it added to R
        contrib = {name: getattr(w, name) * lift[name] if lift[name] >= 0.2 else 0.0 for name in names}
        # reason codes (the assistant says them in plain words, ``assistant.tools.reason_phrases``)
        reasons = []
        if f["text"][idx] > 0.5:
            reasons.append("search")  # a strong text match among the candidates
        for name, value in sorted(contrib.items(), key=lambda kv: -kv[1]):
            if value <= 0:
                continue
            if name == "interest" and profile.order:
                reasons.append("viewed_together")  # shoppers who viewed what this shopper viewed chose it
            elif name == "similarity" and profile.order:
                # like the product this shopper looked at last (its id: a UI can name it)
                reasons.append(f"similar_to:{profile.order[-1]}")
            elif name == "query":
                reasons.append("after_search")  # often chosen after this search
            elif name == "popularity":
                reasons.append("popular" if self.knowledge.is_warm(product.id) else "like_popular")
            elif name == "exploration":
                reasons.append("new")  # few shoppers have seen it yet
        return reasons[:3] + (["out_of_stock"] if f["stock"][idx] > 0 else [])

    # -- cold start ----------------------------------------------------------------------------
    def recommend(
        self,
        session_id: str | None,
        k: int = 10,
        allowed: Iterable[str] | None = None,
        category: str | None = None,
    ) -> list[str]:
        """Items for a session with no query: next-item statistics from its items, then content
        neighbours of its items, then trending and popular items (a new shopper's cold start);
        ``category`` (any level name or path prefix) keeps it to popular-in-category."""
        profile = self.profile(session_id) if session_id else SessionProfile("_anonymous")
        allowed_set = set(allowed) if allowed is not None else None
        if category:
            want = category.casefold()
            in_cat = {
                p.id
                for p in self.catalog.products()
                if p.category and (p.category.casefold().startswith(want) or want in p.category.casefold().split(" > "))
            }
            allowed_set = in_cat if allowed_set is None else allowed_set & in_cat
        seen = set(profile.interest) | set(profile.disliked)
        out: list[str] = []

        def take(items: Iterable[str]) -> None:
            for i in items:
                if len(out) >= k:
                    return
                fits = i not in seen and i not in out and (allowed_set is None or i in allowed_set)
                if fits and self.catalog.get(i) is not None:
                    out.append(i)

        interests = profile.top_interests(20)
        if interests:
            nxt = self.knowledge.next_scores([i for i, _ in reversed(interests)], [w for _, w in reversed(interests)])
            take(heapq.nlargest(k * 3, nxt, key=nxt.__getitem__))
            vecs, has = self.catalog.vectors_for([i for i, _ in interests[:3]])
            for v, h in zip(vecs, has, strict=True):
                if h:
                    take(pid for pid, _ in self.catalog.nearest(v, k, exclude=seen))
        take(self.knowledge.trending_items(k * 3, allowed=allowed_set))
        take(self.knowledge.popular_items(k * 3, allowed=allowed_set))
        return out

"""Shared knowledge: what all shoppers did, learned incrementally from the event stream.

Every positive event (view, click, add to cart, purchase) of a session updates, at once:

* **transitions** ``i → j``: j was interacted with after i in the same session, weighted by
  ``1 / distance`` for the next ``window`` items (the sequence signal: "people who looked at i
  next looked at j");
* **co-occurrence** ``i ~ j``: both in the same session's recent items (symmetric, order-free);
* **popularity**: event-weighted counts, kept twice with exponential time decay (a long half-life
  for "popular", a short one for "trending");
* **query → item**: items clicked/carted/bought after a search query in the same session;
* **exposure**: how often an item was viewed (a new item with little exposure gets a fair share).

Nothing here needs a batch job: ``observe`` is O(window + recent items) per event, and a fresh
process rebuilds everything by replaying the event log from the start.

**Bounded influence.** The live stream (``observe``) is open to whoever can write events, so one
session can move the shared statistics only so far (``KnowledgeLimits``): a session counts once
per item pair (transitions and co-occurrence, at the pair's first occurrence in it), once per
(query, item) (with the strongest event type it showed), once per item for exposure, and adds at
most ``item_credit`` (one purchase) to an item's popularity; only its first ``session_items``
distinct items teach anything. Repeating a click a thousand times is worth one click.

**Bounded memory** (``KnowledgeLimits``; every cap is applied as events arrive, so a replay of the
log gives the same state as the live process):

* per-session state (recent items, last query, what the session has already been credited for)
  is an LRU of ``max_sessions`` sessions: the least recently active one is dropped first (if it
  comes back, it starts afresh);
* query rows are an LRU of ``max_queries`` queries (by last update);
* every query, transition and co-occurrence row keeps at most ``max_row`` items: when a row
  reaches twice that, it is cut back to its ``max_row`` strongest entries;
* items (popularity, exposure, transition and co-occurrence rows): when more than
  ``max_items`` · 1.25 are known, the least popular are dropped down to ``max_items``.

``learn_sessions`` (an offline click log given by the operator, e.g. Diginetica for the evals)
is trusted: it is neither capped nor deduplicated, and is bounded by the log it is given.

``next_scores`` is the "item-transition" recommender used for cold sessions and as a ranking
feature; ``evals/sessions.py`` measures it on Diginetica next-click prediction.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shopassist.models import Event, EventType

# How much one event of each type says about interest (a purchase says more than a view).
EVENT_WEIGHT: dict[EventType, float] = {
    EventType.view: 0.5,
    EventType.click: 1.0,
    EventType.add_to_cart: 3.0,
    EventType.purchase: 5.0,
}
POSITIVE = frozenset(EVENT_WEIGHT)


def normalize_query(query: str) -> str:
    return " ".join(query.casefold().split())


@dataclass(frozen=True)
class KnowledgeParams:
    """The statistics' shape, chosen on a validation split of the Diginetica train sessions (the
    last 10% of sessions, 15,000 prefixes; never on its test set). Measured there (P@20 / MRR@20):
    co-occurrence weight 0.3 → 39.42 / 11.58, 1.0 → 40.31 / 11.77, 2.0 → 40.70 / 11.91, 4.0 →
    40.82 / 11.88; window 2, 3 or 5 barely matter; recency 0.5-0.7 is best (0, the last item
    only: 27-32 P@20). Co-occurrence helps because it is symmetric: it brings back items the
    shopper already saw, which transitions (no self-loops) never predict."""

    window: int = 3  # transitions to the next `window` items, weighted 1/distance
    cooc_recent: int = 10  # co-occurrence with the session's last `cooc_recent` items
    recency: float = 0.6  # weight of the k-th most recent session item: recency**k
    transition_weight: float = 1.0
    cooc_weight: float = 2.0
    popular_half_life_s: float = 30 * 86400.0
    trending_half_life_s: float = 86400.0


@dataclass(frozen=True)
class KnowledgeLimits:
    """How far one session can move the shared statistics, and how much memory they may take
    (see the module docstring). Worst case with the defaults: about 20,000 sessions × ~3 KB of
    per-session state, 10,000 query rows × 100 entries, 200,000 items × 2 rows × 100 entries.
    Measured through the API (``POST /v1/events`` with the key, 1,000 events a request, every
    pair of events a new session with a new query): the process grew 54 MB over the first 100,000
    events while the caps filled and 2 MB over the next 100,000; without the caps, 83 MB and then
    71 MB more, without end."""

    max_sessions: int = 20_000  # per-session state kept (LRU)
    session_items: int = 64  # distinct items one session can teach the shared statistics
    session_queries: int = 8  # distinct queries one session can teach query → item for
    item_credit: float = EVENT_WEIGHT[EventType.purchase]  # one session's popularity credit per item
    max_queries: int = 10_000  # query rows (LRU by last update)
    max_row: int = 100  # entries per query / transition / co-occurrence row
    max_items: int = 200_000  # items with statistics


class _SessionState:
    """What the shared knowledge remembers of one live session: its recent items and last query,
    and what it was already credited for (items by index; pairs as bits of an int)."""

    __slots__ = ("credit", "index", "pairs", "queried", "query", "recent", "viewed")

    def __init__(self, max_recent: int) -> None:
        self.recent: deque[str] = deque(maxlen=max_recent)
        self.query: str | None = None
        self.index: dict[str, int] = {}  # item -> its index among the session's distinct items
        self.credit: list[float] = []  # popularity credited per item index
        self.viewed = 0  # bit k: item k's exposure was counted
        self.pairs = 0  # bit 2·(a·n + b): transition a → b counted; bit 2·(a·n + b) + 1: co-occurrence
        self.queried: dict[str, dict[int, float]] = {}  # query -> item index -> weight credited


def _prune_row(row: dict[str, float], keep: int) -> None:
    """Cut a row back to its ``keep`` strongest entries (ties: the earlier entry stays)."""
    if len(row) < 2 * keep:
        return
    strongest = set(sorted(row, key=lambda k: -row[k])[:keep])
    for k in [k for k in row if k not in strongest]:
        del row[k]


class _Decayed:
    """Counts with exponential time decay, updated lazily (value at time t = v·2^(-(t-t0)/h))."""

    def __init__(self, half_life_s: float) -> None:
        self.rate = math.log(2) / half_life_s
        self.value: dict[str, float] = {}
        self.at: dict[str, float] = {}

    def add(self, key: str, amount: float, ts: float) -> None:
        old = self.value.get(key)
        if old is None:
            self.value[key], self.at[key] = amount, ts
            return
        t0 = self.at[key]
        if ts >= t0:
            self.value[key] = old * math.exp(-self.rate * (ts - t0)) + amount
            self.at[key] = ts
        else:  # a late event: decay it to the stored time instead
            self.value[key] = old + amount * math.exp(-self.rate * (t0 - ts))

    def get(self, key: str, now: float) -> float:
        v = self.value.get(key)
        if v is None:
            return 0.0
        return v * math.exp(-self.rate * max(0.0, now - self.at[key]))

    def get_many(self, keys: Sequence[str], now: float) -> list[float]:
        """``get`` for many keys at once (one vectorised decay): 0 for unknown keys."""
        import numpy as np

        values = np.array([self.value.get(k, 0.0) for k in keys], dtype=np.float64)
        ats = np.array([self.at.get(k, now) for k in keys], dtype=np.float64)
        return list(values * np.exp(-self.rate * np.maximum(0.0, now - ats)))

    def top(self, n: int, now: float, allowed: Iterable[str] | None = None) -> list[tuple[str, float]]:
        keys = self.value.keys() if allowed is None else (k for k in allowed if k in self.value)
        scored = ((k, self.get(k, now)) for k in keys)
        return sorted(scored, key=lambda kv: -kv[1])[:n]

    def drop(self, key: str) -> None:
        self.value.pop(key, None)
        self.at.pop(key, None)


class SharedKnowledge:
    """Item-to-item and query-to-item statistics across all sessions, updated per event; bounded
    per session and in memory by ``limits`` (see the module docstring)."""

    def __init__(
        self, params: KnowledgeParams | None = None, max_recent: int = 20, limits: KnowledgeLimits | None = None
    ) -> None:
        self.params = params or KnowledgeParams()
        self.limits = limits or KnowledgeLimits()
        self.transitions: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.cooc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.popular = _Decayed(self.params.popular_half_life_s)
        self.trending = _Decayed(self.params.trending_half_life_s)
        self.query_items: OrderedDict[str, dict[str, float]] = OrderedDict()
        self.exposure: Counter[str] = Counter()
        self.events_seen = 0
        self.last_seq = 0
        self.last_ts = 0.0
        self._sessions: OrderedDict[str, _SessionState] = OrderedDict()
        self._max_recent = max_recent

    # -- learning ------------------------------------------------------------------------------
    def _session(self, session_id: str) -> _SessionState:
        state = self._sessions.get(session_id)
        if state is None:
            state = self._sessions[session_id] = _SessionState(self._max_recent)
            while len(self._sessions) > self.limits.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(session_id)
        return state

    def observe(self, event: Event) -> None:
        """Learn from one live event, within the per-session and memory bounds."""
        self.events_seen += 1
        if event.seq is not None:
            self.last_seq = max(self.last_seq, event.seq)
        ts = float(event.ts or 0.0)
        self.last_ts = max(self.last_ts, ts)
        lim = self.limits
        if event.type == EventType.search:
            self._session(event.session_id).query = normalize_query(event.query or "")
            return
        if event.type not in POSITIVE:
            return
        state = self._session(event.session_id)
        item = event.product_id or ""
        idx = state.index.get(item)
        if idx is None:
            if len(state.index) >= lim.session_items:
                return  # this session has taught all it may
            idx = state.index[item] = len(state.index)
            state.credit.append(0.0)
        if event.type == EventType.view and not state.viewed >> idx & 1:
            state.viewed |= 1 << idx
            self.exposure[item] += 1
        weight = EVENT_WEIGHT[event.type]
        credit = min(weight, lim.item_credit - state.credit[idx])
        if credit > 0:
            state.credit[idx] += credit
            self.popular.add(item, credit, ts)
            self.trending.add(item, credit, ts)
        query = state.query
        if query and event.type != EventType.view:
            self._credit_query(state, query, item, idx, weight)
        recent = state.recent
        if recent and recent[-1] == item:
            return  # a repeated click on the same item is not a transition
        p = self.params
        n = lim.session_items
        for distance, prev in enumerate(reversed(recent), 1):
            if prev == item:
                continue
            j = state.index[prev]
            if distance <= p.window:
                bit = 1 << (2 * (j * n + idx))
                if not state.pairs & bit:
                    state.pairs |= bit
                    self._add(self.transitions, prev, item, 1.0 / distance)
            if distance <= p.cooc_recent:
                a, b = min(j, idx), max(j, idx)
                bit = 1 << (2 * (a * n + b) + 1)
                if not state.pairs & bit:
                    state.pairs |= bit
                    self._add(self.cooc, prev, item, 1.0)
                    self._add(self.cooc, item, prev, 1.0)
        recent.append(item)
        if len(self.popular.value) > lim.max_items * 1.25:
            self._prune_items()

    def _credit_query(self, state: _SessionState, query: str, item: str, idx: int, weight: float) -> None:
        lim = self.limits
        given = state.queried.get(query)
        if given is None:
            if len(state.queried) >= lim.session_queries:
                return
            given = state.queried[query] = {}
        old = given.get(idx, 0.0)
        if weight <= old:
            return
        given[idx] = weight
        row = self.query_items.get(query)
        if row is None:
            row = self.query_items[query] = {}
            while len(self.query_items) > lim.max_queries:
                self.query_items.popitem(last=False)
        else:
            self.query_items.move_to_end(query)
        row[item] = row.get(item, 0.0) + weight - old
        _prune_row(row, lim.max_row)

    def _add(self, table: dict[str, dict[str, float]], src: str, dst: str, amount: float) -> None:
        row = table[src]
        row[dst] += amount
        _prune_row(row, self.limits.max_row)

    def _prune_items(self) -> None:
        """Keep the ``max_items`` most popular items' statistics (popularity, exposure, rows)."""
        keep = {k for k, _ in self.popular.top(self.limits.max_items, self.last_ts)}
        for item in [k for k in self.popular.value if k not in keep]:
            self.popular.drop(item)
            self.trending.drop(item)
            self.exposure.pop(item, None)
            self.transitions.pop(item, None)
            self.cooc.pop(item, None)

    def observe_all(self, events: Iterable[Event]) -> int:
        n = 0
        for e in events:
            self.observe(e)
            n += 1
        return n

    def forget_session(self, session_id: str) -> None:
        """Drop the per-session state of one session (what it taught stays, anonymous)."""
        self._sessions.pop(session_id, None)

    def learn_sessions(self, sessions: Iterable[Sequence[str]]) -> None:
        """Learn from plain click sequences (an offline log with no event types or times). The
        log is the operator's, so it is trusted: no per-session caps, every repeat counts."""
        p = self.params
        for items in sessions:
            recent: deque[str] = deque(maxlen=self._max_recent)
            for item in items:
                self.events_seen += 1
                self.popular.add(item, EVENT_WEIGHT[EventType.click], 0.0)
                self.trending.add(item, EVENT_WEIGHT[EventType.click], 0.0)
                if recent and recent[-1] == item:
                    continue
                for distance, prev in enumerate(reversed(recent), 1):
                    if distance <= p.window and prev != item:
                        self.transitions[prev][item] += 1.0 / distance
                    if distance <= p.cooc_recent and prev != item:
                        self.cooc[prev][item] += 1.0
                        self.cooc[item][prev] += 1.0
                recent.append(item)

    # -- scoring -------------------------------------------------------------------------------
    def next_scores(self, items: Sequence[str], weights: Sequence[float] | None = None) -> dict[str, float]:
        """Scores of items likely to come next after a session's ``items`` (oldest first):
        recency-weighted transitions plus co-occurrence, each row normalised by its total."""
        p = self.params
        scores: dict[str, float] = defaultdict(float)
        seen: set[str] = set()
        k = 0
        for pos in range(len(items) - 1, -1, -1):
            item = items[pos]
            if item in seen:
                continue
            seen.add(item)
            w = p.recency**k * (1.0 if weights is None else weights[pos])
            k += 1
            for table, tw in ((self.transitions, p.transition_weight), (self.cooc, p.cooc_weight)):
                row = table.get(item)
                if not row or tw == 0:
                    continue
                total = sum(row.values())
                f = w * tw / total
                for j, c in row.items():
                    scores[j] += f * c
        return scores

    def query_scores(self, query: str | None) -> dict[str, float]:
        if not query:
            return {}
        row = self.query_items.get(normalize_query(query))
        if not row:
            return {}
        total = sum(row.values())
        return {k: v / total for k, v in row.items()}

    def popularity(self, item: str, now: float | None = None) -> float:
        return self.popular.get(item, self.last_ts if now is None else now)

    def trending_items(self, n: int, now: float | None = None, allowed: Iterable[str] | None = None) -> list[str]:
        return [k for k, _ in self.trending.top(n, self.last_ts if now is None else now, allowed)]

    def popular_items(self, n: int, now: float | None = None, allowed: Iterable[str] | None = None) -> list[str]:
        return [k for k, _ in self.popular.top(n, self.last_ts if now is None else now, allowed)]

    def is_warm(self, item: str) -> bool:
        return item in self.popular.value

    def stats(self) -> dict[str, int]:
        return {
            "events": self.events_seen,
            "items_with_events": len(self.popular.value),
            "transition_rows": len(self.transitions),
            "queries": len(self.query_items),
            "sessions": len(self._sessions),
            "last_seq": self.last_seq,
        }

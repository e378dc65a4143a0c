"""Live session state: what this shopper did in this session, updated on every event.

A ``SessionProfile`` keeps an interest weight per item (clicks, carts and purchases add to it;
every newer positive event decays the older ones, so a new query or click shifts interest
without erasing it), the disliked items, and the recent queries. ``SessionTracker`` holds the
profiles of active sessions in memory and catches up from the event log before each use, so an
event written by another process changes this process's next ranking too.

Memory is bounded: the tracker keeps ``max_sessions`` profiles (LRU), and a profile keeps at most
``MAX_INTEREST`` interest weights (the weakest are dropped: every newer event decays them anyway),
the last ``MAX_DISLIKED`` dislikes, and ``MAX_ITEMS`` carted and purchased items each.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from ranking.events import EventLog
from ranking.knowledge import EVENT_WEIGHT
from shopassist.models import Event, EventType

DECAY = 0.8  # older interests keep 80% of their weight per newer positive event
QUERY_DECAY = 0.7  # a new search keeps 70% of the interests from before it
MAX_INTEREST = 100  # interest weights kept per session (cut back to this at twice as many)
MAX_DISLIKED = 200  # the most recent dislikes kept per session
MAX_ITEMS = 200  # carted / purchased items remembered per session


@dataclass
class SessionProfile:
    session_id: str
    interest: dict[str, float] = field(default_factory=dict)  # item -> weight, insertion = first seen
    order: list[str] = field(default_factory=list)  # positive items, oldest first (repeats collapsed)
    disliked: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    carted: set[str] = field(default_factory=set)
    purchased: set[str] = field(default_factory=set)
    last_seq: int = 0
    events: int = 0

    def observe(self, event: Event) -> None:
        self.events += 1
        if event.seq is not None:
            self.last_seq = max(self.last_seq, event.seq)
        if event.type == EventType.search:
            self.queries = [*self.queries[-4:], event.query or ""]
            for k in self.interest:
                self.interest[k] *= QUERY_DECAY
            return
        item = event.product_id or ""
        if event.type == EventType.dislike:
            if item not in self.disliked:
                self.disliked.append(item)
                del self.disliked[:-MAX_DISLIKED]
            self.interest.pop(item, None)
            self.order = [i for i in self.order if i != item]
            return
        for k in self.interest:
            self.interest[k] *= DECAY
        self.interest[item] = self.interest.get(item, 0.0) + EVENT_WEIGHT[event.type]
        if len(self.interest) >= 2 * MAX_INTEREST:
            keep = set(sorted(self.interest, key=lambda k: -self.interest[k])[:MAX_INTEREST])
            self.interest = {k: v for k, v in self.interest.items() if k in keep}
        if item in self.disliked:  # clicking it again takes the dislike back
            self.disliked.remove(item)
        if not self.order or self.order[-1] != item:
            self.order.append(item)
            self.order = self.order[-50:]
        if event.type == EventType.add_to_cart and len(self.carted) < MAX_ITEMS:
            self.carted.add(item)
        elif event.type == EventType.purchase and len(self.purchased) < MAX_ITEMS:
            self.purchased.add(item)

    def top_interests(self, n: int = 10) -> list[tuple[str, float]]:
        return sorted(self.interest.items(), key=lambda kv: -kv[1])[:n]

    @property
    def is_cold(self) -> bool:
        return not self.interest


class SessionTracker:
    """Profiles of recent sessions (LRU-bounded), kept current from the event log."""

    def __init__(self, log: EventLog | None = None, max_sessions: int = 10_000) -> None:
        self.log = log
        self.max_sessions = max_sessions
        self._profiles: OrderedDict[str, SessionProfile] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, event: Event) -> SessionProfile:
        with self._lock:
            profile = self._get(event.session_id)
            if event.seq is not None and self.log is not None and event.seq > profile.last_seq + 1:
                # events another process appended for this session came in between: take them
                # (and this one) from the log in order, or moving past them would skip them
                for e in self.log.session(event.session_id, limit=200, since_seq=profile.last_seq):
                    if e.seq is None or e.seq <= event.seq:
                        profile.observe(e)
            if event.seq is None or event.seq > profile.last_seq:
                profile.observe(event)
            return profile

    def _get(self, session_id: str) -> SessionProfile:
        profile = self._profiles.get(session_id)
        if profile is None:
            profile = SessionProfile(session_id)
            if self.log is not None:
                for e in self.log.session(session_id):
                    profile.observe(e)
            self._profiles[session_id] = profile
            while len(self._profiles) > self.max_sessions:
                self._profiles.popitem(last=False)
        else:
            self._profiles.move_to_end(session_id)
        return profile

    def forget(self, session_id: str) -> bool:
        """Drop the session's profile from memory (privacy: the shopper asked to be forgotten),
        under whichever id it is kept: with a log that has ``key`` (pseudonyms), every profile
        whose id has the same key goes. True when a dropped profile held events."""
        key = getattr(self.log, "key", None)
        with self._lock:
            if key is None:
                names = [session_id] if session_id in self._profiles else []
            else:
                target = key(session_id)
                names = [sid for sid in self._profiles if key(sid) == target]
            dropped = [self._profiles.pop(sid) for sid in names]
        return any(p.events for p in dropped)

    def profile(self, session_id: str, catch_up: bool = True) -> SessionProfile:
        """The session's profile, after applying events another process appended since."""
        with self._lock:
            profile = self._get(session_id)
            if catch_up and self.log is not None:
                for e in self.log.session(session_id, limit=200, since_seq=profile.last_seq):
                    profile.observe(e)
            return profile

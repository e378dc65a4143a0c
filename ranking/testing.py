"""Test doubles for the ranking layer, shipped so that any test (ours or a user's) can use them.

``MemoryEventLog`` is an ``EventLog`` held in a Python list: the same validation, sequence
numbers, rejections, ``session()`` window and ``replay()`` order as ``SQLiteEventLog``, without
a file. Use it where durability and cross-process visibility are not what the test is about::

    from ranking.ranker import Ranker
    from ranking.testing import MemoryEventLog

    ranker = Ranker(catalog, MemoryEventLog())

Both backends pass the same contract tests (``tests/contracts/test_event_log_contract.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ranking.events import AppendResult, validate_events
from shopassist.models import Event

__all__ = ["MemoryEventLog"]


class MemoryEventLog:
    """``EventLog`` in memory: thread-safe, one process, gone when the object is.

    Events are stored and handed out as copies, so a caller changing an ``Event`` it got back
    does not change the log (as with the SQLite backend, which builds new objects per read).
    """

    def __init__(self, events: Iterable[Event | Mapping[str, Any]] = ()) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()
        if events:
            result = self.append(events)
            if result.rejected:
                raise ValueError(f"MemoryEventLog: initial events rejected: {result.rejected}")

    def close(self) -> None:
        """Nothing to release; here so that code written for ``SQLiteEventLog`` runs unchanged."""

    def __enter__(self) -> MemoryEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, events: Iterable[Event | Mapping[str, Any]]) -> AppendResult:
        """Validate every event; store the valid ones with the next sequence numbers, all at once."""
        result = validate_events(events)
        valid = result.accepted
        if not valid:
            return result
        with self._lock:
            first = len(self._events) + 1
            stored = [e.model_copy(update={"seq": first + k}) for k, e in enumerate(valid)]
            self._events.extend(stored)
        result.accepted = [e.model_copy() for e in stored]
        return result

    def session(self, session_id: str, limit: int = 200, since_seq: int = 0) -> list[Event]:
        """The session's last ``limit`` events after ``since_seq``, oldest first."""
        with self._lock:
            mine = [e for e in self._events[max(since_seq, 0) :] if e.session_id == session_id]
        if limit >= 0:  # a negative limit means no limit, as in SQLite
            mine = mine[len(mine) - limit :] if limit else []
        return [e.model_copy() for e in mine]

    def replay(self, since_seq: int = 0, batch: int = 10_000) -> Iterator[Event]:
        """Every event after ``since_seq`` in log order (events appended meanwhile included)."""
        last = max(since_seq, 0)
        while True:
            with self._lock:
                rows = self._events[last : last + max(batch, 1)]
            if not rows:
                return
            for e in rows:
                yield e.model_copy()
            last = int(rows[-1].seq or last + len(rows))

    def last_seq(self) -> int:
        with self._lock:
            return len(self._events)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

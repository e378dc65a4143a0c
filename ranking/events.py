"""The behaviour event log: append-only, durable, replayable from the start.

``EventLog`` is the interface (a ``typing.Protocol``); ``SQLiteEventLog`` is the default backend,
one SQLite file in WAL mode under ``SHOPASSIST_HOME``. At scale the same four methods map onto a
Redis Stream (``XADD`` / ``XRANGE``) or a Kafka topic keyed by session (produce / consume from
offset 0), with ``seq`` as the stream offset.

Durability: an append is one transaction with ``synchronous=FULL``, so an event the call reported
as accepted survives a killed process and a power cut. A batch is all-or-nothing for its valid
rows; invalid rows are reported with their index and reason and never block the valid ones.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from shopassist.models import Event, EventType

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL NOT NULL,
    session TEXT NOT NULL,
    type    TEXT NOT NULL,
    product TEXT,
    query   TEXT
);
CREATE INDEX IF NOT EXISTS events_session ON events(session, seq);
"""


@dataclass
class AppendResult:
    accepted: list[Event] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (index in the batch, reason)

    def summary(self) -> dict[str, Any]:
        return {
            "accepted": len(self.accepted),
            "rejected": [{"index": i, "reason": r} for i, r in self.rejected],
            "last_seq": self.accepted[-1].seq if self.accepted else None,
        }


def validate_event(raw: Event | Mapping[str, Any]) -> Event:
    """An ``Event`` from a dict (raises ``ValueError`` with a one-line reason)."""
    if isinstance(raw, Event):
        return raw
    try:
        return Event.model_validate(raw)
    except ValidationError as exc:
        reasons = [f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors()]
        raise ValueError("; ".join(reasons)) from None


def validate_events(events: Iterable[Event | Mapping[str, Any]]) -> AppendResult:
    """Every event validated: the valid ones in ``accepted`` (not stored yet, no ``seq``), each
    invalid one in ``rejected`` with its index in the batch and the reason."""
    result = AppendResult()
    for i, raw in enumerate(events):
        try:
            result.accepted.append(validate_event(raw))
        except ValueError as exc:
            result.rejected.append((i, str(exc)))
    return result


class EventLog(Protocol):
    """What the ranking needs from an event log."""

    def append(self, events: Iterable[Event | Mapping[str, Any]]) -> AppendResult: ...

    def session(self, session_id: str, limit: int = 200, since_seq: int = 0) -> list[Event]: ...

    def replay(self, since_seq: int = 0, batch: int = 10_000) -> Iterator[Event]: ...

    def last_seq(self) -> int: ...


class SQLiteEventLog:
    """``EventLog`` on one SQLite file (WAL): safe for one writer and many readers across processes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE takes the write lock before
        # the sequence is read, so two writing processes never hand out the same seq)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, events: Iterable[Event | Mapping[str, Any]]) -> AppendResult:
        result = validate_events(events)
        valid = result.accepted
        if not valid:
            return result
        rows = [(e.ts, e.session_id, e.type.value, e.product_id, e.query) for e in valid]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events")
                first = int(cur.fetchone()[0]) + 1
                self._conn.executemany(
                    "INSERT INTO events(seq, ts, session, type, product, query) VALUES (?, ?, ?, ?, ?, ?)",
                    [(first + k, *row) for k, row in enumerate(rows)],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        result.accepted = [e.model_copy(update={"seq": first + k}) for k, e in enumerate(valid)]
        return result

    @staticmethod
    def _event(row: tuple[Any, ...]) -> Event:
        seq, ts, session, type_, product, query = row
        return Event.model_construct(
            seq=seq, ts=ts, session_id=session, type=EventType(type_), product_id=product, query=query
        )

    def session(self, session_id: str, limit: int = 200, since_seq: int = 0) -> list[Event]:
        """The session's last ``limit`` events after ``since_seq``, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, ts, session, type, product, query FROM events WHERE session = ? AND seq > ? "
                "ORDER BY seq DESC LIMIT ?",
                (session_id, since_seq, limit),
            ).fetchall()
        return [self._event(r) for r in reversed(rows)]

    def replay(self, since_seq: int = 0, batch: int = 10_000) -> Iterator[Event]:
        """Every event after ``since_seq`` in log order, read in batches (constant memory)."""
        last = since_seq
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT seq, ts, session, type, product, query FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            for r in rows:
                yield self._event(r)
            last = rows[-1][0]

    def last_seq(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

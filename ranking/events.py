"""The behaviour event log: append-only, durable, replayable from the start.

``EventLog`` is the interface (a ``typing.Protocol``); ``SQLiteEventLog`` is the default backend,
one SQLite file in WAL mode under ``SHOPASSIST_HOME``. At scale the same four methods map onto a
Redis Stream (``XADD`` / ``XRANGE``) or a Kafka topic keyed by session (produce / consume from
offset 0), with ``seq`` as the stream offset.

Durability: an append is one transaction with ``synchronous=FULL``, so an event the call reported
as accepted survives a killed process and a power cut. A batch is all-or-nothing for its valid
rows; invalid rows are reported with their index and reason and never block the valid ones.

Online experiments: a row keeps the event's ``variant`` (``EXPERIMENT:VARIANT``, see
``ranking.experiments``; NULL outside an experiment); a log from before gets the column on open.

Privacy (what the stack gives it): with ``pseudonyms``, a row names its session by the pseudonym,
never by the id the caller used (``session(id)`` finds it by either and hands events back under
the id asked for; ``replay`` gives the pseudonyms); with ``retention``, rows older than its
cutoff are deleted when the log opens and then at most once an hour on an append;
``delete_sessions`` forgets sessions. The file is 0600, deleted rows are overwritten
(``secure_delete``), and the sequence never hands out a number twice, even after deletions.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from shopassist.models import Event, EventType
from shopassist.privacy import Retention, private_dir, tighten

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL NOT NULL,
    session TEXT NOT NULL,
    type    TEXT NOT NULL,
    product TEXT,
    query   TEXT,
    variant TEXT
);
CREATE INDEX IF NOT EXISTS events_session ON events(session, seq);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
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

    def __init__(
        self,
        path: Path | str,
        *,
        pseudonyms: Callable[[str], str] | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.path = Path(path)
        private_dir(self.path.parent)
        self._key = pseudonyms or (lambda session_id: session_id)
        self.retention = retention or Retention()
        self._lock = threading.Lock()
        # the file (and with it SQLite's -wal and -shm, which copy its mode) is the owner's alone
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        for suffix in ("", "-wal", "-shm"):
            tighten(Path(f"{self.path}{suffix}"), 0o600)
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE takes the write lock before
        # the sequence is read, so two writing processes never hand out the same seq)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA secure_delete=ON")  # deleted events are overwritten, not left in free pages
        self._conn.executescript(SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(events)")}
        if "variant" not in columns:  # a log written before online experiments: no arm on its rows
            self._conn.execute("ALTER TABLE events ADD COLUMN variant TEXT")
        if pseudonyms is not None:
            self._pseudonymize_old_rows()
        self.purge_if_due()

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
        rows = [(e.ts, self._key(e.session_id), e.type.value, e.product_id, e.query, e.variant) for e in valid]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                # the highest seq ever handed out (sqlite_sequence keeps it after deletions), so a
                # reader that saw seq N never misses a new event numbered N or below
                cur = self._conn.execute(
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), "
                    "COALESCE(MAX(seq), 0)) FROM events"
                )
                first = int(cur.fetchone()[0]) + 1
                self._conn.executemany(
                    "INSERT INTO events(seq, ts, session, type, product, query, variant) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(first + k, *row) for k, row in enumerate(rows)],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        result.accepted = [e.model_copy(update={"seq": first + k}) for k, e in enumerate(valid)]
        self.purge_if_due()
        return result

    @staticmethod
    def _event(row: tuple[Any, ...]) -> Event:
        seq, ts, session, type_, product, query, variant = row
        return Event.model_construct(
            seq=seq,
            ts=ts,
            session_id=session,
            type=EventType(type_),
            product_id=product,
            query=query,
            variant=variant,
        )

    def session(self, session_id: str, limit: int = 200, since_seq: int = 0) -> list[Event]:
        """The session's last ``limit`` events after ``since_seq``, oldest first (under ``session_id``)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, ts, session, type, product, query, variant FROM events WHERE session = ? AND seq > ? "
                "ORDER BY seq DESC LIMIT ?",
                (self._key(session_id), since_seq, limit),
            ).fetchall()
        return [self._event((*r[:2], session_id, *r[3:])) for r in reversed(rows)]

    def replay(self, since_seq: int = 0, batch: int = 10_000) -> Iterator[Event]:
        """Every event after ``since_seq`` in log order, read in batches (constant memory)."""
        last = since_seq
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT seq, ts, session, type, product, query, variant FROM events WHERE seq > ? "
                    "ORDER BY seq LIMIT ?",
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

    # -- privacy -----------------------------------------------------------------------------------
    def key(self, session_id: str) -> str:
        """The name a session's rows carry: its pseudonym (the id itself without pseudonyms)."""
        return self._key(session_id)

    def delete_sessions(self, session_ids: Iterable[str]) -> int:
        """Delete every event of these sessions (each named by the caller's id or its pseudonym);
        the number of events deleted."""
        names = sorted({name for sid in session_ids for name in (sid, self._key(sid))})
        return self._delete(f"session IN ({', '.join('?' * len(names))})", names) if names else 0

    def purge_if_due(self) -> int:
        """Apply the retention when a sweep is due (at open, then at most once an hour)."""
        return self.purge() if self.retention.due() else 0

    def purge(self) -> int:
        """Delete every event older than the retention cutoff; the number deleted."""
        cutoff = self.retention.cutoff()
        return self._delete("ts < ?", [cutoff]) if cutoff is not None else 0

    def stats(self) -> dict[str, Any]:
        """Events held, sessions they belong to, and the oldest event's time (epoch seconds)."""
        with self._lock:
            n, sessions, oldest = self._conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT session), MIN(ts) FROM events"
            ).fetchone()
        return {"events": int(n), "sessions": int(sessions), "oldest_event": oldest}

    def _delete(self, where: str, params: list[Any]) -> int:
        with self._lock:
            cur = self._conn.execute(f"DELETE FROM events WHERE {where}", params)
            deleted = int(cur.rowcount)
            if deleted:  # the deleted rows leave the write-ahead log too (when no reader holds it)
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def _pseudonymize_old_rows(self) -> None:
        """Rows a version without pseudonyms wrote under raw session ids get their pseudonym (once:
        ``user_version`` 1 marks a log whose rows are all pseudonymous)."""
        with self._lock:
            if int(self._conn.execute("PRAGMA user_version").fetchone()[0]) >= 1:
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                sessions = [s for (s,) in self._conn.execute("SELECT DISTINCT session FROM events")]
                raw = [(self._key(s), s) for s in sessions if self._key(s) != s]
                self._conn.executemany("UPDATE events SET session = ? WHERE session = ?", raw)
                self._conn.execute("PRAGMA user_version = 1")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            if raw:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

"""The ``EventLog`` contract: ``SQLiteEventLog``, ``RedisEventLog`` and the shipped
``MemoryEventLog`` behave alike.

``EventLogContract`` defines the behaviour once; each backend's subclass overrides the one
``log`` fixture (the Haystack 2.x pattern). The Redis backend runs against a real
``redis-server`` (``tests/redis_server.py``; skipped with the reason when it is not installed),
each test in a namespace of its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ranking.events import EventLog, SQLiteEventLog
from ranking.redis_events import RedisEventLog
from ranking.testing import MemoryEventLog
from shopassist.models import Event, EventType

pytest_plugins = ["redis_server"]  # the ``redis_url`` fixture (tests/redis_server.py)


def ev(session: str, type_: str, product: str | None = None, query: str | None = None, **extra: Any) -> dict:
    return {"session_id": session, "type": type_, "product_id": product, "query": query, **extra}


class EventLogContract:
    """What every ``EventLog`` does; a subclass provides ``log`` (empty, fresh per test)."""

    @pytest.fixture()
    def log(self) -> EventLog:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def test_a_new_log_is_empty(self, log: EventLog) -> None:
        assert log.last_seq() == 0
        assert list(log.replay()) == []
        assert log.session("anyone") == []

    def test_appends_get_consecutive_sequence_numbers_from_one(self, log: EventLog) -> None:
        first = log.append([ev("s1", "click", "p1"), ev("s1", "view", "p2")])
        second = log.append([ev("s2", "search", query="boots")])
        assert [e.seq for e in first.accepted] == [1, 2] and [e.seq for e in second.accepted] == [3]
        assert log.last_seq() == 3
        assert first.summary() == {"accepted": 2, "rejected": [], "last_seq": 2}

    def test_accepted_events_carry_what_was_sent(self, log: EventLog) -> None:
        ts = time.time() - 60
        result = log.append([ev("s1", "add_to_cart", "p9", ts=ts), ev("s1", "search", query="  hiking   boots ")])
        cart, search = result.accepted
        assert (cart.session_id, cart.type, cart.product_id, cart.ts) == ("s1", EventType.add_to_cart, "p9", ts)
        assert search.type == EventType.search and search.query == "hiking boots"  # normalised by Event
        assert search.ts is not None and abs(search.ts - time.time()) < 60  # now, when absent

    def test_invalid_events_are_rejected_with_index_and_reason_and_the_valid_ones_land(self, log: EventLog) -> None:
        result = log.append(
            [
                ev("s1", "click", "p1"),
                ev("s1", "click"),  # no product
                ev("s1", "search"),  # no query
                ev("s 1", "click", "p1"),  # bad session id
                ev("s1", "teleport", "p1"),
                ev("s1", "view", "p1", ts=4e12),  # far in the future
                {"session_id": "s1", "type": "view", "product_id": "p1", "colour": "red"},  # unknown field
                ev("s1", "search", query="牛仔裤"),
            ]
        )
        assert [e.seq for e in result.accepted] == [1, 2]
        reasons = dict(result.rejected)
        assert set(reasons) == {1, 2, 3, 4, 5, 6}
        assert "needs a product_id" in reasons[1] and "non-empty query" in reasons[2]
        assert "session_id" in reasons[3] and "type" in reasons[4] and "future" in reasons[5]
        assert [e.type.value for e in log.replay()] == ["click", "search"]
        assert result.summary()["rejected"][0] == {"index": 1, "reason": reasons[1]}

    def test_a_batch_with_only_invalid_events_changes_nothing(self, log: EventLog) -> None:
        log.append([ev("s1", "click", "p1")])
        result = log.append([ev("s1", "click"), {"type": "click"}])
        assert result.accepted == [] and [i for i, _ in result.rejected] == [0, 1]
        assert log.last_seq() == 1 and result.summary()["last_seq"] is None
        assert log.append([]).accepted == [] and log.last_seq() == 1

    def test_event_objects_and_any_iterable_are_accepted_and_the_log_assigns_seq(self, log: EventLog) -> None:
        def events() -> Iterator[Event | dict]:
            yield Event(session_id="s1", type=EventType.click, product_id="p1", seq=99)
            yield ev("s1", "dislike", "p2")

        result = log.append(events())
        assert [e.seq for e in result.accepted] == [1, 2]  # a seq sent in is not the log's
        assert [(e.seq, e.product_id) for e in log.replay()] == [(1, "p1"), (2, "p2")]

    def test_replay_gives_every_event_after_since_seq_in_log_order(self, log: EventLog) -> None:
        for k in range(7):
            log.append([ev(f"s{k % 3}", "click", f"p{k}")])
        assert [e.product_id for e in log.replay()] == [f"p{k}" for k in range(7)]
        assert [e.seq for e in log.replay(since_seq=4)] == [5, 6, 7]
        assert [e.seq for e in log.replay(since_seq=2, batch=2)] == [3, 4, 5, 6, 7]  # across batches
        assert list(log.replay(since_seq=7)) == []

    def test_session_gives_that_sessions_last_events_oldest_first(self, log: EventLog) -> None:
        for k in range(6):
            log.append([ev("mine", "click", f"p{k}"), ev("other", "view", f"o{k}")])
        mine = log.session("mine")
        assert [e.product_id for e in mine] == [f"p{k}" for k in range(6)]
        assert {e.session_id for e in mine} == {"mine"}
        assert [e.product_id for e in log.session("mine", limit=2)] == ["p4", "p5"]  # the last two
        since = mine[2].seq
        assert since is not None
        assert [e.product_id for e in log.session("mine", since_seq=since)] == ["p3", "p4", "p5"]
        assert [e.product_id for e in log.session("mine", limit=1, since_seq=since)] == ["p5"]
        assert log.session("nobody") == []

    def test_what_a_reader_gets_back_is_its_own_copy(self, log: EventLog) -> None:
        log.append([ev("s1", "click", "p1")])
        got = log.session("s1")[0]
        got.product_id = "changed"
        assert log.session("s1")[0].product_id == "p1"
        assert next(iter(log.replay())).product_id == "p1"

    def test_concurrent_appends_never_share_or_skip_a_sequence_number(self, log: EventLog) -> None:
        seqs: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def writer(n: int) -> None:
            try:
                for k in range(25):
                    result = log.append([ev(f"w{n}", "click", f"p{k}"), ev(f"w{n}", "view", f"p{k}")])
                    with lock:
                        seqs.extend(e.seq for e in result.accepted if e.seq is not None)
            except BaseException as exc:  # a thread's exception would otherwise only be a warning
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(seqs) == list(range(1, 201))
        assert log.last_seq() == 200 and [e.seq for e in log.replay()] == list(range(1, 201))
        # a batch's events stay together and in order
        for n in range(4):
            events = log.session(f"w{n}")
            assert [e.type.value for e in events] == ["click", "view"] * 25
            assert all(b.seq == (a.seq or 0) + 1 for a, b in zip(events[::2], events[1::2], strict=True))


# -- backends ----------------------------------------------------------------------------------------------
@pytest.mark.integration
class TestSQLiteEventLog(EventLogContract):
    """The default backend: one SQLite file (WAL) in a temp dir."""

    @pytest.fixture()
    def log(self, tmp_path: Path) -> Iterator[EventLog]:
        with SQLiteEventLog(tmp_path / "events.sqlite") as log:
            yield log


@pytest.mark.integration
class TestRedisEventLog(EventLogContract):
    """The shared backend: Redis Streams on a real server, a fresh namespace per test."""

    @pytest.fixture()
    def log(self, redis_url: str) -> Iterator[EventLog]:
        with RedisEventLog(redis_url, namespace=f"contract-{uuid.uuid4().hex}") as log:
            yield log


@pytest.mark.unit
class TestMemoryEventLog(EventLogContract):
    """The shipped test double (``ranking.testing.MemoryEventLog``)."""

    @pytest.fixture()
    def log(self) -> EventLog:
        return MemoryEventLog()

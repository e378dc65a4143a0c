"""Recording events from many request threads at once: appends run concurrently (so a Redis log
commits their fsyncs together instead of one after another), a retry racing its original still
counts once, and forgetting a session waits for the appends in flight."""

from __future__ import annotations

import threading
from typing import Any

from ranking.events import SQLiteEventLog
from ranking.ranker import Ranker


class GatedLog(SQLiteEventLog):
    """A log whose appends can be held at a gate: what a slow backend looks like to ``record``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold: threading.Event | None = None
        self.barrier: threading.Barrier | None = None
        self.entered = threading.Event()

    def append(self, events):  # type: ignore[no-untyped-def]
        self.entered.set()
        if self.barrier is not None:
            self.barrier.wait(timeout=10)  # breaks (and raises) if appends cannot overlap
        if self.hold is not None:
            assert self.hold.wait(timeout=10)
        return super().append(events)


def event(session: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "click", "session_id": session, "product_id": f"p{n}", "ts": 1_700_000_000.0 + n, **extra}


def run_all(targets) -> list[Any]:  # type: ignore[no-untyped-def]
    out: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def run(i, fn):  # type: ignore[no-untyped-def]
        try:
            out[i] = fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return out


def test_appends_from_different_requests_overlap(tmp_path) -> None:
    log = GatedLog(tmp_path / "events.sqlite")
    ranker = Ranker(catalog=None, log=log)
    log.barrier = threading.Barrier(4)  # every append waits until four are inside at once
    results = run_all([lambda i=i: ranker.record([event(f"s{i}", i)]) for i in range(4)])
    assert all(len(r.accepted) == 1 for r in results)
    assert len(log) == 4 and ranker.knowledge.last_seq == 4


def test_a_retry_racing_its_original_counts_once(tmp_path) -> None:
    log = GatedLog(tmp_path / "events.sqlite")
    ranker = Ranker(catalog=None, log=log)
    log.hold = threading.Event()
    same = event("s1", 1, event_id="click-1")
    first = threading.Thread(target=lambda: ranker.record([same]))
    first.start()
    assert log.entered.wait(timeout=10)  # the original is appending, not yet acknowledged
    retry = ranker.record([same])  # does not reach the log: reserved by the one in flight
    assert retry.duplicates == [(0, None)] and not retry.accepted
    log.hold.set()
    first.join(timeout=10)
    again = ranker.record([same])  # after it landed: a duplicate of a known seq
    assert again.duplicates == [(0, 1)]
    assert len(log) == 1


def test_forgetting_a_session_waits_for_its_appends_in_flight(tmp_path) -> None:
    log = GatedLog(tmp_path / "events.sqlite")
    ranker = Ranker(catalog=None, log=log)
    ranker.record([event("s1", 1)])
    log.hold = threading.Event()
    writer = threading.Thread(target=lambda: ranker.record([event("s1", 2)]))
    writer.start()
    assert log.entered.wait(timeout=10)
    forgot: list[tuple[int, bool]] = []
    forgetter = threading.Thread(target=lambda: forgot.append(ranker.forget_session("s1")))
    forgetter.start()
    forgetter.join(timeout=0.3)
    assert forgetter.is_alive()  # waiting for the append in flight, not deleting around it
    log.hold.set()
    writer.join(timeout=10)
    forgetter.join(timeout=10)
    assert forgot and forgot[0][0] == 2  # both events, the one in flight included, are gone
    assert log.session("s1") == [] and len(log) == 0
    log.hold = None
    assert ranker.record([event("s2", 3)]).accepted  # recording resumes after the forget

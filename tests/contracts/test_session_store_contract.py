"""The session store contract (``load`` / ``save`` / ``delete`` of a ``SessionState``).

``SessionStoreContract`` defines the behaviour once; a backend's subclass overrides the one
``store`` fixture (the Haystack 2.x pattern). The backends: the file store (one JSON file per
session) and the Redis store (one key per session, on a real ``redis-server`` from
``tests/redis_server.py``, skipped with the reason when it is not installed; a fresh namespace
per test).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from assistant.redis_state import RedisSessionStore
from assistant.state import SessionState, SessionStore, ShownProduct, TurnRecord
from shopassist.errors import UsageError

pytest_plugins = ["redis_server"]  # the ``redis_url`` fixture (tests/redis_server.py)


class Store(Protocol):
    def load(self, session_id: str) -> SessionState: ...

    def save(self, state: SessionState) -> None: ...

    def delete(self, session_id: str) -> bool: ...


def a_session(session_id: str = "shopper-1", turns: int = 2) -> SessionState:
    state = SessionState(session_id=session_id)
    state.constraints.query = "高腰牛仔裤"
    state.constraints.category = "牛仔裤"
    state.constraints.required = ["高腰", "黑色"]
    state.shown = [
        ShownProduct(id="j1", title="高腰修身牛仔裤女 黑色", price=299.0, currency="CNY", brand="Levi's/李维斯"),
        ShownProduct(id="b1", title="Waterproof Hiking Boots", price=89.99, currency="USD"),
    ]
    state.turns = [
        TurnRecord(user=f"message {k}", shown=["j1"], reply=f"reply {k}", at=1000.0 + k) for k in range(turns)
    ]
    return state


BAD_IDS = ["", "a b", "../escape", "x/y", "é", "s" * 129]


class SessionStoreContract:
    """What every session store does; a subclass provides ``store`` (empty, fresh per test)."""

    @pytest.fixture()
    def store(self) -> Store:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def test_an_unknown_session_loads_as_a_fresh_state(self, store: Store) -> None:
        state = store.load("never-seen")
        assert state == SessionState(session_id="never-seen")
        assert state.turns == [] and state.shown == [] and state.constraints.query == ""

    def test_a_saved_session_loads_back_equal(self, store: Store) -> None:
        saved = a_session()
        store.save(saved)
        loaded = store.load("shopper-1")
        assert loaded == saved
        assert loaded.constraints.required == ["高腰", "黑色"] and loaded.shown_ref(1) is not None
        assert loaded.shown_ref(1).brand == "Levi's/李维斯"  # type: ignore[union-attr]

    def test_saving_again_replaces_the_session(self, store: Store) -> None:
        store.save(a_session())
        newer = a_session(turns=3)
        newer.constraints.query = "hiking boots"
        store.save(newer)
        loaded = store.load("shopper-1")
        assert loaded.constraints.query == "hiking boots" and len(loaded.turns) == 3

    def test_sessions_are_independent(self, store: Store) -> None:
        store.save(a_session("alice"))
        bob = a_session("bob")
        bob.constraints.query = "boots"
        store.save(bob)
        assert store.load("alice").constraints.query == "高腰牛仔裤"
        assert store.load("bob").constraints.query == "boots"
        assert store.delete("alice") is True
        assert store.load("bob") == bob

    def test_delete_says_whether_there_was_a_session_and_forgets_it(self, store: Store) -> None:
        store.save(a_session())
        assert store.delete("shopper-1") is True
        assert store.load("shopper-1") == SessionState(session_id="shopper-1")
        assert store.delete("shopper-1") is False
        assert store.delete("never-seen") is False

    def test_changing_a_loaded_state_without_saving_changes_nothing(self, store: Store) -> None:
        store.save(a_session())
        loaded = store.load("shopper-1")
        loaded.constraints.required.append("破洞")
        loaded.turns.clear()
        again = store.load("shopper-1")
        assert again.constraints.required == ["高腰", "黑色"] and len(again.turns) == 2

    def test_only_the_last_fifty_turns_are_kept(self, store: Store) -> None:
        store.save(a_session(turns=60))
        turns = store.load("shopper-1").turns
        assert len(turns) == 50 and turns[0].user == "message 10" and turns[-1].user == "message 59"

    @pytest.mark.parametrize("bad", BAD_IDS, ids=lambda s: repr(s[:12]))
    def test_an_invalid_session_id_is_a_usage_error(self, store: Store, bad: str) -> None:
        with pytest.raises(UsageError, match="not valid"):
            store.load(bad)
        with pytest.raises(UsageError, match="not valid"):
            store.save(SessionState(session_id=bad))
        with pytest.raises(UsageError, match="not valid"):
            store.delete(bad)

    def test_every_allowed_id_character_works(self, store: Store) -> None:
        sid = "Ab0_.:@-z"
        store.save(a_session(sid))
        assert store.load(sid).session_id == sid and store.delete(sid) is True


# -- backends ----------------------------------------------------------------------------------------------
@pytest.mark.unit
class TestFileSessionStore(SessionStoreContract):
    """``assistant.state.SessionStore``: one JSON file per session in a temp dir."""

    @pytest.fixture()
    def store(self, tmp_path: Path) -> Store:
        return SessionStore(tmp_path / "sessions")


@pytest.mark.integration
class TestRedisSessionStore(SessionStoreContract):
    """``assistant.redis_state.RedisSessionStore``: one key per session on a real Redis."""

    @pytest.fixture()
    def store(self, redis_url: str) -> Iterator[Store]:
        with RedisSessionStore(redis_url, namespace=f"contract-{uuid.uuid4().hex}") as store:
            yield store

"""Conversation state on Redis: the session store several API processes (or hosts) share.

``RedisSessionStore`` is ``assistant.state.SessionStore`` with Redis instead of a folder,
selected by ``settings.redis_url`` (``SHOPASSIST_REDIS_URL``); the JSON files stay the default.
It subclasses ``SessionStore`` so that everything typed for the file store (the agent, the API,
``forget_session``) takes it, and so the session id rule and the pseudonym (``key``) are the
same code; every method that touches storage is its own.

One string key per session, ``NAMESPACE:state:PSEUDONYM``, holding the state's JSON (the
pseudonym inside, never the id the caller used, as in the files). With a retention period the
key gets it as its TTL on every save, so Redis itself deletes a session the retention period
after its last update (``purge`` only brings keys saved under a longer or no retention in line);
with retention 0 keys have no TTL. A value that does not parse starts the session afresh and is
kept aside for inspection under ``NAMESPACE:state-damaged:PSEUDONYM`` (with the TTL it had).
Writes are durable as far as the server's persistence goes (see ``ranking.redis_events``: AOF
with ``appendfsync always``); a Redis that cannot be reached raises ``BackendError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from assistant.state import SessionState, SessionStore
from ranking.redis_events import DEFAULT_NAMESPACE, open_checked, redacted, redis_errors, text
from shopassist.privacy import DAY_S, Retention


class RedisSessionStore(SessionStore):
    """``SessionStore`` with one Redis key per session; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        pseudonyms: Callable[[str], str] | None = None,
        retention: Retention | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        # no SessionStore.__init__: there is no folder; the attributes ``key`` reads are set here
        self.url = url
        self.namespace = namespace
        self.pseudonyms = pseudonyms
        self.retention = retention or Retention()
        self._redis, self.durable = open_checked(url, "opening the session store")
        try:
            self.purge_if_due()
        except BaseException:
            self._redis.close()
            raise

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> RedisSessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisSessionStore({redacted(self.url)!r}, namespace={self.namespace!r})"

    def _name(self, key: str) -> str:
        return f"{self.namespace}:state:{key}"

    def _damaged(self, key: str) -> str:
        return f"{self.namespace}:state-damaged:{key}"

    def _ttl_s(self) -> int | None:
        return int(float(self.retention.days) * DAY_S) if self.retention.days else None

    def load(self, session_id: str) -> SessionState:
        key = self.key(session_id)
        with redis_errors(self.url, "loading a session"):
            reply = self._redis.get(self._name(key))
        if reply is None:
            return SessionState(session_id=session_id)
        raw = text(reply)
        try:
            state = SessionState.model_validate_json(raw)
        except ValueError:
            # A damaged value must not block the shopper: start the session afresh, keeping the
            # damaged value aside for inspection (only if it is still the one we read).
            self._set_aside(key, raw)
            return SessionState(session_id=session_id)
        return state.model_copy(update={"session_id": session_id})

    def _set_aside(self, key: str, raw: str) -> None:
        """Move a damaged value to the damaged key (its TTL with it), unless another process
        saved the session since we read it."""
        name = self._name(key)
        with redis_errors(self.url, "setting a damaged session aside"), self._redis.pipeline() as pipe:
            try:
                pipe.watch(name)
                if pipe.get(name) != raw:
                    return
                pipe.multi()
                pipe.copy(name, self._damaged(key), replace=True)
                pipe.delete(name)
                pipe.execute()
            except redis.WatchError:
                return  # saved meanwhile: the new value is not damaged

    def save(self, state: SessionState) -> None:
        key = self.key(state.session_id)
        state.turns = state.turns[-50:]
        stored = state.model_copy(update={"session_id": key})
        with redis_errors(self.url, "saving a session"):
            # SET without EX also drops a TTL the key had (retention turned off since)
            self._redis.set(self._name(key), stored.model_dump_json(), ex=self._ttl_s())
        self.purge_if_due()

    def delete(self, session_id: str) -> bool:
        """Delete the session, its damaged copy, and a key named by the raw id (a store written
        without pseudonyms); True when there was one."""
        key = self.key(session_id)
        names = {self._name(key), self._name(session_id), self._damaged(key), self._damaged(session_id)}
        with redis_errors(self.url, "deleting a session"):
            return int(self._redis.delete(*sorted(names))) > 0

    def purge_if_due(self) -> int:
        """Apply the retention when a sweep is due (at start, then at most once an hour)."""
        return self.purge() if self.retention.due() else 0

    def purge(self) -> int:
        """Redis deletes expired sessions by their TTL, so nothing is deleted here (0): this puts
        keys saved without a TTL, or with a longer one (a shorter retention since), under the
        current retention period from now."""
        ttl = self._ttl_s()
        if ttl is None:
            return 0
        with redis_errors(self.url, "applying the retention"):
            for pattern in (self._name("*"), self._damaged("*")):
                batch: list[str] = []
                for name in self._redis.scan_iter(match=pattern, count=1000):
                    batch.append(name)
                    if len(batch) >= 1000:
                        self._expire(batch, ttl)
                        batch = []
                self._expire(batch, ttl)
        return 0

    def _expire(self, names: list[str], ttl: int) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.expire(name, ttl, nx=True)  # no TTL yet
            pipe.expire(name, ttl, lt=True)  # a longer one
        pipe.execute()

    def stats(self) -> dict[str, Any]:
        """How many sessions there are and when the oldest was last saved (epoch seconds): from
        the TTL left with a retention period, else from the time of the session's last turn."""
        ttl = self._ttl_s()
        now = time.time()
        with redis_errors(self.url, "reading the session store's statistics"):
            names = list(self._redis.scan_iter(match=self._name("*"), count=1000))
            times: list[float] = []
            for start in range(0, len(names), 1000):
                chunk = names[start : start + 1000]
                pipe = self._redis.pipeline(transaction=False)
                for name in chunk:
                    if ttl is None:
                        pipe.get(name)
                    else:
                        pipe.pttl(name)
                for value in pipe.execute():
                    if ttl is not None and isinstance(value, int) and value >= 0:
                        times.append(now - (ttl - value / 1000.0))
                    elif isinstance(value, str):
                        try:
                            turns = SessionState.model_validate_json(value).turns
                        except ValueError:
                            continue
                        if turns:
                            times.append(turns[-1].at)
        return {"sessions": len(names), "oldest_update": min(times) if times else None}

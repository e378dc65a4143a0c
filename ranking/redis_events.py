"""The behaviour event log on Redis: what several API processes (or hosts) share.

``RedisEventLog`` is the ``EventLog`` of ``ranking.events`` on Redis Streams, selected by
``settings.redis_url`` (``SHOPASSIST_REDIS_URL``); the embedded ``SQLiteEventLog`` stays the
default. It has every method of ``SQLiteEventLog`` that callers use (``append`` / ``session`` /
``replay`` / ``last_seq`` / ``len``, and the privacy side: ``key``, ``delete_sessions``,
``purge_if_due`` / ``purge``, ``stats``, ``close`` and the context manager).

Keys, all under one hash tag so a Redis Cluster keeps them in one slot (the append script
touches several at once), e.g. with the namespace ``shopassist``:

| key                            | type   | what                                                 |
|--------------------------------|--------|------------------------------------------------------|
| ``{shopassist}:events``        | stream | every event, entry id ``<seq>-0``: replay in order   |
| ``{shopassist}:session:NAME``  | stream | a copy of one session's events (same ids): ``session()`` reads only its own |
| ``{shopassist}:ts``            | zset   | ``<seq>|NAME`` scored by the event's ``ts``: what retention deletes |
| ``{shopassist}:seq``           | string | the last sequence number handed out                  |

Sequence numbers: one Lua script takes the next numbers (``INCRBY`` on the counter) and adds
the batch to the streams with explicit ids ``<seq>-0``. A script runs atomically, so numbers are
unique and increasing across every process on the same Redis, a batch's events get consecutive
numbers, and a reader that saw ``seq`` N catches up with ``replay(N)`` (``XRANGE (N-0 +``)
exactly as with SQLite's ``seq``. The counter never goes back, even after deletions (and when it
is lost while the stream is not, the stream's last generated id takes its place).

Durability: ``append`` returns only after Redis answered the script, and that answer means
durable only when the server runs with AOF and ``appendfsync always`` (Redis then writes and
fsyncs the append-only file before it replies; the test fixture starts it with ``--appendonly
yes --appendfsync always``). With ``everysec`` up to a second of acknowledged events can be
lost on a crash; without AOF, everything since the last snapshot. Opening the log checks
``CONFIG GET`` and logs a warning when the setting is weaker (``durable`` is then False); a
managed Redis that forbids ``CONFIG`` gets an info line instead (``durable`` is None). A
connection lost after Redis ran the script but before its reply reached us is reported as an
error although the events were stored: a client that retries then stores them twice (an
``event_id`` lets ``Ranker.record`` drop such a retry within its dedupe window).

Privacy: sessions are named by ``pseudonyms`` (as in ``SQLiteEventLog``; a log written here
never held raw ids, so there is nothing to migrate). With ``retention``, events whose ``ts`` is
older than the cutoff are deleted (``XDEL`` by the ``ts`` index: exact even for events sent with
an old ``ts``, which ``XTRIM MINID`` on the sequence would not be) when the log opens and then at
most once an hour on an append, and every session key gets a TTL of the retention period (plus
the allowed clock skew, so a key never expires before the events it indexes are due), renewed
on each append of the session. ``delete_sessions`` forgets sessions.

Failures: a Redis that cannot be reached, times out or refuses a command raises
``BackendError`` naming the server (never its password) and what to check; the API answers
such an error with 503 and ``Retry-After``. The client reconnects by itself once Redis is back.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ranking.events import AppendResult, validate_events
from shopassist.errors import BackendError
from shopassist.models import MAX_CLOCK_SKEW_S, Event, EventType
from shopassist.privacy import DAY_S, Retention

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "shopassist"
CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0  # one append script or one replay batch; far above what either takes
SWEEP_BATCH = 1000  # events deleted per round trip by retention and forgetting
FIELDS = ("ts", "session", "type", "product", "query", "variant")

# KEYS: 1 counter, 2 global stream, 3 ts index, 4.. one session stream per event (in order)
# ARGV: 1 number of events, 2 session key TTL in seconds (0: none), then per event the six
# FIELDS values ('' for an absent product / query / variant)
APPEND_SCRIPT = """
local n = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  -- the counter is gone but the stream is not: never hand out a number twice
  local info = redis.call('XINFO', 'STREAM', KEYS[2])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      redis.call('SET', KEYS[1], string.match(info[i + 1], '^(%d+)'))
    end
  end
end
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
for k = 0, n - 1 do
  local a = 3 + k * 6
  local id = string.format('%d-0', first + k)
  local fields = {'ts', ARGV[a], 'session', ARGV[a + 1], 'type', ARGV[a + 2]}
  for j, name in ipairs({'product', 'query', 'variant'}) do
    if ARGV[a + 2 + j] ~= '' then
      table.insert(fields, name)
      table.insert(fields, ARGV[a + 2 + j])
    end
  end
  redis.call('XADD', KEYS[2], id, unpack(fields))
  redis.call('XADD', KEYS[4 + k], id, unpack(fields))
  redis.call('ZADD', KEYS[3], ARGV[a], string.format('%d', first + k) .. '|' .. ARGV[a + 1])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[4 + k], ttl)
  end
end
return first
"""

# KEYS: session streams; each one that holds no events any more is deleted (a stream stays as an
# empty key after XDEL). In a script, so an append landing in between is never deleted with it.
DROP_EMPTY_SCRIPT = """
local dropped = 0
for _, key in ipairs(KEYS) do
  if redis.call('XLEN', key) == 0 then
    dropped = dropped + redis.call('DEL', key)
  end
end
return dropped
"""


def text(value: object) -> str:
    """A reply value as ``str`` (the clients here decode replies; bytes only from another client)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


Entry = tuple[str, dict[str, str]]


def entries(reply: object) -> list[Entry]:
    """An ``XRANGE`` / ``XREVRANGE`` reply as (entry id, fields) pairs of ``str``."""
    out: list[Entry] = []
    for entry_id, fields in reply or []:  # type: ignore[attr-defined]
        out.append((text(entry_id), {text(k): text(v) for k, v in (fields or {}).items()}))
    return out


def seq_of(entry_id: str) -> int:
    """The sequence number of a stream entry id ``<seq>-0``."""
    return int(entry_id.split("-", 1)[0])


def redacted(url: str) -> str:
    """The URL without its password (what error messages and logs may show)."""
    url = re.sub(r"^([a-z]+://[^/@:]*:)[^/]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def connect(url: str) -> redis.Redis:
    """A client for ``url`` (a pool shared by threads, strings decoded).

    No automatic retry of a failed command: a timed-out append may have run, and resending it
    would store its events twice; a connection the server closed (a restart) is replaced when it
    is next taken from the pool, so the first command after Redis is back works."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


@contextmanager
def redis_errors(url: str, what: str) -> Iterator[None]:
    """Turn a Redis failure while doing ``what`` into a ``BackendError`` that names the server
    (without its password) and says what to check."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BackendError(
            f"Redis at {redacted(url)} is unreachable while {what} ({type(exc).__name__}: {exc}). Check that "
            "it is running and that --redis-url / SHOPASSIST_REDIS_URL points to it; then retry."
        ) from exc
    except redis.RedisError as exc:
        raise BackendError(
            f"Redis at {redacted(url)} refused {what} ({type(exc).__name__}: {exc}). Check its logs "
            "(memory limit, read-only replica, ACL permissions)."
        ) from exc


def check_durability(client: redis.Redis, url: str) -> bool | None:
    """True when the server fsyncs its append-only file before each reply (``appendonly yes``,
    ``appendfsync always``); False (with a warning) when it does not; None (with an info line)
    when the server does not let us ask (managed services often disable ``CONFIG``)."""
    try:
        config = client.config_get("append*")
    except (redis.ConnectionError, redis.TimeoutError):
        raise
    except redis.RedisError as exc:
        log.info("cannot check the durability settings of Redis at %s (%s): assuming they fit", redacted(url), exc)
        return None
    aof, fsync = config.get("appendonly"), config.get("appendfsync")
    if aof == "yes" and fsync == "always":
        return True
    log.warning(
        "Redis at %s runs with appendonly=%s, appendfsync=%s: acknowledged events and sessions can be lost "
        "on a crash; run it with --appendonly yes --appendfsync always for durable writes",
        redacted(url),
        aof,
        fsync,
    )
    return False


def open_checked(url: str, what: str) -> tuple[redis.Redis, bool | None]:
    """A client for ``url`` that answered a PING, and whether the server fsyncs every write
    (``check_durability``). The client is closed when either fails: a failed open leaves no
    connection behind."""
    client = connect(url)
    try:
        with redis_errors(url, what):
            client.ping()
            durable = check_durability(client, url)
        return client, durable
    except BaseException:
        client.close()
        raise


class RedisEventLog:
    """``EventLog`` on Redis Streams, shared by every process that opens the same ``url`` and
    ``namespace``; see the module docstring for keys, durability and retention."""

    def __init__(
        self,
        url: str,
        *,
        pseudonyms: Callable[[str], str] | None = None,
        retention: Retention | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self._key = pseudonyms or (lambda session_id: session_id)
        self.retention = retention or Retention()
        self._prefix = f"{{{namespace}}}:"
        self._seq_key = self._prefix + "seq"
        self._stream = self._prefix + "events"
        self._ts_index = self._prefix + "ts"
        self._lock = threading.Lock()  # only for the retention clock: Redis orders everything else
        self._redis, self.durable = open_checked(url, "opening the event log")
        self._append = self._redis.register_script(APPEND_SCRIPT)
        self._drop_empty = self._redis.register_script(DROP_EMPTY_SCRIPT)
        try:
            self.purge_if_due()
        except BaseException:
            self._redis.close()
            raise

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> RedisEventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisEventLog({redacted(self.url)!r}, namespace={self.namespace!r})"

    def _session_key(self, name: str) -> str:
        return f"{self._prefix}session:{name}"

    def _ttl_s(self) -> int:
        """A session key's time to live: the retention period, plus the clock skew an event's
        ``ts`` may have, so every event a key indexes is due for deletion before the key expires."""
        if not self.retention.days:
            return 0
        return int(float(self.retention.days) * DAY_S + MAX_CLOCK_SKEW_S) + 60

    # -- the EventLog protocol ---------------------------------------------------------------------
    def append(self, events: Iterable[Event | Mapping[str, Any]]) -> AppendResult:
        """Validate every event; store the valid ones with the next sequence numbers, all at once,
        and return after Redis acknowledged them."""
        result = validate_events(events)
        valid = result.accepted
        if not valid:
            return result
        names = [self._key(e.session_id) for e in valid]
        args: list[str | int] = [len(valid), self._ttl_s()]
        for e, name in zip(valid, names, strict=True):
            args += [repr(float(e.ts or 0.0)), name, e.type.value, e.product_id or "", e.query or "", e.variant or ""]
        keys = [self._seq_key, self._stream, self._ts_index, *(self._session_key(n) for n in names)]
        with redis_errors(self.url, f"appending {len(valid)} events"):
            first = int(self._append(keys=keys, args=args))
        result.accepted = [e.model_copy(update={"seq": first + k}) for k, e in enumerate(valid)]
        self.purge_if_due()
        return result

    @staticmethod
    def _event(entry_id: str, fields: Mapping[str, str], session_id: str | None = None) -> Event:
        return Event.model_construct(
            seq=seq_of(entry_id),
            ts=float(fields["ts"]),
            session_id=session_id if session_id is not None else fields["session"],
            type=EventType(fields["type"]),
            product_id=fields.get("product"),
            query=fields.get("query"),
            variant=fields.get("variant"),
        )

    def session(self, session_id: str, limit: int = 200, since_seq: int = 0) -> list[Event]:
        """The session's last ``limit`` events after ``since_seq``, oldest first (under
        ``session_id``); a negative ``limit`` means all of them, as in SQLite."""
        if limit == 0:
            return []
        key = self._session_key(self._key(session_id))
        low = f"({max(since_seq, 0)}-0" if since_seq > 0 else "-"
        with redis_errors(self.url, "reading a session's events"):
            got = entries(self._redis.xrevrange(key, "+", low, count=limit if limit > 0 else None))
        return [self._event(entry_id, fields, session_id) for entry_id, fields in reversed(got)]

    def replay(self, since_seq: int = 0, batch: int = 10_000) -> Iterator[Event]:
        """Every event after ``since_seq`` in log order, read in batches (constant memory)."""
        last = max(since_seq, 0)
        while True:
            with redis_errors(self.url, "replaying the event log"):
                got = entries(self._redis.xrange(self._stream, f"({last}-0" if last else "-", "+", count=max(batch, 1)))
            if not got:
                return
            for entry_id, fields in got:
                yield self._event(entry_id, fields)
            last = seq_of(got[-1][0])

    def last_seq(self) -> int:
        """The highest sequence number in the log (0 when empty), as ``SQLiteEventLog`` gives it."""
        with redis_errors(self.url, "reading the last sequence number"):
            top = entries(self._redis.xrevrange(self._stream, "+", "-", count=1))
        return seq_of(top[0][0]) if top else 0

    def __len__(self) -> int:
        with redis_errors(self.url, "counting events"):
            return int(self._redis.xlen(self._stream))

    # -- privacy -----------------------------------------------------------------------------------
    def key(self, session_id: str) -> str:
        """The name a session's events carry: its pseudonym (the id itself without pseudonyms)."""
        return self._key(session_id)

    def delete_sessions(self, session_ids: Iterable[str]) -> int:
        """Delete every event of these sessions (each named by the caller's id or its pseudonym);
        the number of events deleted. Events past the retention cutoff go first, so an event
        whose session key already expired is not left behind."""
        names = sorted({name for sid in session_ids for name in (sid, self._key(sid))})
        deleted = self.purge()
        for name in names:
            key = self._session_key(name)
            while True:
                with redis_errors(self.url, "reading a session to forget"):
                    ids = [entry_id for entry_id, _ in entries(self._redis.xrange(key, "-", "+", count=SWEEP_BATCH))]
                if not ids:
                    break
                with redis_errors(self.url, "forgetting a session"):
                    pipe = self._redis.pipeline(transaction=True)
                    pipe.xdel(self._stream, *ids)
                    pipe.xdel(key, *ids)
                    pipe.zrem(self._ts_index, *(f"{seq_of(i)}|{name}" for i in ids))
                    gone, *_ = pipe.execute()
                deleted += int(gone)
            with redis_errors(self.url, "forgetting a session"):
                self._drop_empty(keys=[key])
        return deleted

    def purge_if_due(self) -> int:
        """Apply the retention when a sweep is due (at open, then at most once an hour)."""
        with self._lock:
            due = self.retention.due()
        return self.purge() if due else 0

    def purge(self) -> int:
        """Delete every event older than the retention cutoff; the number deleted."""
        cutoff = self.retention.cutoff()
        if cutoff is None:
            return 0
        deleted = 0
        while True:
            with redis_errors(self.url, "applying the retention"):
                reply = self._redis.zrangebyscore(self._ts_index, "-inf", f"({cutoff!r}", start=0, num=SWEEP_BATCH)
            members = [text(m) for m in reply or []]  # type: ignore[union-attr]
            if not members:
                return deleted
            with redis_errors(self.url, "applying the retention"):
                pipe = self._redis.pipeline(transaction=True)
                for member in members:
                    seq, name = member.split("|", 1)
                    pipe.xdel(self._stream, f"{seq}-0")
                    pipe.xdel(self._session_key(name), f"{seq}-0")
                pipe.zrem(self._ts_index, *members)
                done = pipe.execute()
                self._drop_empty(keys=sorted({self._session_key(m.split("|", 1)[1]) for m in members}))
            deleted += sum(int(n) for n in done[:-1:2])

    def stats(self) -> dict[str, Any]:
        """Events held, sessions they belong to, and the oldest event's time (epoch seconds)."""
        with redis_errors(self.url, "reading the event log's statistics"):
            events = int(self._redis.xlen(self._stream))
            sessions = sum(1 for _ in self._redis.scan_iter(match=self._session_key("*"), count=1000))
            oldest = self._redis.zrange(self._ts_index, 0, 0, withscores=True)
        first = float(oldest[0][1]) if oldest else None  # type: ignore[index]
        return {"events": events, "sessions": sessions, "oldest_event": first}

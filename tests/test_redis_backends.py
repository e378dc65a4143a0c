"""The Redis backends on a real ``redis-server`` (AOF, fsync always): what only a shared server
shows. Sequence numbers stay unique and increasing across clients; a reader catches up from its
last id; retention gives keys a TTL and deletes old events; a stopped Redis is a clear
``BackendError`` and the same objects work again once it is back (with every acknowledged event
still there); and a ranker built by one stack sees what another stack recorded.

The behaviour every backend shares is in tests/contracts (run there on SQLite/JSON and Redis)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from assistant.redis_state import RedisSessionStore
from assistant.stack import Stack
from assistant.state import SessionState
from ranking.redis_events import RedisEventLog
from shopassist.config import Settings
from shopassist.errors import BackendError
from shopassist.models import Candidate, EventType
from shopassist.privacy import DAY_S, Pseudonyms, Retention

if TYPE_CHECKING:
    from redis_server import RedisServer

pytest_plugins = ["redis_server"]  # the ``redis_url`` fixture (tests/redis_server.py)
pytestmark = pytest.mark.integration


def ev(session: str, type_: str, product: str | None = None, query: str | None = None, **extra: object) -> dict:
    return {"session_id": session, "type": type_, "product_id": product, "query": query, **extra}


@pytest.fixture()
def namespace() -> str:
    return f"t-{uuid.uuid4().hex}"


@pytest.fixture()
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client, to look at the keys the backends write."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


# -- sequence numbers ---------------------------------------------------------------------------------------
def test_two_clients_appending_at_once_get_unique_increasing_sequence_numbers(redis_url: str, namespace: str) -> None:
    a, b = RedisEventLog(redis_url, namespace=namespace), RedisEventLog(redis_url, namespace=namespace)
    got: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def writer(name: str, log: RedisEventLog) -> None:
        try:
            for k in range(60):
                result = log.append([ev(f"{name}{k % 3}", "click", f"p{k}"), ev(f"{name}{k % 3}", "view", f"p{k}")])
                got[name] += [e.seq for e in result.accepted if e.seq is not None]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n, log)) for n, log in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for seqs in got.values():  # each client's numbers only go up, and a batch's are consecutive
        assert seqs == sorted(seqs) and all(y == x + 1 for x, y in zip(seqs[::2], seqs[1::2], strict=True))
    assert sorted(got["a"] + got["b"]) == list(range(1, 241))  # none shared, none skipped
    assert [e.seq for e in b.replay()] == list(range(1, 241)) and a.last_seq() == b.last_seq() == 240
    a.close()
    b.close()


def test_a_reader_catches_up_from_its_last_id(redis_url: str, namespace: str) -> None:
    with (
        RedisEventLog(redis_url, namespace=namespace) as writer,
        RedisEventLog(redis_url, namespace=namespace) as reader,
    ):
        writer.append([ev("s1", "click", "p1"), ev("s2", "click", "p2")])
        seen = [e.seq for e in reader.replay()]
        last = seen[-1]
        assert last is not None and last == reader.last_seq() == 2
        writer.append([ev("s1", "add_to_cart", "p3")])
        writer.append([ev("s2", "search", query="boots"), ev("s1", "purchase", "p3")])
        new = list(reader.replay(last))
        assert [(e.seq, e.type) for e in new] == [
            (3, EventType.add_to_cart),
            (4, EventType.search),
            (5, EventType.purchase),
        ]
        assert list(reader.replay(reader.last_seq())) == []
        # a session's own catch-up reads only that session
        assert [e.seq for e in reader.session("s1", since_seq=1)] == [3, 5]


def test_a_new_client_replays_everything_from_the_start_exactly(redis_url: str, namespace: str) -> None:
    ts = time.time() - 3600.123456
    with RedisEventLog(redis_url, namespace=namespace) as log:
        sent = log.append(
            [
                ev("s1", "search", query="高腰 牛仔裤", ts=ts),
                ev("s1", "click", "j1", variant="rank:treatment"),
                ev("s2", "dislike", "b1"),
            ]
        ).accepted
    with RedisEventLog(redis_url, namespace=namespace) as fresh:
        replayed = list(fresh.replay())
        assert replayed == sent  # every field, ts to the last bit, in log order
        assert replayed[0].ts == ts and replayed[1].variant == "rank:treatment" and replayed[0].product_id is None
        assert [e.seq for e in fresh.replay(batch=1)] == [1, 2, 3]


# -- retention and privacy ----------------------------------------------------------------------------------
def test_session_keys_get_the_retention_as_their_ttl(redis_url: str, namespace: str, raw: redis.Redis) -> None:
    with RedisEventLog(redis_url, namespace=namespace, retention=Retention(days=2)) as log:
        log.append([ev("s1", "click", "p1")])
        ttl = raw.ttl(f"{{{namespace}}}:session:s1")
        assert 2 * DAY_S < ttl <= 2 * DAY_S + 600  # the period plus the clock skew an event may carry
        assert raw.ttl(f"{{{namespace}}}:events") == -1  # the log itself stays; old events leave it
    with RedisSessionStore(redis_url, namespace=namespace, retention=Retention(days=2)) as store:
        store.save(SessionState(session_id="s1"))
        assert 2 * DAY_S - 60 < raw.ttl(f"{namespace}:state:s1") <= 2 * DAY_S
        raw.persist(f"{namespace}:state:s1")
        store.purge()  # a key saved without a TTL (retention turned on since) gets one
        assert 2 * DAY_S - 60 < raw.ttl(f"{namespace}:state:s1") <= 2 * DAY_S
    with RedisSessionStore(redis_url, namespace=namespace, retention=Retention(days=0)) as forever:
        forever.save(SessionState(session_id="s1"))
        assert raw.ttl(f"{namespace}:state:s1") == -1  # retention 0: kept until deleted


def test_events_older_than_the_retention_are_deleted(redis_url: str, namespace: str, raw: redis.Redis) -> None:
    old = time.time() - 3 * DAY_S
    with RedisEventLog(redis_url, namespace=namespace) as keep_all:
        keep_all.append([ev("old", "click", "p1", ts=old), ev("new", "click", "p2"), ev("old", "view", "p3", ts=old)])
    with RedisEventLog(redis_url, namespace=namespace, retention=Retention(days=1)) as log:  # purges on open
        assert [(e.seq, e.session_id) for e in log.replay()] == [(2, "new")]
        assert log.session("old") == [] and not raw.exists(f"{{{namespace}}}:session:old")
        assert log.stats() == {"events": 1, "sessions": 1, "oldest_event": pytest.approx(time.time(), abs=60)}
        assert log.append([ev("new", "view", "p4")]).accepted[0].seq == 4  # numbers never reused


def test_sessions_are_stored_under_pseudonyms_and_forgotten_everywhere(
    redis_url: str, namespace: str, raw: redis.Redis
) -> None:
    names = Pseudonyms(b"k" * 32)
    anon = names("jane@example.com")
    with (
        RedisEventLog(redis_url, namespace=namespace, pseudonyms=names) as log,
        RedisSessionStore(redis_url, namespace=namespace, pseudonyms=names) as store,
    ):
        log.append([ev("jane@example.com", "click", "p1"), ev("bob", "click", "p2")])
        store.save(SessionState(session_id="jane@example.com"))
        keys = set(raw.scan_iter(match=f"*{namespace}*"))
        assert not any("jane" in k for k in keys) and f"{namespace}:state:{anon}" in keys
        assert "jane" not in raw.get(f"{namespace}:state:{anon}")  # type: ignore[operator]
        assert [e.session_id for e in log.replay()] == [anon, names("bob")]
        assert [e.session_id for e in log.session("jane@example.com")] == ["jane@example.com"]
        assert log.delete_sessions([anon]) == 1 and store.delete(anon) is True
        assert [e.session_id for e in log.replay()] == [names("bob")] and log.session("jane@example.com") == []
        assert store.load("jane@example.com") == SessionState(session_id="jane@example.com")


def test_a_damaged_session_value_starts_the_session_afresh(redis_url: str, namespace: str, raw: redis.Redis) -> None:
    with RedisSessionStore(redis_url, namespace=namespace) as store:
        raw.set(f"{namespace}:state:s1", '{"session_id": "s1", "turns": [{"user": ')
        assert store.load("s1") == SessionState(session_id="s1")
        assert str(raw.get(f"{namespace}:state-damaged:s1")).startswith('{"session_id"')  # kept aside
        store.save(SessionState(session_id="s1", seen=["j1"]))
        assert store.load("s1").seen == ["j1"]
        assert store.delete("s1") is True and not raw.exists(f"{namespace}:state-damaged:s1")


# -- a failing server ---------------------------------------------------------------------------------------
@pytest.fixture()
def own_server(own_redis_server: RedisServer) -> RedisServer:
    return own_redis_server


def test_a_stopped_redis_is_a_clear_backend_error_and_works_again_after_a_restart(own_server: RedisServer) -> None:
    url = own_server.url
    log, store = RedisEventLog(url), RedisSessionStore(url)
    acknowledged = log.append([ev("s1", "click", "p1"), ev("s1", "view", "p2")]).accepted
    store.save(SessionState(session_id="s1", seen=["p1"]))
    own_server.stop()
    for call in (
        lambda: log.append([ev("s1", "click", "p3")]),
        lambda: list(log.replay()),
        lambda: log.session("s1"),
        lambda: store.load("s1"),
        lambda: store.save(SessionState(session_id="s1")),
    ):
        with pytest.raises(
            BackendError, match=rf"Redis at redis://127\.0\.0\.1:{own_server.port}/0 is unreachable"
        ) as err:
            call()
        assert "--redis-url / SHOPASSIST_REDIS_URL" in str(err.value)
    with pytest.raises(BackendError, match="unreachable while opening the event log"):
        RedisEventLog(url)
    own_server.start()  # same port and data dir: the append-only file brings everything back
    assert list(log.replay()) == acknowledged and store.load("s1").seen == ["p1"]
    assert log.append([ev("s1", "click", "p3")]).accepted[0].seq == 3
    log.close()
    store.close()


def test_a_redis_without_fsync_on_every_write_opens_with_a_warning(
    own_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisEventLog(own_server.url) as log:
        assert log.durable is True
    client = redis.Redis.from_url(own_server.url)
    client.config_set("appendfsync", "everysec")
    client.close()
    with caplog.at_level(logging.WARNING, logger="ranking.redis_events"), RedisEventLog(own_server.url) as weak:
        assert weak.durable is False
        assert weak.append([ev("s1", "click", "p1")]).accepted  # a warning, not a failure
    assert "appendfsync=everysec" in caplog.text and "--appendfsync always" in caplog.text


# -- the stack ----------------------------------------------------------------------------------------------
def test_a_ranker_sees_an_event_another_stack_recorded_on_the_same_redis(
    settings: Settings, loaded_catalog: object, redis_url: str, use_embedder: object
) -> None:
    """Two stacks over one home (the sample catalog) and one Redis, as two API processes."""
    url = redis_url.rsplit("/", 1)[0] + "/1"  # a database of this test's own: the stack's namespace is fixed
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    settings = Settings(home=settings.home, redis_url=url)
    with Stack(settings, embedder=use_embedder) as a, Stack(settings, embedder=use_embedder) as b:  # type: ignore[arg-type]
        assert isinstance(a.events, RedisEventLog) and isinstance(b.sessions, RedisSessionStore)
        ranker_a, ranker_b = a.ranker, b.ranker
        assert ranker_a is not None and ranker_b is not None
        ids = ["j1", "j2", "j3", "j4"]
        candidates = [Candidate(product=b.catalog.get(i), score=1.0) for i in ids]  # type: ignore[arg-type]
        before = [c.product.id for c in ranker_b.rank("shopper", candidates)]
        assert before[0] in ids
        recorded = ranker_a.record([ev("shopper", "dislike", before[0])])
        assert recorded.accepted and not recorded.rejected
        after = [c.product.id for c in ranker_b.rank("shopper", candidates)]  # b never saw it: Redis did
        assert before[0] not in after and set(after) == set(ids) - {before[0]}
        # nothing under HOME holds the events or sessions: they live in Redis
        assert not (settings.home / "events.sqlite").exists() and not (settings.home / "sessions").exists()
        status = b.privacy_status()
        assert status["events_file"] == url and status["events"] == 1 and status["event_sessions"] == 1
        gone = b.forget("shopper")
        assert gone.events == 1 and a.events.session("shopper") == []

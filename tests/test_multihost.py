"""API workers on different machines: two real ``shopassist serve`` processes, each with a home of
its own (its own Chroma, catalog mirror, ranker), sharing one Redis (events, sessions, session
locks), one PostgreSQL (the catalog), one pseudonym secret (``SHOPASSIST_PSEUDONYM_SECRET``) and
one session-token secret (``SHOPASSIST_API_SECRET``) -- what a deployment behind a load balancer
looks like. What one worker accepts, the other serves next; a worker killed with SIGKILL loses no
acknowledged event; a PostgreSQL that stops for a moment is a 503 with Retry-After, and both
workers recover by themselves once it is back.

The Redis and PostgreSQL servers are this module's own (tests/redis_server.py,
tests/postgres_server.py): the PostgreSQL one is stopped and started again here, which must not
touch other modules' servers. The workers are started once for the module; the fault tests come
last, in file order (the SIGKILL test ends worker A).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SAMPLE_PRODUCTS
from postgres_server import PostgresServer, started_server
from redis_server import RedisServer, need_redis

from ranking.redis_events import RedisEventLog
from shopassist.errors import BackendError
from shopassist.privacy import SECRET_ENV, SECRET_FILE, Pseudonyms
from ui.api import BACKEND_RETRY_AFTER_S, RedisSessionLeases, SessionLocks

pytestmark = pytest.mark.integration

KEY = "multihost-key-123"
H = {"X-API-Key": KEY}
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Worker:
    name: str
    home: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=H, timeout=timeout)


@dataclass
class Cluster:
    redis: RedisServer
    postgres: PostgresServer
    secret: bytes
    a: Worker
    b: Worker

    def event_log(self) -> RedisEventLog:
        """The shared log as a third process reads it (the same Redis and pseudonym secret)."""
        return RedisEventLog(self.redis.url, pseudonyms=Pseudonyms(self.secret))


def wait_ready(worker: Worker, deadline: float) -> None:
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker {worker.name} exited with {worker.proc.returncode}")
        try:
            if httpx.get(f"{worker.base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"worker {worker.name} did not answer /healthz in time")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    need_redis()
    root = tmp_path_factory.mktemp("multihost")
    redis = RedisServer(root / "redis")
    redis.start()
    postgres = started_server()
    secret = secrets.token_bytes(32)
    env = {
        **os.environ,
        "SHOPASSIST_REDIS_URL": redis.url,
        "SHOPASSIST_DATABASE_URL": postgres.create_database(),
        SECRET_ENV: secret.hex(),
        "SHOPASSIST_API_SECRET": secrets.token_hex(32),
        "SHOPASSIST_AGENT_IDLE_MINUTES": "0",
    }
    catalog = root / "sample.jsonl"
    import json

    catalog.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in SAMPLE_PRODUCTS) + "\n", encoding="utf-8")
    workers: list[Worker] = []
    try:
        ingest = subprocess.run(
            [sys.executable, "-m", "ui.cli", "catalog", "ingest", str(catalog)],
            env={**env, "SHOPASSIST_HOME": str(root / "a")},
            cwd=REPO,
            capture_output=True,
            timeout=300,
        )
        assert ingest.returncode == 0, ingest.stderr.decode(errors="replace")
        for name in ("a", "b"):  # two homes: as on two machines
            port = free_port()
            cmd = [sys.executable, "-m", "ui.cli", "serve", "--port", str(port), "--no-llm", "--rate", "100000"]
            proc = subprocess.Popen(
                [*cmd, "--api-key", KEY],
                env={**env, "SHOPASSIST_HOME": str(root / name)},
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=open(root / f"{name}.log", "wb"),  # noqa: SIM115  (the worker's, closed at its exit)
            )
            workers.append(Worker(name, root / name, port, proc))
        deadline = time.monotonic() + 180
        for worker in workers:
            wait_ready(worker, deadline)
        yield Cluster(redis, postgres, secret, workers[0], workers[1])
    finally:
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.terminate()
                try:
                    worker.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.proc.kill()
                    worker.proc.wait()
        postgres.destroy()
        redis.stop()


def chat(client: httpx.Client, session: str, message: str) -> dict[str, Any]:
    res = client.post(
        "/v1/chat/completions", json={"user": session, "messages": [{"role": "user", "content": message}]}
    )
    assert res.status_code == 200, res.text
    return dict(res.json()["shopassist"])


def search(client: httpx.Client, query: str) -> httpx.Response:
    return client.post("/v1/tools/search_products", json={"query": query})


def test_the_hosts_keep_nothing_a_shopper_touches_in_their_homes(cluster: Cluster) -> None:
    with cluster.a.client() as a:
        chat(a, "home-check", "牛仔裤")
    for worker in (cluster.a, cluster.b):
        assert not (worker.home / SECRET_FILE).exists()  # the shared secret comes from the environment
        assert not (worker.home / "catalog.sqlite").exists()  # the catalog is in PostgreSQL
        assert not (worker.home / "events.sqlite").exists()  # events and sessions are in Redis
        assert not list((worker.home / "sessions").glob("*.json"))


def test_an_event_through_one_host_changes_the_next_ranking_of_the_other(cluster: Cluster) -> None:
    with cluster.a.client() as a, cluster.b.client() as b:
        first = chat(b, "mh-1", "牛仔裤")
        assert first["products"]
        # the session token b issued is good on a (one API secret), for this session only
        token = first["session_token"]
        event = {"session_id": "mh-1", "type": "dislike", "product_id": first["products"][0]}
        res = a.post("/v1/events", json=event, headers={"X-API-Key": "", "X-Session-Token": token})
        assert res.status_code == 200 and res.json()["accepted"] == 1, res.text
        again = chat(b, "mh-1", "牛仔裤")  # b never saw the event: it reads the shared log
        assert again["products"] and first["products"][0] not in again["products"]


def test_a_catalog_write_through_one_host_is_found_by_a_search_through_the_other(cluster: Cluster) -> None:
    with cluster.a.client() as a, cluster.b.client() as b:
        assert search(b, "牛仔裤").status_code == 200  # b's mirror is loaded before the write
        record = {"title": "极光紫阔腿牛仔裤 女", "price": 129.0, "currency": "CNY", "category": "服饰 > 女装 > 牛仔裤"}
        res = a.put("/v1/catalog/products/new-aurora", json=record)
        assert res.status_code == 200 and res.json()["status"] == "added", res.text
        hits = search(b, "极光紫阔腿牛仔裤").json()["data"]
        assert hits and hits[0]["id"] == "new-aurora"
        assert b.get("/v1/catalog/products/new-aurora").json()["price"] == 129.0


def test_a_chat_session_started_on_one_host_continues_on_the_other(cluster: Cluster) -> None:
    with cluster.a.client() as a, cluster.b.client() as b:
        first = chat(a, "mh-chat", "牛仔裤")
        assert first["products"]
        second = chat(b, "mh-chat", "200以内的")  # a refinement of what a showed
        assert second["intent"].get("relation") == "refine"
        assert second["products"]
        assert all("牛仔裤" in b.get(f"/v1/catalog/products/{pid}").json()["category"] for pid in second["products"])
        fresh = chat(b, "mh-chat-fresh", "200以内的")  # the same words without a's turn: no refinement
        assert fresh["intent"].get("relation") != "refine"
        assert any("牛仔裤" not in b.get(f"/v1/catalog/products/{pid}").json()["category"] for pid in fresh["products"])
    # the state both turns built lives in Redis, under the pseudonym both hosts compute
    from assistant.redis_state import RedisSessionStore

    with RedisSessionStore(cluster.redis.url, pseudonyms=Pseudonyms(cluster.secret)) as store:
        assert [t.user for t in store.load("mh-chat").turns] == ["牛仔裤", "200以内的"]


def test_a_sessions_turns_exclude_each_other_across_hosts(cluster: Cluster, tmp_path: Path) -> None:
    """Two hosts' lock tables (different homes, one Redis): the same session waits for the other
    host, another session does not; a holder that dies without releasing frees the session when
    its lease expires, and a live holder's lease is renewed past its TTL."""
    one = SessionLocks(tmp_path / "one", cluster.redis.url, lease_ttl_s=0.6)
    two = SessionLocks(tmp_path / "two", cluster.redis.url, lease_ttl_s=0.6)
    got: list[str] = []

    def turn(session: str) -> None:
        with two.lock(session):
            got.append(session)

    with one.lock("shopper-1"):
        same = threading.Thread(target=turn, args=("shopper-1",))
        other = threading.Thread(target=turn, args=("shopper-2x",))
        same.start()
        other.start()
        other.join(5)
        same.join(1.5)  # well past the TTL: the holder's renewals keep the lease
        assert got == ["shopper-2x"] and same.is_alive()
    same.join(5)
    assert got == ["shopper-2x", "shopper-1"]
    assert not (tmp_path / "one").exists()  # with Redis no lock files are made

    # a holder that never releases (a host killed mid-turn) leaves its lease behind, renewed no
    # more: it expires, and the session goes on
    import redis

    assert two.leases is not None
    with redis.Redis.from_url(cluster.redis.url) as raw:
        assert raw.set(two.leases.key("shopper-3"), "a-dead-host", nx=True, px=600)
    started = time.monotonic()
    with two.lock("shopper-3"):
        waited = time.monotonic() - started
    assert 0.3 < waited < 3.0
    with redis.Redis.from_url(cluster.redis.url) as raw:
        assert not raw.exists(two.leases.key("shopper-3"))  # released on leaving the turn

        # release deletes only its own lease: one that expired and was taken by another host stays
        key, token = two.leases.acquire("shopper-4")
        raw.set(key, "the-next-holder", px=5000)
        two.leases.release(key, token)
        assert raw.get(key) == b"the-next-holder"
        # a session held for longer than a waiter may wait: a BackendError (the API's 503)
        impatient = RedisSessionLeases(cluster.redis.url, ttl_s=5, wait_s=0.3)
        with pytest.raises(BackendError, match="another turn of this session"):
            impatient.acquire("shopper-4")
        raw.delete(key)
        impatient.close()
    one.close()
    two.close()


def test_postgresql_stopping_gives_503_with_retry_after_and_both_hosts_recover(cluster: Cluster) -> None:
    record = {"title": "雾霾蓝直筒牛仔裤 女", "price": 159.0, "currency": "CNY", "category": "服饰 > 女装 > 牛仔裤"}
    with cluster.a.client(timeout=60) as a, cluster.b.client(timeout=60) as b:
        assert search(b, "牛仔裤").status_code == 200
        cluster.postgres.stop()
        try:
            write = a.put("/v1/catalog/products/haze-blue", json=record)
            assert write.status_code == 503, write.text
            assert write.headers["Retry-After"] == str(BACKEND_RETRY_AFTER_S)
            assert write.json()["error"]["type"] == "backend_unavailable"
            # every search first asks the database for its change sequence (refresh): without it
            # the mirror cannot know it is current, so the search is refused, never served stale
            turn = b.post(
                "/v1/chat/completions", json={"user": "pg-down", "messages": [{"role": "user", "content": "牛仔裤"}]}
            )
            assert turn.status_code == 503, turn.text
            assert turn.headers["Retry-After"] == str(BACKEND_RETRY_AFTER_S)
            assert b.get("/v1/catalog/products/j1").status_code == 503  # a lookup refreshes too
            # the search tool too: the same 503, and its message names no host (the caller may be anyone)
            found = search(b, "牛仔裤")
            assert found.status_code == 503, found.text
            assert found.headers["Retry-After"] == str(BACKEND_RETRY_AFTER_S)
            assert "127.0.0.1" not in found.text and "retry" in found.json()["error"]["message"]
            # what needs only Redis goes on: events are accepted while the catalog is down
            ev = b.post("/v1/events", json={"session_id": "pg-down", "type": "search", "query": "牛仔裤"})
            assert ev.status_code == 200, ev.text
            time.sleep(2)
        finally:
            cluster.postgres.start()
        # the same worker processes, no restart: the pools reconnect by themselves
        write = a.put("/v1/catalog/products/haze-blue", json=record)
        assert write.status_code == 200 and write.json()["status"] == "added", write.text
        hits = search(b, "雾霾蓝直筒牛仔裤").json()["data"]
        assert hits and hits[0]["id"] == "haze-blue"
        assert search(a, "雾霾蓝直筒牛仔裤").json()["data"][0]["id"] == "haze-blue"


def test_a_host_killed_mid_stream_loses_no_acknowledged_event_and_the_other_serves_on(cluster: Cluster) -> None:
    acknowledged: list[int] = []
    failures: list[str] = []
    products = [p["id"] for p in SAMPLE_PRODUCTS]

    def stream() -> None:
        with cluster.a.client(timeout=5) as a:
            for i in range(5000):
                event = {"session_id": f"kill-{i}", "type": "click", "product_id": products[i % len(products)]}
                try:
                    res = a.post("/v1/events", json=event)
                except httpx.HTTPError as exc:
                    failures.append(type(exc).__name__)
                    if len(failures) >= 3:
                        return
                    continue
                if res.status_code == 200 and res.json().get("accepted") == 1:
                    acknowledged.append(i)

    sender = threading.Thread(target=stream)
    sender.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 30 and time.monotonic() < deadline and sender.is_alive():
        time.sleep(0.02)
    assert len(acknowledged) >= 30, failures
    os.kill(cluster.a.proc.pid, signal.SIGKILL)  # in the middle of the stream
    sender.join(30)
    assert not sender.is_alive() and failures  # the stream did break off
    assert cluster.a.proc.wait(timeout=10) == -signal.SIGKILL

    log = cluster.event_log()
    try:
        missing = [i for i in acknowledged if len(log.session(f"kill-{i}")) != 1]
    finally:
        log.close()
    assert not missing, f"{len(missing)} acknowledged events are not in the log: {missing[:10]}"

    with cluster.b.client() as b:  # the other host serves on, reads and writes
        assert chat(b, "after-kill", "牛仔裤")["products"]
        ev = b.post("/v1/events", json={"session_id": "after-kill", "type": "click", "product_id": "j1"})
        assert ev.status_code == 200 and ev.json()["accepted"] == 1


# -- one pseudonym secret for every host (no servers needed) -----------------------------------------
def test_the_pseudonym_secret_from_the_environment_is_shared_by_homes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    from shopassist.privacy import configured_secret, secret_source

    secret = secrets.token_bytes(32)
    monkeypatch.setenv(SECRET_ENV, secret.hex())
    a, b = Pseudonyms.for_home(tmp_path / "a"), Pseudonyms.for_home(tmp_path / "b")
    assert a("shopper@example.com") == b("shopper@example.com") == Pseudonyms(secret)("shopper@example.com")
    assert not (tmp_path / "a").exists()  # the home is neither read nor written
    assert secret_source(tmp_path / "a") == f"${SECRET_ENV}"
    for written in (
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        f"  {secret.hex()}\n",
    ):
        assert configured_secret({SECRET_ENV: written}) == secret
    assert configured_secret({SECRET_ENV: "  "}) is None and configured_secret({}) is None


def test_a_bad_pseudonym_secret_in_the_environment_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shopassist.errors import UsageError
    from shopassist.privacy import configured_secret, secret_source

    for bad, why in (("not a secret!", "neither"), ("00ff" * 4 + "0a", "only 9 bytes"), ("c2hvcnQ=", "only 5")):
        with pytest.raises(UsageError, match=SECRET_ENV) as caught:
            configured_secret({SECRET_ENV: bad})
        assert why in str(caught.value) and bad not in str(caught.value)  # the value is never shown
    monkeypatch.setenv(SECRET_ENV, "too short")
    with pytest.raises(UsageError):
        Pseudonyms.for_home(tmp_path / "home")  # never a silent fall back to a per-home secret
    assert not (tmp_path / "home" / SECRET_FILE).exists()
    monkeypatch.delenv(SECRET_ENV)
    assert secret_source(tmp_path / "home") == str(tmp_path / "home" / SECRET_FILE)  # the default is unchanged
    Pseudonyms.for_home(tmp_path / "home")
    assert (tmp_path / "home" / SECRET_FILE).exists()

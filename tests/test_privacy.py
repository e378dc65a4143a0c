"""Privacy: pseudonymous session ids, private files, retention, and forgetting a shopper."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from contracts.test_event_log_contract import EventLogContract
from contracts.test_session_store_contract import SessionStoreContract, a_session
from fastapi.testclient import TestClient

from assistant.stack import Stack, forget_session
from assistant.state import SessionStore
from ranking.events import SQLiteEventLog
from ranking.ranker import Ranker
from shopassist.config import Settings
from shopassist.errors import UsageError
from shopassist.privacy import PSEUDONYM, SECRET_FILE, Pseudonyms, Retention
from ui.api import create_app
from ui.cli import main

RAW = "jane.doe@example.com"  # what a client may send as its session id (the OpenAI `user` field)
DAY = 86400.0
KEY = "privacy-key-1"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def raw_id_in_files(root: Path, raw: str = RAW) -> list[str]:
    """Every file under ``root`` whose name or bytes hold ``raw``."""
    needle = raw.encode()
    return [str(p) for p in files_under(root) if raw in str(p.relative_to(root)) or needle in p.read_bytes()]


@pytest.fixture()
def pseudonyms(tmp_path: Path) -> Pseudonyms:
    return Pseudonyms.for_home(tmp_path / "home")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


# -- pseudonyms and the secret -----------------------------------------------------------------------
@pytest.mark.unit
def test_the_secret_is_made_once_private_and_the_pseudonyms_survive_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = Pseudonyms.for_home(home)
    name = first(RAW)
    assert PSEUDONYM.fullmatch(name) and RAW not in name
    assert mode(home) == 0o700 and mode(home / SECRET_FILE) == 0o600
    secret = (home / SECRET_FILE).read_bytes()
    again = Pseudonyms.for_home(home)  # a restart: the same secret, the same pseudonym
    assert again(RAW) == name and (home / SECRET_FILE).read_bytes() == secret
    assert again(name) == name  # a pseudonym is its own pseudonym
    assert again("jane.doe@example.org") != name
    assert Pseudonyms.for_home(tmp_path / "other")(RAW) != name  # another home, another key
    assert secret.decode().strip() not in repr(first)


@pytest.mark.unit
def test_a_loose_secret_is_tightened_and_a_damaged_one_set_aside(tmp_path: Path) -> None:
    home = tmp_path / "home"
    name = Pseudonyms.for_home(home)(RAW)
    os.chmod(home / SECRET_FILE, 0o644)
    assert Pseudonyms.for_home(home)(RAW) == name and mode(home / SECRET_FILE) == 0o600
    (home / SECRET_FILE).write_text("not a secret\n")
    fresh = Pseudonyms.for_home(home)  # the service keeps working, with a new secret
    assert fresh(RAW) != name and mode(home / SECRET_FILE) == 0o600
    assert [p.name for p in home.glob(f"{SECRET_FILE}.damaged-*")]


# -- the session store ----------------------------------------------------------------------------------
@pytest.mark.unit
def test_session_files_are_private_and_named_by_the_pseudonym_only(tmp_path: Path, pseudonyms: Pseudonyms) -> None:
    folder = tmp_path / "home" / "sessions"
    store = SessionStore(folder, pseudonyms=pseudonyms)
    state = a_session(RAW)
    store.save(state)
    files = list(folder.iterdir())
    assert [p.name for p in files] == [f"{pseudonyms(RAW)}.json"]
    assert mode(folder) == 0o700 and mode(files[0]) == 0o600
    assert RAW.encode() not in files[0].read_bytes()
    assert store.load(RAW) == state  # handed back under the id it was asked for
    assert store.load(pseudonyms(RAW)).constraints == state.constraints  # the pseudonym finds it too


@pytest.mark.unit
def test_loose_permissions_of_an_existing_store_are_fixed_when_it_is_opened(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    (folder / "s1.json").write_text(a_session("s1").model_dump_json())
    os.chmod(folder / "s1.json", 0o644)
    store = SessionStore(folder)
    assert mode(folder) == 0o700
    assert store.load("s1").session_id == "s1" and mode(folder / "s1.json") == 0o600


@pytest.mark.unit
def test_files_a_version_without_pseudonyms_wrote_are_renamed_with_their_age_kept(
    tmp_path: Path, pseudonyms: Pseudonyms
) -> None:
    folder = tmp_path / "sessions"
    old = SessionStore(folder)  # the old behaviour: raw ids as file names and inside
    old.save(a_session(RAW))
    (folder / f"{RAW}.damaged-1700000000.json").write_text('{"session_id":"' + RAW + '", broken')
    week_ago = time.time() - 7 * DAY
    os.utime(folder / f"{RAW}.json", (week_ago, week_ago))
    store = SessionStore(folder, pseudonyms=pseudonyms)
    assert raw_id_in_files(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{pseudonyms(RAW)}.json", f"{pseudonyms(RAW)}.damaged-1700000000.json"]
    )
    assert abs((folder / f"{pseudonyms(RAW)}.json").stat().st_mtime - week_ago) < 1
    assert store.load(RAW).constraints.query == "高腰牛仔裤"


@pytest.mark.unit
def test_retention_deletes_old_session_files_at_open_and_then_hourly(tmp_path: Path, pseudonyms: Pseudonyms) -> None:
    folder = tmp_path / "sessions"
    store = SessionStore(folder, pseudonyms=pseudonyms)
    for sid in ("old", "recent"):
        store.save(a_session(sid))
    forty_days_ago = time.time() - 40 * DAY
    os.utime(folder / f"{pseudonyms('old')}.json", (forty_days_ago, forty_days_ago))
    clock = Clock()
    store = SessionStore(folder, pseudonyms=pseudonyms, retention=Retention(days=30, clock=clock))  # a start
    assert store.load("old").turns == [] and len(store.load("recent").turns) == 2
    # later: a file that ages past the cutoff goes on the first save an hour after the last sweep
    os.utime(folder / f"{pseudonyms('recent')}.json", (forty_days_ago, forty_days_ago))
    store.save(a_session("third"))
    assert store.load("recent").turns != []  # swept less than an hour ago: not yet
    clock.now += 3601
    store.save(a_session("third"))
    assert store.load("recent").turns == [] and store.load("third").turns != []


@pytest.mark.unit
class TestPseudonymousSessionStore(SessionStoreContract):
    """The session store contract holds with pseudonyms too (ids come back as the caller gave them)."""

    @pytest.fixture()
    def store(self, tmp_path: Path) -> SessionStore:
        return SessionStore(tmp_path / "sessions", pseudonyms=Pseudonyms.for_home(tmp_path / "home"))


# -- the event log ----------------------------------------------------------------------------------------
def ev(
    session: str, type_: str = "click", product: str | None = "p1", query: str | None = None, ts: float | None = None
):
    return {"session_id": session, "type": type_, "product_id": product, "query": query, "ts": ts}


def sqlite_files(path: Path) -> list[Path]:
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


@pytest.mark.integration
def test_event_rows_name_the_pseudonym_and_the_file_is_private(tmp_path: Path, pseudonyms: Pseudonyms) -> None:
    path = tmp_path / "home" / "events.sqlite"
    with SQLiteEventLog(path, pseudonyms=pseudonyms) as log:
        result = log.append([ev(RAW), ev(RAW, "search", None, "boots for jane")])
        assert [e.session_id for e in result.accepted] == [RAW, RAW]  # as sent (the caller's id)
        assert [e.product_id for e in log.session(RAW)] == ["p1", None]
        assert {e.session_id for e in log.session(RAW)} == {RAW}
        assert {e.session_id for e in log.replay()} == {pseudonyms(RAW)}
        assert all(mode(p) == 0o600 for p in sqlite_files(path)) and len(sqlite_files(path)) == 3
        assert [str(p) for p in sqlite_files(path) if RAW.encode() in p.read_bytes()] == []
    assert RAW.encode() not in path.read_bytes()


@pytest.mark.integration
def test_an_existing_log_is_tightened_and_its_raw_session_ids_replaced(tmp_path: Path, pseudonyms: Pseudonyms) -> None:
    path = tmp_path / "events.sqlite"
    with SQLiteEventLog(path) as old:  # the old behaviour: raw ids in the rows
        old.append([ev(RAW), ev("other")])
    os.chmod(path, 0o644)
    assert RAW.encode() in path.read_bytes()
    with SQLiteEventLog(path, pseudonyms=pseudonyms) as log:
        assert mode(path) == 0o600
        assert [e.product_id for e in log.session(RAW)] == ["p1"]
        assert {e.session_id for e in log.replay()} == {pseudonyms(RAW), pseudonyms("other")}
    assert [str(p) for p in sqlite_files(path) if RAW.encode() in p.read_bytes()] == []


@pytest.mark.integration
def test_retention_deletes_old_events_at_open_and_then_hourly(tmp_path: Path, pseudonyms: Pseudonyms) -> None:
    path = tmp_path / "events.sqlite"
    now = time.time()
    with SQLiteEventLog(path, pseudonyms=pseudonyms) as log:
        log.append([ev("a", ts=now - 40 * DAY), ev("b", ts=now - 20 * DAY), ev("c", ts=now - 30 * DAY + 600)])
    clock = Clock()
    with SQLiteEventLog(path, pseudonyms=pseudonyms, retention=Retention(days=30, clock=clock)) as log:
        assert sorted(e.session_id for e in log.replay()) == sorted(pseudonyms(s) for s in "bc")
        clock.now += 1200  # "c" is now past 30 days, but the last sweep was under an hour ago...
        log.append([ev("d")])
        assert len(log) == 3
        clock.now += 3601  # ... an hour later, the next append sweeps
        log.append([ev("e")])
        assert sorted(e.session_id for e in log.replay()) == sorted(pseudonyms(s) for s in "bde")
        assert log.stats()["events"] == 3


@pytest.mark.integration
def test_a_sequence_number_is_never_handed_out_twice_after_deletions(tmp_path: Path) -> None:
    with SQLiteEventLog(tmp_path / "events.sqlite") as log:
        log.append([ev("a"), ev("b"), ev("b")])
        assert log.delete_sessions(["b"]) == 2
        # a reader that saw seq 3 must see the next event: it is 4, not 2 again
        assert [e.seq for e in log.append([ev("c")]).accepted] == [4]
        assert [e.seq for e in log.replay(since_seq=3)] == [4]


@pytest.mark.integration
class TestPseudonymousEventLog(EventLogContract):
    """The event log contract holds with pseudonyms too."""

    @pytest.fixture()
    def log(self, tmp_path: Path) -> Iterator[SQLiteEventLog]:
        with SQLiteEventLog(tmp_path / "events.sqlite", pseudonyms=Pseudonyms.for_home(tmp_path / "home")) as log:
            yield log


# -- forgetting -----------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_forget_deletes_the_session_file_events_profile_and_what_the_knowledge_holds_of_it(
    tmp_path: Path, pseudonyms: Pseudonyms
) -> None:
    store = SessionStore(tmp_path / "sessions", pseudonyms=pseudonyms)
    log = SQLiteEventLog(tmp_path / "events.sqlite", pseudonyms=pseudonyms)
    ranker = Ranker(None, log)  # recording and profiles need no catalog
    store.save(a_session(RAW))
    ranker.record([ev(RAW, "search", None, "boots for jane"), ev(RAW, "click", "p1"), ev(RAW, "dislike", "p2")])
    ranker.record([ev("bob", "search", None, "red scarf"), ev("bob", "click", "p3")])
    assert ranker.profile(RAW).disliked == ["p2"] and "boots for jane" in ranker.knowledge.query_items

    gone = forget_session(pseudonyms(RAW), sessions=store, ranker=ranker)  # by the pseudonym
    assert gone.public() == {
        "session": pseudonyms(RAW),
        "deleted": {"session_file": True, "events": 3, "profile": True},
    }
    assert list((tmp_path / "sessions").iterdir()) == []
    assert log.session(RAW) == [] and {e.session_id for e in log.replay()} == {pseudonyms("bob")}
    assert ranker.sessions.forget(RAW) is False  # no profile left in memory
    assert ranker.profile(RAW).is_cold and ranker.profile(RAW).disliked == []
    kn = ranker.knowledge  # rebuilt from what the log still holds: bob's, none of jane's
    assert list(kn.query_items) == ["red scarf"] and kn.popularity("p1") == 0 and kn.popularity("p3") > 0
    assert not forget_session(RAW, sessions=store, ranker=ranker).anything  # nothing left
    with pytest.raises(UsageError, match="not valid"):
        forget_session("../etc", sessions=store, ranker=ranker)
    log.close()


@pytest.mark.integration
def test_cli_privacy_forget_and_status(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, [*args, "--home", str(home)], catch_exceptions=False)

    res = run("event", "--session", RAW, "--type", "search", "--query", "boots", "--json")
    assert res.exit_code == 0, res.output
    with Stack(Settings(home=home)) as stack:
        stack.sessions.save(a_session(RAW))
    assert raw_id_in_files(home) == []

    res = run("privacy", "status", "--json")
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)
    assert status["sessions"] == 1 and status["events"] == 1 and status["retention_days"] == 30

    res = run("privacy", "forget", RAW, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["deleted"] == {"session_file": True, "events": 1, "profile": False}
    res = run("privacy", "status", "--json", "--retention-days", "0")
    assert json.loads(res.stdout)["sessions"] == 0 and json.loads(res.stdout)["retention_days"] is None

    res = run("privacy", "forget", RAW)
    assert res.exit_code == 1 and "nothing was stored" in res.stderr
    res = run("privacy", "forget", "not/valid")
    assert res.exit_code == 2 and "not valid" in res.stderr


@pytest.mark.unit
def test_the_retention_setting_comes_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().retention_days == 30
    monkeypatch.setenv("SHOPASSIST_RETENTION_DAYS", "7")
    assert Settings.from_env().retention_days == 7
    assert Settings.from_env(retention_days=0).retention_days == 0
    monkeypatch.setenv("SHOPASSIST_RETENTION_DAYS", "a month")
    with pytest.raises(UsageError, match="SHOPASSIST_RETENTION_DAYS must be an integer"):
        Settings.from_env()
    with pytest.raises(UsageError, match="retention days must be 0-36500"):
        Settings(retention_days=-1)


# -- end to end over the API -------------------------------------------------------------------------------
@pytest.fixture()
def served(settings: Settings, use_embedder, sample_file: Path) -> Iterator[tuple[Stack, TestClient]]:
    stack = Stack(settings, embedder=use_embedder)
    stack.ingest(sample_file)
    app = create_app(stack.catalog, stack.agent, stack.ranker, api_key=KEY, rate_per_minute=6000)
    try:
        yield stack, TestClient(app)
    finally:
        stack.close()


def chat_and_events(client: TestClient) -> None:
    res = client.post(
        "/v1/chat/completions",
        headers={"X-Session-Id": RAW},
        json={"messages": [{"role": "user", "content": "waterproof boots under 100"}]},
    )
    assert res.status_code == 200, res.text
    shown = res.json()["shopassist"]["products"]
    assert shown and RAW not in res.text
    auth = {"Authorization": f"Bearer {KEY}"}
    res = client.post("/v1/events", headers=auth, json=[{"session_id": RAW, "type": "click", "product_id": shown[0]}])
    assert res.status_code == 200, res.text
    res = client.post(
        "/v1/tools/record_feedback",
        headers=auth,
        json={"session_id": RAW, "product_id": shown[-1], "event": "dislike"},
    )
    assert res.status_code == 200, res.text


@pytest.mark.integration
def test_a_raw_session_id_never_reaches_a_file_under_home(served: tuple[Stack, TestClient]) -> None:
    stack, client = served
    chat_and_events(client)
    home = stack.settings.home
    stack.close()  # everything on disk (the event log's write-ahead log checkpointed)
    assert raw_id_in_files(home) == []
    sessions = home / "sessions"
    assert mode(home) == 0o700 and mode(sessions) == 0o700
    assert mode(home / SECRET_FILE) == 0o600 and mode(home / "events.sqlite") == 0o600
    assert [p.name for p in sessions.iterdir()] == [f"{stack.pseudonyms(RAW)}.json"]
    assert all(mode(p) == 0o600 for p in sessions.iterdir())


@pytest.mark.integration
def test_the_api_forgets_a_shopper_only_with_the_key(served: tuple[Stack, TestClient], settings: Settings) -> None:
    stack, client = served
    chat_and_events(client)
    name = stack.pseudonyms(RAW)
    assert client.delete(f"/v1/sessions/{RAW}").status_code == 401
    assert client.delete(f"/v1/sessions/{RAW}", headers={"X-API-Key": "wrong"}).status_code == 401
    keyless = TestClient(create_app(stack.catalog, stack.agent, stack.ranker, rate_per_minute=6000))
    assert keyless.delete(f"/v1/sessions/{RAW}").status_code == 403
    assert (settings.home / "sessions" / f"{name}.json").exists() and stack.events.session(RAW)

    res = client.delete(f"/v1/sessions/{RAW}", headers={"X-API-Key": KEY})
    assert res.status_code == 200, res.text
    assert res.json()["session"] == name and RAW not in res.text
    assert res.json()["deleted"]["session_file"] and res.json()["deleted"]["events"] >= 3
    assert res.json()["deleted"]["profile"]
    assert list((settings.home / "sessions").iterdir()) == []
    assert stack.events.session(RAW) == [] and len(stack.events) == 0
    ranker = stack.ranker
    assert ranker is not None and ranker.profile(name).is_cold and not ranker.knowledge.query_items
    res = client.delete(f"/v1/sessions/{name}", headers={"X-API-Key": KEY})
    assert res.status_code == 404 and "nothing is stored" in res.json()["error"]["message"]
    assert client.delete("/v1/sessions/a b", headers={"X-API-Key": KEY}).status_code == 422


def test_warming_a_server_up_leaves_no_session_or_event_behind(
    settings: Settings, use_embedder, sample_file: Path
) -> None:
    """``serve`` warms the models, indexes and the rules path with one throwaway turn before it
    listens: that turn is on a fork in a temporary directory, so the shop stores nothing of it."""
    with Stack(settings, embedder=use_embedder) as stack:
        stack.ingest(sample_file)
        stack.warm_up()
        assert stack.sessions.stats()["sessions"] == 0 and not stack.sessions.load("warm-up").turns
        assert stack.ranker is not None and len(stack.events) == 0

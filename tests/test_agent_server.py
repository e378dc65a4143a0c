"""The background agent server ``ask`` hands its turns to (ui/agent_server.py): started by the
first ask, used by the next ones with the same home and settings, the conversation continuing
across both, and never trusted blindly (a server that dies mid-turn is replaced by this process)."""

import json
import os
import socket
import threading
import time

import pytest
from click.testing import CliRunner

from ui import agent_server
from ui.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPASSIST_AGENT_IDLE_MINUTES", "2")
    runner = CliRunner()
    home = str(tmp_path / "home")

    def invoke(*args):
        return runner.invoke(main, [*args, "--home", home], catch_exceptions=False)

    invoke.home = home
    yield invoke
    agent_server.stop(tmp_path / "home")


def wait_ready(home, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = [r for r in agent_server.read_records(home) if r.get("ready")]
        if ready:
            return ready[0]
        time.sleep(0.25)
    raise AssertionError("the agent server did not get ready")


def test_later_asks_go_to_the_agent_server_and_the_conversation_continues(run, sample_file):
    assert run("catalog", "ingest", str(sample_file)).exit_code == 0
    first = run("ask", "牛仔裤", "--session", "c1", "--no-llm")
    assert first.exit_code == 0 and "agent server" not in first.stderr  # answered in this process
    record = wait_ready(run.home)
    path = agent_server.read_records(run.home)[0]["socket"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"  # only the home's owner can connect
    second = run("ask", "200以内", "--session", "c1", "--no-llm", "--json")
    assert second.exit_code == 0, second.stderr
    assert "answered by the background agent server" in second.stderr
    out = json.loads(second.stdout)
    # the server read the session the first (in-process) turn wrote: the jeans need holds
    assert out["constraints"].get("max_price") == 200 and "牛仔裤" in json.dumps(out["constraints"], ensure_ascii=False)
    status = run("agent", "status", "--json")
    assert [r["pid"] for r in json.loads(status.stdout)] == [record["pid"]]
    stopped = run("agent", "stop")
    assert str(record["pid"]) in stopped.stderr and not agent_server.read_records(run.home)


def test_other_settings_never_use_a_server_started_for_these(tmp_path):
    from assistant.llm import LLMSettings
    from shopassist.config import Settings

    a = Settings.from_env(home=str(tmp_path / "a"))
    b = Settings.from_env(home=str(tmp_path / "b"))
    assert agent_server.server_key(a, None) != agent_server.server_key(b, None)
    assert agent_server.server_key(a, None) != agent_server.server_key(a, LLMSettings())
    assert agent_server.server_key(a, None) == agent_server.server_key(a, None)


def test_a_server_that_dies_mid_turn_is_replaced_by_this_process(run, sample_file, tmp_path):
    """A recorded, live-looking server that closes the connection without finishing the turn:
    the ask warns and answers itself, and loses nothing."""
    from shopassist.config import Settings

    assert run("catalog", "ingest", str(sample_file)).exit_code == 0
    settings = Settings.from_env(home=run.home)
    key = agent_server.server_key(settings, None)
    folder = tmp_path / "home" / agent_server.DIR
    folder.mkdir(exist_ok=True)
    sock_path = folder / f"{key}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(1)

    def half_answer():
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b'{"type": "intent", "source": "rules", "intent": {}}\n')
        conn.close()

    threading.Thread(target=half_answer, daemon=True).start()
    record = {"pid": os.getpid(), "socket": str(sock_path), "started": time.time(), "ready": True}
    (folder / f"{key}.json").write_text(json.dumps(record))
    try:
        res = run("ask", "牛仔裤", "--session", "d1", "--no-llm", "--json")
    finally:
        listener.close()
        (folder / f"{key}.json").unlink(missing_ok=True)
    assert res.exit_code == 0 and "answering in this process" in res.stderr
    assert json.loads(res.stdout)["products"]


def test_a_bad_idle_setting_is_a_clear_error(run, monkeypatch):
    monkeypatch.setenv("SHOPASSIST_AGENT_IDLE_MINUTES", "soon")
    res = CliRunner().invoke(main, ["ask", "牛仔裤", "--home", run.home, "--no-llm"])
    assert res.exit_code == 2 and "SHOPASSIST_AGENT_IDLE_MINUTES" in res.output

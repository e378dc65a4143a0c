"""The ``LLM`` contract: the real client, the shipped ``ScriptedLLM`` and the embedded model agree.

``LLMContract`` defines the behaviour once; each backend's subclass overrides the one ``llm``
fixture (the Haystack 2.x pattern). Backends:

* ``LLMClient`` against a fake OpenAI-compatible server (``FakeOpenAIServer``, an
  ``httpx.MockTransport`` passed in), which answers every scenario below and also sends a call to
  a tool that was not offered;
* ``ScriptedLLM``, scripted with the same answers;
* ``LLMClient`` against the embedded llama.cpp server and the packaged model (``slow``).

The scenarios are ones the packaged 1.5B model gets right (tests/test_llm.py checks the same).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field

from assistant.llm import LLM, MODEL_SHA256, MODEL_SIZE, LLMClient, LLMSettings, ToolReply, default_model_path, open_llm
from assistant.llm.testing import FakeOpenAIServer, ScriptedLLM, completion, sse
from shopassist.errors import UsageError

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
OFFERED = {"search_products", "compare"}
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
BOOTS_MESSAGES = [{"role": "user", "content": "Find me hiking boots under 100 dollars"}]
HELLO_MESSAGES = [{"role": "user", "content": "Say hello to a shopper."}]
AFTER_A_TOOL: list[dict[str, Any]] = [
    *BOOTS_MESSAGES,
    {
        "role": "assistant",
        "content": None,  # a turn with only a tool call
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "search_products", "arguments": '{"query": "hiking boots", "max_price": 100}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "3 products: [1] TrailCo boots 89.99 USD, [2] ..."},
]

# what the fakes answer
SHOE_ANSWER = {"category": "running shoes", "colors": ["red", "blue"], "max_price": 80}
DELTAS = ["Hello ", "and welcome, ", "shopper!"]
SEARCH_CALL = {"id": "call_a", "name": "search_products", "arguments": {"query": "hiking boots", "max_price": 100}}
UNKNOWN_CALL = {"id": "call_b", "name": "delete_all_orders", "arguments": {}}


class ShoeQuery(BaseModel):
    category: str
    colors: list[str] = Field(max_length=3)
    max_price: float | None


class LLMContract:
    """What every ``LLM`` does; a subclass provides ``llm``."""

    @pytest.fixture()
    def llm(self) -> LLM:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def test_it_satisfies_the_protocol_and_describes_itself(self, llm: LLM) -> None:
        assert isinstance(llm, LLM)
        info = llm.info()
        assert isinstance(info, dict) and info
        json.dumps(info)  # loggable and servable as is

    def test_structured_returns_an_object_the_schema_accepts(self, llm: LLM) -> None:
        value = llm.structured(SHOE_MESSAGES, SHOE_SCHEMA, max_tokens=80)
        assert isinstance(value, dict)
        answer = ShoeQuery.model_validate(value)
        assert "shoe" in answer.category.lower()
        assert {c.lower() for c in answer.colors} == {"red", "blue"} and answer.max_price == 80

    def test_stream_yields_non_empty_text_deltas(self, llm: LLM) -> None:
        deltas = list(llm.stream(HELLO_MESSAGES, max_tokens=16))
        assert len(deltas) >= 2, deltas
        assert all(isinstance(d, str) and d for d in deltas)
        assert "".join(deltas).strip()

    def test_a_named_tool_choice_gets_a_call_to_that_tool_and_nothing_unoffered(self, llm: LLM) -> None:
        reply = llm.chat_with_tools(
            BOOTS_MESSAGES, [SEARCH_TOOL, COMPARE_TOOL], tool_choice="search_products", max_tokens=80
        )
        assert isinstance(reply, ToolReply)
        text, calls = reply  # unpacks as (text, calls)
        assert isinstance(text, str) and calls is reply.tool_calls
        assert [c["name"] for c in calls] == ["search_products"]
        call = calls[0]
        assert isinstance(call["id"], str) and call["id"]
        assert isinstance(call["arguments"], dict) and "boot" in call["arguments"]["query"].lower()
        for dropped in reply.dropped:  # a call to anything else is reported, never returned
            assert dropped["name"] not in OFFERED and dropped["reason"]

    def test_a_history_with_a_tool_result_is_accepted(self, llm: LLM) -> None:
        reply = llm.chat_with_tools(AFTER_A_TOOL, [SEARCH_TOOL, COMPARE_TOOL], max_tokens=40)
        assert isinstance(reply, ToolReply) and isinstance(reply.text, str)
        assert all(c["name"] in OFFERED for c in reply.tool_calls)
        assert reply.text.strip() or reply.tool_calls

    @pytest.mark.parametrize("method", ["structured", "stream", "chat_with_tools"])
    def test_no_messages_or_no_token_budget_is_a_usage_error(self, llm: LLM, method: str) -> None:
        def call(messages: list[Any], max_tokens: int) -> Any:
            if method == "structured":
                return llm.structured(messages, SHOE_SCHEMA, max_tokens=max_tokens)
            if method == "stream":
                return list(llm.stream(messages, max_tokens=max_tokens))
            return llm.chat_with_tools(messages, [SEARCH_TOOL], max_tokens=max_tokens)

        with pytest.raises(UsageError, match="No messages"):
            call([], 8)
        with pytest.raises(UsageError, match="max_tokens"):
            call(HELLO_MESSAGES, 0)

    def test_structured_without_a_schema_is_a_usage_error(self, llm: LLM) -> None:
        with pytest.raises(UsageError, match="JSON schema"):
            llm.structured(SHOE_MESSAGES, {}, max_tokens=8)

    def test_bad_tools_or_tool_choice_are_usage_errors(self, llm: LLM) -> None:
        with pytest.raises(UsageError, match="at least one tool"):
            llm.chat_with_tools(BOOTS_MESSAGES, [])
        with pytest.raises(UsageError, match="not an OpenAI function schema"):
            llm.chat_with_tools(BOOTS_MESSAGES, [{"type": "function", "function": {"description": "no name"}}])
        with pytest.raises(UsageError, match="not one of the tools"):
            llm.chat_with_tools(BOOTS_MESSAGES, [SEARCH_TOOL], tool_choice="compare")


# -- backends ----------------------------------------------------------------------------------------------
def _well_behaved_server(body: dict[str, Any]) -> httpx.Response:
    """An OpenAI-compatible server that answers the contract's scenarios (and oversteps on tools)."""
    if body.get("stream"):
        return httpx.Response(200, content=sse(DELTAS), headers={"content-type": "text/event-stream"})
    if body.get("tools"):
        if body["messages"][-1]["role"] == "tool":
            return httpx.Response(200, json=completion("I found 3 pairs of boots; the TrailCo ones cost 89.99."))
        native = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in (SEARCH_CALL, UNKNOWN_CALL)
        ]
        return httpx.Response(200, json=completion(None, tool_calls=native))
    if body.get("response_format"):
        return httpx.Response(200, json=completion(json.dumps(SHOE_ANSWER)))
    return httpx.Response(400, json={"error": {"message": "the fake only knows the contract's scenarios"}})


@pytest.mark.unit
class TestLLMClientOnAFakeServer(LLMContract):
    """The real ``LLMClient`` (LangChain ChatOpenAI) over a fake OpenAI-compatible server passed in."""

    @pytest.fixture()
    def llm(self) -> Iterator[LLM]:
        with FakeOpenAIServer(_well_behaved_server).client() as client:
            yield client


@pytest.mark.unit
class TestScriptedLLM(LLMContract):
    """The shipped test double (``assistant.llm.testing.ScriptedLLM``), scripted with the same answers."""

    @pytest.fixture()
    def llm(self) -> LLM:
        return ScriptedLLM(
            structured=[dict(SHOE_ANSWER)],
            stream=[DELTAS],
            tool_replies=[
                ("", [SEARCH_CALL, UNKNOWN_CALL]),
                ("I found 3 pairs of boots; the TrailCo ones cost 89.99.", []),
            ],
        )


@pytest.fixture(scope="module")
def embedded_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMClient]:
    """The embedded llama.cpp server with the packaged model (reusing an assembled GGUF if there is one)."""
    from shopassist.config import Settings

    # the contract is about behaviour, not latency: a busy shared CPU must not turn into a failure
    timeout = 600.0
    assembled = default_model_path(Settings.from_env().home)
    home: Path | None = None
    if assembled.is_file() and assembled.stat().st_size == MODEL_SIZE:
        settings = LLMSettings(gguf=str(assembled), gguf_sha256=MODEL_SHA256, timeout=timeout)
    else:
        settings, home = LLMSettings(timeout=timeout), tmp_path_factory.mktemp("llm-contract-home")
    client = open_llm(settings, home)
    try:
        yield client
    finally:
        client.close()
        if home is not None:  # pytest keeps the last 3 temp roots: don't leave 1.1 GB copies behind
            import shutil

            shutil.rmtree(home / "models", ignore_errors=True)


@pytest.mark.integration
@pytest.mark.slow
class TestLLMClientOnTheEmbeddedModel(LLMContract):
    """``open_llm()``'s default: the packaged Qwen2.5-Coder-1.5B GGUF behind llama.cpp."""

    @pytest.fixture()
    def llm(self, embedded_client: LLMClient) -> LLM:
        return embedded_client

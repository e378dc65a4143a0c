"""Test doubles for the LLM path, shipped so that any test (ours or a user's) can use them.

* ``ScriptedLLM``: an ``LLM`` that answers from a script, in order, and records every call. It
  checks its arguments exactly like ``LLMClient`` (same ``UsageError``s) and, unless told not to,
  drops tool calls naming tools that were not offered, so code tested against it meets the real
  client's contract. Scripted exceptions are raised in turn, to exercise fallbacks::

      llm = ScriptedLLM(
          structured=[BackendError("server down"), {"query": "boots"}],
          stream=["[1] Warm and waterproof.\\n[2] Light.\\n"],
          tool_replies=[("", [{"name": "search_products", "arguments": {"query": "boots"}}])],
      )
      agent = ShoppingAgent(catalog, sessions, llm=llm)
      ...
      assert len(llm.calls_to("structured")) == 2

* ``FakeOpenAIServer``: an OpenAI-compatible server as an ``httpx.MockTransport``; it records the
  request bodies and answers with ``respond(body)``. ``completion()`` and ``sse()`` build its
  answers. ``FakeOpenAIServer(respond).client()`` is a real ``LLMClient`` talking to it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import httpx

from assistant.llm.client import (
    DroppedCall,
    LLMClient,
    Message,
    ToolCall,
    ToolReply,
    normalize_messages,
    normalize_tools,
)
from assistant.llm.parsing import coerce_arguments, first_json_object
from shopassist.errors import ModelBehaviourError, UsageError

__all__ = [
    "FakeOpenAIServer",
    "LLMCall",
    "ScriptedLLM",
    "ScriptedStream",
    "ScriptedStructured",
    "ScriptedToolReply",
    "completion",
    "sse",
]

ScriptedStructured: TypeAlias = dict[str, Any] | str | BaseException
"""A dict is returned as is; a str is parsed like a model's text (first JSON object, else
``ModelBehaviourError``); an exception is raised."""

ScriptedStream: TypeAlias = str | Sequence[str | BaseException] | BaseException
"""A str streams line by line (line ends kept); a sequence streams its strings as deltas and
raises an exception where it meets one (a server dying mid-answer); an exception is raised."""

ScriptedToolReply: TypeAlias = tuple[str, Sequence[Any]] | BaseException
"""``(text, calls)`` with each call ``{"name", "arguments"[, "id"]}`` (arguments a dict or a JSON
string, as servers send them); a ``ToolReply`` is such a pair too; an exception is raised."""


@dataclass
class LLMCall:
    """One call a ``ScriptedLLM`` received: the method, a copy of the messages, the other arguments."""

    method: str
    messages: list[Message]
    kwargs: dict[str, Any] = field(default_factory=dict)


class ScriptedLLM:
    """An ``LLM`` whose answers are scripted in order; records every call in ``calls``.

    When a script runs out: ``structured`` raises ``ModelBehaviourError`` (a model that stops
    answering with JSON), ``stream`` yields nothing, ``chat_with_tools`` answers ``("", [])``.
    ``fail`` makes every call raise that exception (a dead server). ``drop_unknown_tools=False``
    passes calls to tools that were not offered through, to test code that must refuse them itself.
    """

    def __init__(
        self,
        *,
        structured: Iterable[ScriptedStructured] = (),
        stream: Iterable[ScriptedStream] = (),
        tool_replies: Iterable[ScriptedToolReply] = (),
        fail: BaseException | None = None,
        drop_unknown_tools: bool = True,
    ) -> None:
        self._structured = list(structured)
        self._stream = list(stream)
        self._tool_replies = list(tool_replies)
        self.fail = fail
        self.drop_unknown_tools = drop_unknown_tools
        self.calls: list[LLMCall] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- the record --------------------------------------------------------------------------------
    def calls_to(self, method: str) -> list[LLMCall]:
        """The recorded calls of one method ("structured", "stream" or "chat_with_tools"), in order."""
        return [c for c in self.calls if c.method == method]

    def remaining(self) -> dict[str, int]:
        """How many scripted answers each method has left."""
        return {
            "structured": len(self._structured),
            "stream": len(self._stream),
            "chat_with_tools": len(self._tool_replies),
        }

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> ScriptedLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        return {"backend": "scripted", "calls": len(self.calls), "remaining": self.remaining()}

    # -- the LLM protocol --------------------------------------------------------------------------
    def structured(
        self, messages: Sequence[Message], schema: dict[str, Any], *, max_tokens: int, temperature: float = 0
    ) -> dict[str, Any]:
        self._begin("structured", messages, max_tokens, schema=schema, temperature=temperature)
        if not isinstance(schema, dict) or not schema:
            raise UsageError("structured() needs a JSON schema dict, e.g. {'type': 'object', 'properties': {...}}.")
        item = self._next(self._structured)
        if item is None:
            raise ModelBehaviourError("ScriptedLLM: the structured script is used up (no JSON object to give).")
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, str):
            value = first_json_object(item)
            if value is None:
                raise ModelBehaviourError(f"The model's answer is not a JSON object: {item[:200]!r}")
            return value
        return item

    def stream(self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.3) -> Iterator[str]:
        self._begin("stream", messages, max_tokens, temperature=temperature)
        item = self._next(self._stream)
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        deltas: Sequence[str | BaseException] = item.splitlines(keepends=True) if isinstance(item, str) else item
        for delta in deltas:
            if isinstance(delta, BaseException):
                raise delta
            if delta:
                yield delta

    def chat_with_tools(
        self,
        messages: Sequence[Message],
        tools: list[dict[str, Any]],
        *,
        tool_choice: str | dict[str, Any] = "auto",
        max_tokens: int = 256,
        temperature: float = 0,
    ) -> ToolReply:
        self._begin(
            "chat_with_tools", messages, max_tokens, tools=tools, tool_choice=tool_choice, temperature=temperature
        )
        _, names = normalize_tools(tools)
        if (
            isinstance(tool_choice, str)
            and tool_choice not in ("auto", "required", "none")
            and tool_choice not in names
        ):
            raise UsageError(f"tool_choice {tool_choice!r} is not one of the tools given: {', '.join(sorted(names))}.")
        item = self._next(self._tool_replies)
        if item is None:
            return ToolReply("", [])
        if isinstance(item, BaseException):
            raise item
        text, raw_calls = item
        calls: list[ToolCall] = []
        dropped: list[DroppedCall] = []
        for raw in raw_calls:
            name = str(raw.get("name") or "")
            args = raw.get("arguments")
            if self.drop_unknown_tools and name not in names:
                dropped.append({"name": name, "reason": "not one of the tools offered", "arguments": args})
                continue
            parsed = coerce_arguments(args)
            if parsed is None:
                dropped.append({"name": name, "reason": "arguments are not a JSON object", "arguments": args})
                continue
            calls.append(
                {"id": str(raw.get("id") or f"call_{uuid.uuid4().hex[:12]}"), "name": name, "arguments": parsed}
            )
        return ToolReply(str(text), calls, dropped)

    # -- plumbing ----------------------------------------------------------------------------------
    def _begin(self, method: str, messages: Sequence[Message], max_tokens: int, **kwargs: Any) -> None:
        """Record the call, then check it as ``LLMClient`` does; raise ``fail`` if set."""
        self.calls.append(LLMCall(method, list(messages or []), {"max_tokens": max_tokens, **kwargs}))
        normalize_messages(messages)
        if self._closed:
            raise UsageError("This LLM is closed.")
        if max_tokens < 1:
            raise UsageError(f"max_tokens must be at least 1 (got {max_tokens}).")
        if self.fail is not None:
            raise self.fail

    def _next(self, script: list[Any]) -> Any:
        with self._lock:
            return script.pop(0) if script else None


# -- a fake OpenAI-compatible server -----------------------------------------------------------------------
def completion(
    content: str | None = None, tool_calls: list[dict[str, Any]] | None = None, finish: str = "stop"
) -> dict[str, Any]:
    """A ``/chat/completions`` response body with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


def sse(deltas: list[str]) -> bytes:
    """A streamed ``/chat/completions`` body (server-sent events) carrying ``deltas``."""
    chunks = [
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "fake-model",
            "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": None}],
        }
        for d in deltas
    ]
    return ("".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n").encode()


class FakeOpenAIServer:
    """Records request bodies; ``respond(body)`` returns an ``httpx.Response``.

    ``base_url`` is unique per instance: ``LLMClient`` remembers structured-output support per
    base URL, and one fake's answers must not teach the client about another's.
    """

    def __init__(self, respond: Callable[[dict[str, Any]], httpx.Response]) -> None:
        self.respond = respond
        self.bodies: list[dict[str, Any]] = []
        self.base_url = f"http://fake-{uuid.uuid4().hex[:8]}.test/v1"

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        return self.respond(body)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def client(self, **kwargs: Any) -> LLMClient:
        """A real ``LLMClient`` whose HTTP goes to this fake (no retries unless ``max_retries`` is given)."""
        kwargs.setdefault("max_retries", 0)
        http = httpx.Client(transport=self.transport())
        return LLMClient(self.base_url, "fake-model", http_client=http, **kwargs)

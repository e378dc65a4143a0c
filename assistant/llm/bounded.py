"""``BoundedLLM``: at most N calls in flight to an LLM server, whatever calls it.

A server with one slot (the embedded llama.cpp model on a small machine) answers one request at a
time; more requests only queue inside it, holding HTTP connections and threads. The API wraps the
agent's LLM in this so that only LLM calls wait for a slot, while searches, tool calls, events and
catalog reads and writes run concurrently. A streamed call holds its slot until the stream ends
(or the caller stops reading it). Size ``slots`` to the server's parallel slots: 1-2 for the
embedded model, more for vLLM.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from assistant.llm.client import LLM, Message, ToolReply


class BoundedLLM:
    """An ``LLM`` whose calls take one of ``slots`` permits first."""

    def __init__(self, llm: LLM, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"an LLM needs at least one slot (got {slots})")
        self.inner = llm
        self.slots = slots
        self._permits = threading.BoundedSemaphore(slots)

    def structured(
        self, messages: Sequence[Message], schema: dict[str, Any], *, max_tokens: int, temperature: float = 0
    ) -> dict[str, Any]:
        with self._permits:
            return self.inner.structured(messages, schema, max_tokens=max_tokens, temperature=temperature)

    def stream(self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.3) -> Iterator[str]:
        with self._permits:
            yield from self.inner.stream(messages, max_tokens=max_tokens, temperature=temperature)

    def chat_with_tools(
        self,
        messages: Sequence[Message],
        tools: list[dict[str, Any]],
        *,
        tool_choice: str | dict[str, Any] = "auto",
        max_tokens: int = 256,
        temperature: float = 0,
    ) -> ToolReply:
        with self._permits:
            return self.inner.chat_with_tools(
                messages, tools, tool_choice=tool_choice, max_tokens=max_tokens, temperature=temperature
            )

    def info(self) -> dict[str, Any]:
        return {**self.inner.info(), "slots": self.slots}

    def __getattr__(self, name: str) -> Any:  # close(), embedded, ... of the wrapped client
        return getattr(self.inner, name)

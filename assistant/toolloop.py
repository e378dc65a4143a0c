"""A model-driven tool loop, for servers that choose tools well (vLLM, any OpenAI-compatible
server with tool calling): the model calls the five tools itself, at most ``max_steps`` rounds.
Tool errors go back to the model as tool messages; unknown tools are refused by the registry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from assistant.tools import ToolRegistry


def run_tool_loop(
    llm: Any, tools: ToolRegistry, messages: list[dict[str, Any]], max_steps: int = 4
) -> tuple[str, list[dict[str, Any]]]:
    """Returns (the model's final text, the calls it made with their outcome)."""
    calls: list[dict[str, Any]] = []
    history = list(messages)
    for _ in range(max_steps):
        text, tool_calls = llm.chat_with_tools(history, tools.schemas(), max_tokens=256)
        if not tool_calls:
            return text, calls
        history.append(_assistant_tool_message(text, tool_calls))
        for tc in tool_calls:
            result = tools.call(tc["name"], tc["arguments"])
            calls.append({"name": tc["name"], "arguments": tc["arguments"], "ok": result.ok, "error": result.error})
            history.append({"role": "tool", "tool_call_id": tc["id"], "content": result.as_message()[:4000]})
    return "", calls


def _assistant_tool_message(text: str, tool_calls: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": text or "",
        "tool_calls": [
            {
                "id": tc["id"],
                "type": "function",
                "function": {"name": tc["name"], "arguments": json.dumps(tc["arguments"], ensure_ascii=False)},
            }
            for tc in tool_calls
        ],
    }

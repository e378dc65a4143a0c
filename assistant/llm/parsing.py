"""Getting JSON and tool calls out of model text, robustly.

Why this exists: small models and mismatched server parsers put structure in ``content``:
- JSON wrapped in ```json fences, or with a sentence before/after it;
- tool calls as text, e.g. Qwen's ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``,
  a fenced or bare ``{"name": ..., "arguments": ...}`` object (the embedded llama.cpp server with
  Qwen2.5-Coder-1.5B returns exactly that fenced form even with ``tool_choice`` forced), or an
  OpenAI-shaped ``{"function": {"name": ..., "arguments": "..."}}``.
Pure functions, no I/O, so every shape is unit-tested without a model.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
_TOOL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def strip_fences(text: str) -> str:
    """The inside of the first ``` fence when there is one, else the text unchanged."""
    match = _FENCE.search(text)
    return match.group(1).strip() if match else text.strip()


def _balanced_spans(text: str, opener: str = "{") -> list[tuple[int, int]]:
    """Start/end offsets of top-level balanced {...} (or [...]) blocks, strings respected."""
    closer = "}" if opener == "{" else "]"
    spans: list[tuple[int, int]] = []
    depth = 0
    start = -1
    in_string = False
    escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"' and depth > 0:
            in_string = True
        elif ch == opener:
            if depth == 0:
                start = i
            depth += 1
        elif ch == closer and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append((start, i + 1))
    return spans


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``: whole text, then inside fences, then the first balanced
    ``{...}`` that parses. None when there is none."""
    candidates = [text.strip(), strip_fences(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    for candidate in candidates:
        for start, end in _balanced_spans(candidate):
            try:
                value = json.loads(candidate[start:end])
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _as_call(obj: Any) -> tuple[str, Any] | None:
    """(name, raw arguments) when ``obj`` looks like one tool call, else None."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # OpenAI shape
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None
    if "arguments" in obj:
        return name, obj["arguments"]
    if "parameters" in obj:  # some models say "parameters"
        return name, obj["parameters"]
    return None


def coerce_arguments(raw: Any) -> dict[str, Any] | None:
    """Arguments as a dict: a dict as is, a JSON string decoded (fences allowed), None if neither."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        return first_json_object(raw)
    return None


def tool_calls_from_text(text: str) -> tuple[list[tuple[str, Any]], str]:
    """Tool calls written as text, and the text that is left once they are taken out.

    Order of trust: ``<tool_call>`` tags (the Hermes/Qwen format), then JSON objects (fenced or
    bare) shaped like a call. Prose that merely contains braces is left alone.
    """
    calls: list[tuple[str, Any]] = []
    if "<tool_call>" in text:
        rest = text
        for match in _TOOL_TAG.finditer(text):
            body = strip_fences(match.group(1))
            objects = _objects_in(body)
            found = [c for c in (_as_call(o) for o in objects) if c]
            if found:
                calls.extend(found)
                rest = rest.replace(match.group(0), "", 1)
        return calls, rest.strip()
    rest = text
    for fence in _FENCE.finditer(text):
        found = [c for c in (_as_call(o) for o in _objects_in(fence.group(1))) if c]
        if found:
            calls.extend(found)
            rest = rest.replace(fence.group(0), "", 1)
    taken: list[str] = []
    for start, end in _balanced_spans(rest):
        chunk = rest[start:end]
        found = [c for c in (_as_call(o) for o in _objects_in(chunk)) if c]
        if found:
            calls.extend(found)
            taken.append(chunk)
    for chunk in taken:
        rest = rest.replace(chunk, "", 1)
    return calls, rest.strip()


def _objects_in(text: str) -> list[Any]:
    """JSON values in a snippet: the whole snippet (an object or a list of them), or each
    balanced object in it."""
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    out: list[Any] = []
    for start, end in _balanced_spans(text):
        try:
            out.append(json.loads(text[start:end]))
        except ValueError:
            continue
    return out

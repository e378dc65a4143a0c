"""The assistant's single LLM path (public API kept small on purpose).

    from assistant.llm import LLMSettings, open_llm

    with open_llm(LLMSettings.from_env(), home) as llm:   # embedded llama.cpp unless a base_url is set
        intent = llm.structured(messages, schema, max_tokens=160)
        for delta in llm.stream(messages, max_tokens=120, temperature=0.3): ...
        text, calls = llm.chat_with_tools(messages, tools)

Modules: ``settings`` (LLMSettings), ``model`` (assemble/verify the packaged GGUF), ``embedded``
(llama.cpp server in-process via xllamacpp), ``parsing`` (JSON / tool calls out of text),
``client`` (LLMClient over LangChain ChatOpenAI, open_llm).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from assistant.llm.settings import LLMSettings

if TYPE_CHECKING:
    from assistant.llm.client import LLM, DroppedCall, LLMClient, ToolCall, ToolReply, open_llm, resolve_model
    from assistant.llm.embedded import DEFAULT_ALIAS, EmbeddedServer
    from assistant.llm.model import MODEL_SHA256, MODEL_SIZE, ModelFile, assemble, default_model_path, ensure_model

# Imported on first use (PEP 562): the client pulls in LangChain and the OpenAI SDK (1.5-3 s), which
# ``--no-llm`` commands, ``LLMSettings`` readers and the model server process never need.
_LAZY = {
    **dict.fromkeys(
        ("LLM", "DroppedCall", "LLMClient", "ToolCall", "ToolReply", "open_llm", "resolve_model"), "client"
    ),
    **dict.fromkeys(("DEFAULT_ALIAS", "EmbeddedServer"), "embedded"),
    **dict.fromkeys(
        ("MODEL_SHA256", "MODEL_SIZE", "ModelFile", "assemble", "default_model_path", "ensure_model"), "model"
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'assistant.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"assistant.llm.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ALIAS",
    "LLM",
    "MODEL_SHA256",
    "MODEL_SIZE",
    "DroppedCall",
    "EmbeddedServer",
    "LLMClient",
    "LLMSettings",
    "ModelFile",
    "ToolCall",
    "ToolReply",
    "assemble",
    "default_model_path",
    "ensure_model",
    "open_llm",
    "resolve_model",
]

"""LLM settings: explicit arguments first, environment variables as fallback, defaults last.

| field       | env var                    | default                                   |
|-------------|----------------------------|-------------------------------------------|
| base_url    | SHOPASSIST_LLM_BASE_URL    | (none: start the embedded llama.cpp server) |
| model       | SHOPASSIST_LLM_MODEL       | embedded alias, or the server's first model |
| api_key     | SHOPASSIST_LLM_API_KEY     | "not-needed" (local servers ignore it)    |
| gguf        | SHOPASSIST_LLM_GGUF        | (the packaged Qwen2.5-Coder-1.5B GGUF)     |
| gguf_sha256 | -                          | (no check of a user-given GGUF)           |
| threads     | SHOPASSIST_THREADS         | 2                                         |
| ctx         | -                          | 4096                                      |
| timeout     | -                          | 120 s                                     |

Kept apart from ``shopassist.config.Settings`` on purpose: the LLM path is one package that
others import, and its knobs change with the backend, not with the catalog.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from shopassist.errors import UsageError

ENV = {
    "base_url": "SHOPASSIST_LLM_BASE_URL",
    "model": "SHOPASSIST_LLM_MODEL",
    "api_key": "SHOPASSIST_LLM_API_KEY",
    "gguf": "SHOPASSIST_LLM_GGUF",
    "threads": "SHOPASSIST_THREADS",
}


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


@dataclass(frozen=True)
class LLMSettings:
    """Where the LLM lives and how to reach it. ``base_url=None`` means the embedded server."""

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    gguf: str | None = None
    gguf_sha256: str | None = None
    threads: int = 2
    ctx: int = 4096
    timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise UsageError(
                f"LLM base URL {self.base_url!r} must start with http:// or https://, "
                "e.g. http://localhost:8000/v1 (flag --llm-base-url or SHOPASSIST_LLM_BASE_URL)."
            )
        if self.base_url and self.gguf:
            raise UsageError(
                "Both an LLM server (--llm-base-url / SHOPASSIST_LLM_BASE_URL) and a local GGUF "
                "(--llm-gguf / SHOPASSIST_LLM_GGUF) are set: the GGUF is only for the embedded server. Drop one."
            )
        if self.threads < 1:
            raise UsageError(f"LLM threads must be at least 1 (got {self.threads}).")
        if self.ctx < 512:
            raise UsageError(f"LLM context must be at least 512 tokens (got {self.ctx}); our prompts need ~2k.")
        if self.timeout <= 0:
            raise UsageError(f"LLM timeout must be positive seconds (got {self.timeout}).")

    @property
    def embedded(self) -> bool:
        return self.base_url is None

    @classmethod
    def from_env(cls, **overrides: Any) -> LLMSettings:
        """Build settings from explicit overrides (None means 'not given') and the environment."""
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise UsageError(
                f"Unknown LLM setting(s): {', '.join(sorted(unknown))}. Known: {', '.join(sorted(known))}."
            )
        values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        # An explicit choice of backend beats the other backend's env var (a flag --llm-base-url
        # with SHOPASSIST_LLM_GGUF in the shell means "use the server"), instead of a conflict error.
        skip = {"gguf"} if "base_url" in values else {"base_url"} if "gguf" in values else set()
        for key, env_name in ENV.items():
            if key in values or key in skip:
                continue
            value = _env(env_name)
            if value is not None:
                values[key] = value
        if "threads" in values:
            try:
                values["threads"] = int(values["threads"])
            except (TypeError, ValueError):
                raise UsageError(
                    f"threads must be an integer (got {values['threads']!r}; SHOPASSIST_THREADS)."
                ) from None
        if isinstance(values.get("base_url"), str):
            values["base_url"] = values["base_url"].rstrip("/")
        return cls(**values)

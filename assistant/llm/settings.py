"""LLM settings: explicit arguments first, environment variables as fallback, defaults last.

| field        | env var                      | default                                        |
|--------------|------------------------------|------------------------------------------------|
| base_url     | SHOPASSIST_LLM_BASE_URL      | (none: the embedded llama.cpp server)          |
| model        | SHOPASSIST_LLM_MODEL         | embedded alias, or the server's first model    |
| api_key      | SHOPASSIST_LLM_API_KEY       | "not-needed" (local servers ignore it)         |
| gguf         | SHOPASSIST_LLM_GGUF          | (the packaged Qwen2.5-Coder-1.5B GGUF)          |
| gguf_sha256  | -                            | (no check of a user-given GGUF)                |
| threads      | SHOPASSIST_LLM_THREADS       | cores - 1, 1 to 4 (``default_threads``: measured) |
| idle_minutes | SHOPASSIST_LLM_IDLE_MINUTES  | 15 via ``from_env`` (the CLI); 0 in ``LLMSettings()`` |
| ctx          | -                            | 4096                                           |
| timeout      | -                            | 120 s                                          |

``idle_minutes > 0``: the embedded model runs in a shared background server per home
(``assistant.llm.daemon``) that later processes reuse and that stops itself after that many
minutes with no process attached; ``0``: the model loads inside this process and stops with it.
Built directly, ``LLMSettings()`` keeps the in-process server (a library user or a test gets no
background process it did not ask for); ``from_env`` (every CLI command) shares.

Kept apart from ``shopassist.config.Settings`` on purpose: the LLM path is one package that
others import, and its knobs change with the backend, not with the catalog.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

from shopassist.errors import UsageError

ENV = {
    "base_url": "SHOPASSIST_LLM_BASE_URL",
    "model": "SHOPASSIST_LLM_MODEL",
    "api_key": "SHOPASSIST_LLM_API_KEY",
    "gguf": "SHOPASSIST_LLM_GGUF",
    "threads": "SHOPASSIST_LLM_THREADS",
    "idle_minutes": "SHOPASSIST_LLM_IDLE_MINUTES",
}


def default_threads() -> int:
    """llama.cpp threads for the embedded model: one core left free for everything else, at most 4.

    Measured on the 2-core box this project is developed on (benchmarks/results/llm-threads-*.json,
    benchmarks/bench_llm_threads.py): 1 thread generated 10.5-14.8 tok/s in every run; 2 threads
    17-20 tok/s while the other core happened to be free, but 3.5 tok/s as soon as another process
    wanted it (llama.cpp's threads wait for each other at every step). The app itself (embedder,
    retrieval, the UI) needs a core too, so on 2 cores the default is 1; beyond 4 threads a 1.5B
    model gains little. Override with --llm-threads / SHOPASSIST_LLM_THREADS.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores - 1))


# How long the shared model server waits with no process attached before it stops (from_env).
DEFAULT_IDLE_MINUTES = 15.0


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
    threads: int = field(default_factory=default_threads)
    ctx: int = 4096
    timeout: float = 120.0
    idle_minutes: float = 0.0

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
        if not 0 <= self.idle_minutes <= 7 * 24 * 60:
            raise UsageError(
                f"LLM idle minutes must be between 0 (no shared server) and 10080 (got {self.idle_minutes}; "
                "SHOPASSIST_LLM_IDLE_MINUTES)."
            )

    @property
    def shared(self) -> bool:
        """The embedded model runs in a shared background server (see ``assistant.llm.daemon``)."""
        return self.embedded and self.idle_minutes > 0

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
        values.setdefault("idle_minutes", DEFAULT_IDLE_MINUTES)
        if "threads" in values:
            try:
                values["threads"] = int(values["threads"])
            except (TypeError, ValueError):
                raise UsageError(
                    f"LLM threads must be an integer (got {values['threads']!r}; --llm-threads / SHOPASSIST_LLM_THREADS)."
                ) from None
        try:
            values["idle_minutes"] = float(values["idle_minutes"])
        except (TypeError, ValueError):
            raise UsageError(
                f"LLM idle minutes must be a number (got {values['idle_minutes']!r}; SHOPASSIST_LLM_IDLE_MINUTES)."
            ) from None
        if isinstance(values.get("base_url"), str):
            values["base_url"] = values["base_url"].rstrip("/")
        return cls(**values)

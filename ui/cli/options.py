"""Options every command shares: ``--home`` and the backends (``settings``), the ``--llm-*`` flags
(``llm_settings``), and the stack / LLM a command opens from them."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from assistant.stack import Stack, build_stack
from shopassist.config import EMBEDDER_BACKENDS, Settings
from shopassist.errors import ShopAssistError, UsageError

EMPTY_CATALOG = "The catalog under {home} is empty: run `shopassist demo` once or `shopassist catalog ingest FILE`."


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--home and backend options on every command; they build ``settings``."""

    @click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data folder for the catalog and indexes [env SHOPASSIST_HOME; default ~/.shopassist].",
    )
    @click.option(
        "--chroma-host",
        default=None,
        help="Use a Chroma server at this host instead of embedded Chroma [env SHOPASSIST_CHROMA_HOST].",
    )
    @click.option(
        "--chroma-port", type=int, default=None, help="Chroma server port [env SHOPASSIST_CHROMA_PORT; default 8000]."
    )
    @click.option(
        "--embedder",
        type=click.Choice(EMBEDDER_BACKENDS),
        default=None,
        help="Embedding backend [env SHOPASSIST_EMBEDDER; default: the one the catalog was built or upgraded with, use for a new catalog].",
    )
    @click.option("--embedder-path", default=None, help="Local model folder for --embedder transformers.")
    @click.option(
        "--embedder-url",
        default=None,
        help="OpenAI-compatible base URL for --embedder openai, e.g. http://127.0.0.1:8000/v1.",
    )
    @click.option("--embedder-model", default=None, help="Model name for --embedder openai.")
    @click.option(
        "--retention-days",
        type=click.IntRange(0, 36500),
        default=None,
        help="Delete sessions and events older than this many days; 0 keeps them until deleted "
        "[env SHOPASSIST_RETENTION_DAYS; default 30].",
    )
    @click.option(
        "--redis-url",
        default=None,
        help="Keep events and session state in Redis, e.g. redis://127.0.0.1:6379/0 [env SHOPASSIST_REDIS_URL; "
        "default: SQLite and JSON files under HOME].",
    )
    @click.option(
        "--database-url",
        default=None,
        help="Keep the catalog in PostgreSQL, e.g. postgresql://shop@127.0.0.1/shop [env SHOPASSIST_DATABASE_URL; "
        "default: SQLite under HOME].",
    )
    @functools.wraps(fn)
    def wrapper(home, chroma_host, chroma_port, embedder, embedder_path, embedder_url, embedder_model, **kwargs):  # type: ignore[no-untyped-def]
        retention_days = kwargs.pop("retention_days")
        redis_url = kwargs.pop("redis_url")
        database_url = kwargs.pop("database_url")
        try:
            settings = Settings.from_env(
                home=home,
                chroma_host=chroma_host,
                chroma_port=chroma_port,
                embedder=embedder,
                embedder_path=embedder_path,
                embedder_url=embedder_url,
                embedder_model=embedder_model,
                retention_days=retention_days,
                redis_url=redis_url,
                database_url=database_url,
            )
            return fn(settings=settings, **kwargs)
        except UsageError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except ShopAssistError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def llm_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--llm-* flags; they build ``llm_settings`` (None with --no-llm)."""

    @click.option(
        "--llm-base-url",
        default=None,
        help="OpenAI-compatible server (vLLM, llama.cpp ...), e.g. http://127.0.0.1:8000/v1 [env SHOPASSIST_LLM_BASE_URL; default: the embedded model].",
    )
    @click.option(
        "--llm-model",
        default=None,
        help="Model name on that server [env SHOPASSIST_LLM_MODEL; default: its first model].",
    )
    @click.option("--llm-api-key", default=None, help="Bearer key for that server [env SHOPASSIST_LLM_API_KEY].")
    @click.option(
        "--llm-gguf",
        default=None,
        type=click.Path(dir_okay=False),
        help="Another local GGUF for the embedded server [env SHOPASSIST_LLM_GGUF].",
    )
    @click.option(
        "--llm-threads",
        type=click.IntRange(1, 256),
        default=None,
        help="CPU threads for the embedded model [env SHOPASSIST_LLM_THREADS; default: cores - 1, 1 to 4].",
    )
    @click.option("--no-llm", is_flag=True, help="Rules and templates only (no model).")
    @functools.wraps(fn)
    def wrapper(llm_base_url, llm_model, llm_api_key, llm_gguf, llm_threads, no_llm, **kwargs):  # type: ignore[no-untyped-def]
        from assistant.llm import LLMSettings

        llm_settings = (
            None
            if no_llm
            else LLMSettings.from_env(
                base_url=llm_base_url, model=llm_model, api_key=llm_api_key, gguf=llm_gguf, threads=llm_threads
            )
        )
        return fn(llm_settings=llm_settings, **kwargs)

    return wrapper


@contextlib.contextmanager
def llm_client(llm_settings: Any, settings: Settings) -> Iterator[Any]:
    """The configured LLM alone, for one command (None with --no-llm): the shared model server
    (started if needed, detached after) or an in-process one that stops after."""
    with build_stack(settings, llm=llm_settings, progress=True) as stack:
        yield stack.llm


def require_products(stack: Stack, message: str = EMPTY_CATALOG) -> None:
    """A usage error (exit 2) when the catalog under HOME is empty."""
    if len(stack.catalog) == 0:
        raise UsageError(message.format(home=stack.settings.home))

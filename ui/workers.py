"""``shopassist serve --workers N``: N API worker processes over one home.

Every worker builds its own stack (catalog mirror, ranker, agent) over the same home and they
share what the home holds: the SQLite catalog (a write by one is in every worker's next search:
each search refreshes from the change sequence), the SQLite event log (an event accepted by one
reaches the others' rankings: session profiles read the log on every use, the shared knowledge
catches up at least every 0.5 s), the session files (a turn holds its session's lock across
processes, a file lock in ``HOME/.locks/sessions``), the model server (one per home) and Chroma.
uvicorn's supervisor starts the workers, shares the listening socket and restarts a worker that
dies. Per-client rate limits and the LLM-slot semaphore are per worker: N workers allow N times
either (size ``SHOPASSIST_LLM_SLOTS`` accordingly).

Workers on other machines (each with its own home) serve as one when they share
``SHOPASSIST_REDIS_URL`` (events, conversations, and the turn lock, then a renewed Redis lease),
``SHOPASSIST_DATABASE_URL`` (the catalog), ``SHOPASSIST_PSEUDONYM_SECRET`` and
``SHOPASSIST_API_SECRET`` (tests/test_multihost.py).

The parent passes the settings to the workers in a 0600 file under the home, named by the
environment variable ``SHOPASSIST_SERVE_CONFIG``; the file goes when the parent exits.
"""

from __future__ import annotations

import atexit
import os
import pickle
from pathlib import Path
from typing import Any

CONFIG_ENV = "SHOPASSIST_SERVE_CONFIG"
_stacks: list[Any] = []  # the worker's stack lives as long as the worker


def write_config(home: Path, settings: Any, llm_settings: Any, api_key: str | None, rate: int) -> Path:
    path = Path(home) / f".serve-{os.getpid()}.pickle"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        pickle.dump({"settings": settings, "llm": llm_settings, "api_key": api_key, "rate": rate}, handle)
    atexit.register(lambda: path.unlink(missing_ok=True))
    return path


def app_factory() -> Any:
    """The app of one worker (uvicorn ``factory=True``)."""
    from assistant.stack import build_stack
    from ui.api import create_app

    with open(os.environ[CONFIG_ENV], "rb") as handle:
        config = pickle.load(handle)
    stack = build_stack(config["settings"], llm=config["llm"])
    _stacks.append(stack)
    atexit.register(stack.close)
    agent = stack.agent
    stack.warm_up()  # the first requests should not load models and indexes
    return create_app(stack.catalog, agent, stack.ranker, api_key=config["api_key"], rate_per_minute=config["rate"])

"""Settings: explicit arguments first, environment variables as fallback, sensible defaults last.

| setting            | env var                       | default                  |
|--------------------|-------------------------------|--------------------------|
| home               | SHOPASSIST_HOME               | ~/.shopassist            |
| chroma_host        | SHOPASSIST_CHROMA_HOST        | (embedded Chroma)        |
| chroma_port        | SHOPASSIST_CHROMA_PORT        | 8000                     |
| collection         | SHOPASSIST_CHROMA_COLLECTION  | products                 |
| embedder           | SHOPASSIST_EMBEDDER           | (the catalog's; use)     |
| embedder_path      | SHOPASSIST_EMBEDDER_PATH      | (transformers backend)   |
| embedder_url       | SHOPASSIST_EMBEDDER_URL       | (openai backend)         |
| embedder_model     | SHOPASSIST_EMBEDDER_MODEL     | (openai backend)         |
| embedder_api_key   | SHOPASSIST_EMBEDDER_API_KEY   | (openai backend)         |
| threads            | SHOPASSIST_THREADS            | 2                        |
| retention_days     | SHOPASSIST_RETENTION_DAYS     | 30 (0: keep forever)     |
| api_secret         | SHOPASSIST_API_SECRET         | (HOME/api_secret)        |
| allowed_hosts      | SHOPASSIST_ALLOWED_HOSTS      | (localhost names only)   |
| trusted_proxies    | SHOPASSIST_TRUSTED_PROXIES    | (none)                   |
| redis_url          | SHOPASSIST_REDIS_URL          | (embedded: SQLite/JSON)  |
| database_url       | SHOPASSIST_DATABASE_URL       | (embedded: SQLite)       |

``api_secret`` signs the API's session tokens; ``allowed_hosts`` (comma-separated names, ``*`` for
any) are ``Host`` headers the API accepts besides localhost; ``trusted_proxies`` (comma-separated
addresses or CIDR networks) are the proxies whose ``X-Forwarded-For`` the API believes.

Data and indexes live under ``home``; nothing is ever written inside the installed package.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shopassist.errors import UsageError, folder_error

EMBEDDER_BACKENDS = ("use", "transformers", "openai", "gemma")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path("~/.shopassist").expanduser())
    chroma_host: str | None = None
    chroma_port: int = 8000
    collection: str = "products"
    # None: the embedder the catalog was built or upgraded with (``use`` for a new catalog)
    embedder: str | None = None
    embedder_path: str | None = None
    embedder_url: str | None = None
    embedder_model: str | None = None
    embedder_api_key: str | None = None
    threads: int = 2
    retention_days: int = 30  # sessions and events older than this are deleted (0: kept until deleted)
    api_secret: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    # the learned ranker (retrieval/ltr.py): a model path, "off", or None for HOME/models/ranker.txt
    # when `shopassist train ranker` has written one there
    ranker_model: str | None = None
    # the production shape: events and session state in Redis, the catalog in PostgreSQL; None
    # keeps the embedded SQLite files and JSON session files under ``home``
    redis_url: str | None = None
    database_url: str | None = None

    def __post_init__(self) -> None:
        if self.embedder is not None and self.embedder not in EMBEDDER_BACKENDS:
            raise UsageError(
                f"Unknown embedder {self.embedder!r}: choose one of {', '.join(EMBEDDER_BACKENDS)} "
                "(flag --embedder or SHOPASSIST_EMBEDDER)."
            )
        if not (0 < self.chroma_port < 65536):
            raise UsageError(f"Chroma port must be 1-65535 (got {self.chroma_port}).")
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]", self.collection):
            raise UsageError(
                f"Chroma collection name {self.collection!r} must be 3-512 letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit."
            )
        if self.threads < 1:
            raise UsageError(f"threads must be at least 1 (got {self.threads}).")
        if not (0 <= self.retention_days <= 36500):
            raise UsageError(
                f"retention days must be 0-36500 (got {self.retention_days}); 0 keeps sessions and events "
                "until deleted (--retention-days or SHOPASSIST_RETENTION_DAYS)."
            )
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise UsageError(
                f"Redis URL must start with redis://, rediss:// or unix:// (got {self.redis_url!r}); "
                "e.g. redis://127.0.0.1:6379/0 (--redis-url or SHOPASSIST_REDIS_URL)."
            )
        if self.database_url is not None and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise UsageError(
                f"Database URL must start with postgresql:// (got {self.database_url!r}); e.g. "
                "postgresql://shop@127.0.0.1:5432/shop (--database-url or SHOPASSIST_DATABASE_URL)."
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise UsageError(
                    f"trusted proxy {proxy!r} is not an IP address or network, e.g. 10.0.0.1 or 10.0.0.0/8 "
                    "(SHOPASSIST_TRUSTED_PROXIES)."
                ) from None

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Build settings from explicit overrides (None means 'not given') and the environment."""
        values: dict[str, Any] = {}
        home = overrides.get("home") or _env("SHOPASSIST_HOME")
        if home:
            values["home"] = Path(home).expanduser()
        env_map = {
            "chroma_host": "SHOPASSIST_CHROMA_HOST",
            "chroma_port": "SHOPASSIST_CHROMA_PORT",
            "collection": "SHOPASSIST_CHROMA_COLLECTION",
            "embedder": "SHOPASSIST_EMBEDDER",
            "embedder_path": "SHOPASSIST_EMBEDDER_PATH",
            "embedder_url": "SHOPASSIST_EMBEDDER_URL",
            "embedder_model": "SHOPASSIST_EMBEDDER_MODEL",
            "embedder_api_key": "SHOPASSIST_EMBEDDER_API_KEY",
            "threads": "SHOPASSIST_THREADS",
            "retention_days": "SHOPASSIST_RETENTION_DAYS",
            "api_secret": "SHOPASSIST_API_SECRET",
            "allowed_hosts": "SHOPASSIST_ALLOWED_HOSTS",
            "trusted_proxies": "SHOPASSIST_TRUSTED_PROXIES",
            "ranker_model": "SHOPASSIST_RANKER_MODEL",
            "redis_url": "SHOPASSIST_REDIS_URL",
            "database_url": "SHOPASSIST_DATABASE_URL",
        }
        for key, env_name in env_map.items():
            value = overrides.get(key)
            if value is None:
                value = _env(env_name)
            if value is None:
                continue
            if key in ("chroma_port", "threads", "retention_days"):
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    raise UsageError(f"{env_name} must be an integer (got {value!r}).") from None
            if key in ("allowed_hosts", "trusted_proxies") and isinstance(value, str):
                value = tuple(v.strip() for v in value.split(",") if v.strip())
            values[key] = value
        return cls(**values)

    def learned_ranker(self) -> Path | None:
        """The learned ranker model this home uses: SHOPASSIST_RANKER_MODEL's file, none when it
        is "off", else HOME/models/ranker.txt if `shopassist train ranker` wrote one."""
        if self.ranker_model is not None:
            if self.ranker_model.strip().lower() in ("off", "none", "0", "false"):
                return None
            return Path(self.ranker_model).expanduser()
        default = self.home / "models" / "ranker.txt"
        return default if default.exists() else None

    @property
    def embedder_backend(self) -> str:
        """The embedder backend these settings name (``use`` when none is named)."""
        return self.embedder or "use"

    def with_home(self, home: Path | str) -> Settings:
        return replace(self, home=Path(home).expanduser())

    # -- paths under home ------------------------------------------------------------------
    @property
    def catalog_db(self) -> Path:
        return self.home / "catalog.sqlite"

    @property
    def chroma_dir(self) -> Path:
        return self.home / "chroma"

    @property
    def rejects_dir(self) -> Path:
        return self.home / "rejects"

    def ensure_home(self) -> Path:
        try:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)  # a new home is the owner's alone
        except OSError as exc:
            raise folder_error(self.home, exc) from exc
        return self.home

"""The composition root: the one place that builds the application's pieces from ``Settings``.

    with build_stack(settings, llm=LLMSettings.from_env()) as stack:
        stack.agent.ask("s1", "running shoes under 300")

    with build_stack(settings) as stack:           # no LLM: rules and templates only
        stack.retriever.search("牛仔裤", top_k=10)  # builds the catalog and retriever, nothing else

Every piece is built on first use (a catalog command never opens the event log, ``event`` never
loads the catalog, and the LLM server starts when the agent or ``stack.llm`` is first needed), at
most once, and everything the stack opened is closed by ``close()`` / leaving the ``with``:
the LLM it started (never one passed in), the event log, the catalog.

Under ``settings.home``:

| piece       | what                                   | where                               |
|-------------|----------------------------------------|-------------------------------------|
| ``catalog`` | ``retrieval.Catalog``                  | HOME/catalog.sqlite, HOME/chroma    |
| ``retriever`` | ``retrieval.HybridRetriever``        | (over the catalog)                  |
| ``events``  | ``ranking.events.SQLiteEventLog``      | HOME/events.sqlite                  |
| ``ranker``  | ``ranking.ranker.Ranker`` over ``events`` | (replays the log when built)     |
| ``sessions``| ``assistant.state.SessionStore``       | HOME/sessions                       |
| ``pseudonyms`` | ``shopassist.privacy.Pseudonyms``   | HOME/secret.key                     |
| ``llm``     | ``assistant.llm.open_llm`` or the client passed in | (None without one)      |
| ``agent``   | ``assistant.agent.ShoppingAgent``      | (catalog, sessions, llm, ranker)    |

Nothing else in the project constructs these (tests may); the CLI, chat UI, HTTP API, evals and
benchmarks all get them from here.

Shared state: with ``settings.redis_url`` (``SHOPASSIST_REDIS_URL``), ``events`` is a
``ranking.redis_events.RedisEventLog`` and ``sessions`` an ``assistant.redis_state.RedisSessionStore``
on that Redis, so every process (and host) pointed at it shares events and conversations; the
files under HOME are then not used for either. An explicit ``events_path`` / ``sessions_dir``
(the benchmarks' fresh ones, an eval's ``fork`` per dialogue) still gets the embedded backend:
those callers ask for a private, throwaway store. Processes sharing a Redis must share
one pseudonym secret too (SHOPASSIST_PSEUDONYM_SECRET, or the same HOME/secret.key), or each names
a session by a different pseudonym.

Privacy: the session store and the event log name every session by its pseudonym (a keyed hash
under HOME/secret.key) and delete what is older than ``settings.retention_days`` (when they open,
then at most once an hour); ``forget`` / ``forget_session`` delete one shopper's session, events
and in-memory profile; ``privacy_status`` says what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from shopassist.config import Settings
from shopassist.privacy import Pseudonyms, Retention, secret_source

if TYPE_CHECKING:
    from assistant.agent import ShoppingAgent
    from assistant.facets import FacetIndex
    from assistant.llm import LLM, LLMSettings
    from assistant.state import SessionStore
    from ranking.events import SQLiteEventLog
    from ranking.ranker import Ranker
    from ranking.redis_events import RedisEventLog
    from ranking.session import SessionTracker
    from retrieval import Catalog, Embedder, HybridConfig, HybridRetriever, IngestReport

EVENTS_FILE = "events.sqlite"
SESSIONS_DIR = "sessions"


class Stack:
    """The pieces over one home, each built on first use; see the module docstring.

    ``llm``: ``LLMSettings`` (the stack opens that LLM when first needed and closes it), an open
    client such as a test double (used, never closed), or None (no LLM). ``embedder``: share one
    embedder between stacks (the dialogue suite builds a stack per dialogue). ``retrieval``: the
    retriever's ``HybridConfig``. ``rank=False``: the agent ranks by retrieval alone (no ranker,
    no event log). ``sessions_dir`` / ``events_path`` replace HOME/sessions and HOME/events.sqlite
    (the benchmarks use fresh ones).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        llm: LLMSettings | LLM | None = None,
        embedder: Embedder | None = None,
        retrieval: HybridConfig | None = None,
        rank: bool = True,
        sessions_dir: Path | None = None,
        events_path: Path | None = None,
        shared: dict[str, Any] | None = None,
        progress: bool = False,
    ) -> None:
        self.settings = settings
        self.progress = progress  # say on stderr what slow first-run steps (model assembly, start) do
        self.ingest_report: IngestReport | None = None
        self._llm = llm
        self._embedder = embedder
        self._retrieval = retrieval
        self._rank = rank
        self._sessions_dir = sessions_dir or settings.home / SESSIONS_DIR
        self._events_path = events_path or settings.home / EVENTS_FILE
        # Redis for what is shared (see the module docstring); an explicit path keeps its file
        self._redis_events = settings.redis_url if events_path is None else None
        self._redis_sessions = settings.redis_url if sessions_dir is None else None
        self._owned_llm: Any = None
        # pieces another stack built and owns (``fork``): used as they are, never closed here
        self._borrowed: set[str] = set(shared or {})
        self.__dict__.update(shared or {})

    # -- the pieces ------------------------------------------------------------------------------
    @cached_property
    def catalog(self) -> Catalog:
        from retrieval import Catalog

        return Catalog(self.settings, embedder=self._embedder)

    @cached_property
    def retriever(self) -> HybridRetriever:
        from retrieval import HybridRetriever

        model = self.settings.learned_ranker()
        # without a fixed configuration the retriever follows the catalog's embedder (an upgrade
        # switches its fusion weights too); a missing or bad model file: the fusion, with a warning
        return HybridRetriever(self.catalog, self._retrieval, learned_model=None if model is None else str(model))

    @cached_property
    def events(self) -> SQLiteEventLog | RedisEventLog:
        if self._redis_events is not None:
            from ranking.redis_events import RedisEventLog

            return RedisEventLog(self._redis_events, pseudonyms=self.pseudonyms, retention=self._retention())
        from ranking.events import SQLiteEventLog

        return SQLiteEventLog(self._events_path, pseudonyms=self.pseudonyms, retention=self._retention())

    @cached_property
    def ranker(self) -> Ranker | None:
        """The behaviour ranker over ``events`` (None with ``rank=False``)."""
        if not self._rank:
            return None
        from ranking.ranker import Ranker

        return Ranker(self.catalog, self.events)

    @cached_property
    def sessions(self) -> SessionStore:
        if self._redis_sessions is not None:
            from assistant.redis_state import RedisSessionStore

            return RedisSessionStore(self._redis_sessions, pseudonyms=self.pseudonyms, retention=self._retention())
        from assistant.state import SessionStore

        return SessionStore(self._sessions_dir, pseudonyms=self.pseudonyms, retention=self._retention())

    @cached_property
    def pseudonyms(self) -> Pseudonyms:
        """Raw session id -> pseudonym, keyed by HOME/secret.key (created 0600 on first use)."""
        return Pseudonyms.for_home(self.settings.home)

    def _retention(self) -> Retention:
        return Retention(days=self.settings.retention_days or None)

    @cached_property
    def llm(self) -> LLM | None:
        """The LLM client (None without one); the embedded server starts here when configured."""
        if self._llm is None:
            return None
        from assistant.llm import LLMSettings, open_llm

        if not isinstance(self._llm, LLMSettings):
            return self._llm
        client = open_llm(self._llm, self.settings.home, progress=self.progress)
        self._owned_llm = client
        return client

    @cached_property
    def facets(self) -> FacetIndex:
        """The catalog's facet vocabulary (categories, brands, attribute values), built once."""
        from assistant.facets import FacetIndex

        catalog = self.catalog
        return FacetIndex.cached(self.settings.home, catalog.catalog_fingerprint(), catalog.products)

    @cached_property
    def agent(self) -> ShoppingAgent:
        from assistant.agent import ShoppingAgent

        return ShoppingAgent(
            self.catalog,
            self.sessions,
            llm=self.llm,
            ranker=self.ranker,
            retriever=self.retriever,
            facets=self.facets,
        )

    def fork(self, *, sessions_dir: Path, events_path: Path, llm: LLMSettings | LLM | None = None) -> Stack:
        """A stack over this one's catalog, retriever and facet index (shared, never closed by
        the fork) with its own session store, event log, ranker, LLM and agent: what an eval
        gives each dialogue, so nothing one conversation does reaches the next."""
        other = Stack(
            self.settings,
            llm=llm,
            embedder=self._embedder,
            retrieval=self._retrieval,
            rank=self._rank,
            sessions_dir=sessions_dir,
            events_path=events_path,
            shared={name: getattr(self, name) for name in ("catalog", "retriever", "facets")},
        )
        return other

    def warm_up(self) -> None:
        """Load, before the first shopper arrives, what the first requests would otherwise load
        while they wait: the embedding model and the ANN index, jieba and the stemmer (a search in
        each language), and the rules path of a turn (on a throwaway fork: nothing is stored, no
        LLM is called). Measured under the load test, the first searches of 50 sessions starting
        at once waited up to 1.2 s without it."""
        import tempfile

        catalog = self.catalog
        catalog.embedder.embed_query("warm up")
        _ = catalog.vectors
        for query in ("连衣裙 夏季", "running shoes"):
            self.retriever.search(query, top_k=10)
        _ = self.agent  # the facet index, the ranker
        with tempfile.TemporaryDirectory(prefix="shopassist-warm-") as tmp:
            fork = self.fork(sessions_dir=Path(tmp) / "sessions", events_path=Path(tmp) / "events.sqlite")
            try:
                for _event in fork.agent.turn("warm-up", "牛仔裤女 便宜点的"):
                    pass
            finally:
                fork.close()

    # -- operations ------------------------------------------------------------------------------
    def forget(self, session_id: str) -> Forgotten:
        """Delete one shopper's session file, events and (if this stack built them) in-memory
        profile; ``session_id`` is the id the client used or its pseudonym."""
        built = self.__dict__
        ranker = built.get("ranker")
        agent = built.get("agent")
        return forget_session(
            session_id,
            sessions=self.sessions,
            ranker=ranker,
            events=None if ranker is not None else self.events,
            behaviour=agent.behaviour if agent is not None else None,
        )

    def privacy_status(self) -> dict[str, Any]:
        """What is stored about shoppers under this home, and for how long."""
        sessions = self.sessions.stats()
        events = self.events.stats()
        return {
            "home": str(self.settings.home),
            "retention_days": self.settings.retention_days or None,
            "sessions_dir": self._where(self._redis_sessions, self._sessions_dir),
            "sessions": sessions["sessions"],
            "oldest_session_update": sessions["oldest_update"],
            "events_file": self._where(self._redis_events, self._events_path),
            "events": events["events"],
            "event_sessions": events["sessions"],
            "oldest_event": events["oldest_event"],
            "secret_file": secret_source(self.settings.home),  # $SHOPASSIST_PSEUDONYM_SECRET or HOME/secret.key
        }

    @staticmethod
    def _where(redis_url: str | None, path: Path) -> str:
        """Where a store lives, for ``privacy_status``: its file or folder, or its Redis (no password)."""
        if redis_url is None:
            return str(path)
        from ranking.redis_events import redacted

        return redacted(redis_url)

    def ingest(self, path: Path, **options: Any) -> IngestReport:
        """Upsert a catalog file (only new or changed rows are embedded); options go to ``ingest_file``."""
        from retrieval import ingest_file

        self.ingest_report = ingest_file(self.catalog, path, **options)
        return self.ingest_report

    def close(self) -> None:
        """Close what this stack opened: the LLM it started, the event log, the session store's
        connections (Redis), the catalog."""
        built = self.__dict__
        try:
            if self._owned_llm is not None:
                self._owned_llm.close()
                self._owned_llm = None
        finally:
            if "events" in built:
                built.pop("events").close()
            if "sessions" in built and self._redis_sessions is not None:
                built.pop("sessions").close()
            catalog = None if "catalog" in self._borrowed else built.get("catalog")
            if catalog is not None and callable(getattr(catalog, "close", None)):
                built.pop("catalog").close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Forgotten:
    """What ``forget_session`` deleted: the session's pseudonym, whether a session file was
    there, how many events left the log, whether an in-memory profile was dropped."""

    session: str
    session_file: bool
    events: int
    profile: bool

    @property
    def anything(self) -> bool:
        return self.session_file or self.events > 0 or self.profile

    def public(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "deleted": {"session_file": self.session_file, "events": self.events, "profile": self.profile},
        }


def forget_session(
    session_id: str,
    *,
    sessions: SessionStore,
    ranker: Ranker | None = None,
    events: SQLiteEventLog | RedisEventLog | None = None,
    behaviour: SessionTracker | None = None,
) -> Forgotten:
    """Delete one shopper everywhere they live: the session file (``sessions``), their events
    (the ranker's log, or ``events`` without a ranker) and their in-memory profile (the ranker's,
    or the agent's ``behaviour`` tracker without one); the ranker's shared knowledge is rebuilt
    without them. ``session_id`` is the raw id or its pseudonym (an invalid one is a UsageError)."""
    key = sessions.key(session_id)
    ids = list(dict.fromkeys([session_id, key]))
    had_file = sessions.delete(session_id)
    deleted, had_profile = ranker.forget_session(*ids) if ranker is not None else (0, False)
    if events is not None:
        deleted += events.delete_sessions(ids)
    if behaviour is not None and (ranker is None or behaviour is not ranker.sessions):
        had_profile = any([behaviour.forget(sid) for sid in ids]) or had_profile
    return Forgotten(key, had_file, deleted, had_profile)


def build_stack(
    settings: Settings,
    *,
    llm: LLMSettings | LLM | None = None,
    catalog_file: Path | None = None,
    progress: bool = False,
    embedder: Embedder | None = None,
    retrieval: HybridConfig | None = None,
    rank: bool = True,
    sessions_dir: Path | None = None,
    events_path: Path | None = None,
) -> Stack:
    """The stack over ``settings.home`` (see ``Stack``); with ``catalog_file``, that file is
    ingested first (only new or changed rows are embedded; ``progress`` shows a bar) and its
    report is ``stack.ingest_report``. ``progress`` also makes the LLM's first-run steps (model
    assembly, the server's start) say on stderr what they do and how long they take."""
    stack = Stack(
        settings,
        llm=llm,
        embedder=embedder,
        retrieval=retrieval,
        rank=rank,
        sessions_dir=sessions_dir,
        events_path=events_path,
        progress=progress,
    )
    if catalog_file is not None:
        try:
            stack.ingest(Path(catalog_file), progress=progress)
        except BaseException:
            stack.close()
            raise
    return stack

"""Conversation state: the constraints that persist across turns, and how a new message edits
them. Persisted as one JSON file per session under ``HOME/sessions`` (atomic writes, 0600, named
by the session's pseudonym, deleted after the retention period: ``SessionStore``), so
``shopassist ask --session ID`` continues where the last call stopped.

How a parsed message edits the constraints (``apply``):

* ``new``: start over from the message's constraints.
* ``refine``: keep everything, add the message's required/excluded values, and let any price
  bound, brand list or category it names override the old one. A value both required and
  excluded goes to whichever the newest message said.
* ``replace``: like refine, but a required value first removes the required values of the same
  facet group (换成男款: 男 replaces 女; "red instead": red replaces black), and named brands
  replace the brand list.
* ``price_change``: "cheaper" caps the price below the median price of what was shown last
  (in its currency); "pricier" puts the floor above it.
* ``compare`` / ``pick``: constraints stay; the referenced shown products are the answer.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assistant.facets.vocabulary import audience_class
from assistant.gifts import GIFT_WORDS
from assistant.intent import KEEPS_NEED, Need, PriceChange, Relation, ShoppingIntent
from retrieval.tokenize import EN_STOPWORDS
from shopassist.errors import UsageError
from shopassist.models import Sort
from shopassist.privacy import Retention, is_pseudonym, private_dir, purge_files, tighten, write_private

_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")

GroupOf = Callable[[str], str | None]


class ShownProduct(BaseModel):
    id: str
    title: str
    price: float | None = None
    currency: str | None = None
    brand: str | None = None


class TurnRecord(BaseModel):
    user: str
    intent: dict = Field(default_factory=dict)
    shown: list[str] = Field(default_factory=list)
    reply: str = ""
    at: float = Field(default_factory=time.time)


class SessionState(BaseModel):
    session_id: str
    constraints: Need = Field(default_factory=Need)
    shown: list[ShownProduct] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)  # every product shown for the current need ("more" skips them)
    focus: int | None = None  # the 1-based position the shopper last asked about or picked
    turns: list[TurnRecord] = Field(default_factory=list)

    @property
    def shown_brands(self) -> list[str]:
        return list(dict.fromkeys(s.brand for s in self.shown if s.brand))

    def shown_ref(self, position: int) -> ShownProduct | None:
        """1-based position in the last shown list."""
        if 1 <= position <= len(self.shown):
            return self.shown[position - 1]
        return None


def _norm(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        v = v.strip()
        if v and v.casefold() not in {o.casefold() for o in out}:
            out.append(v)
    return out


def _without(values: list[str], remove: list[str]) -> list[str]:
    gone = {r.casefold() for r in remove}
    return [v for v in values if v.casefold() not in gone]


# English words of conversation, not of products: they never join the search text
_TALK = frozenset(
    [
        "what",
        "if",
        "go",
        "up",
        "same",
        "thing",
        "even",
        "tho",
        "though",
        "ok",
        "okay",
        "hmm",
        "well",
        "then",
        "also",
        "maybe",
        "actually",
        "instead",
        "please",
        "pls",
        "thanks",
        "something",
        "anything",
        "bit",
        "little",
        "lot",
    ]
)


def _is_gift(need: Need) -> bool:
    return bool(need.occasion) or bool(GIFT_WORDS.search(" ".join([need.query, need.category or "", *need.required])))


def _swap_audience(need: Need, value: str) -> None:
    """ "same thing for women" after men's shoes: the other audience's words leave the query and
    the category's audience level becomes the new one (Clothing > Men > Shoes -> ... > Women > ...)."""
    cls = audience_class(value)
    if cls is None:
        return
    words = need.query.split()
    kept = [w for w in words if audience_class(w) in (None, cls)]
    need.query = " ".join(kept)
    if need.category:
        levels = need.category.split(" > ")
        for i, level in enumerate(levels):
            other = audience_class(level)
            if other is not None and other != cls and level.isascii() and value.isascii():
                levels[i] = value.title() if level[:1].isupper() else value
        need.category = " > ".join(levels)


def _names_product(intent: ShoppingIntent) -> bool:
    """The message's query holds words beyond its must-haves and brands ("dog food", not just
    "女士" of 换成女士的): it names a product to swap in."""
    covered = " ".join([*intent.required, *intent.brands]).casefold()
    words = [w for w in intent.query.split() if w.casefold() not in covered and w.casefold() not in _TALK]
    return bool(words)


def reference_price(shown: list[ShownProduct], currency: str | None) -> float | None:
    """The median price of what was shown (same currency as the constraint when it has one)."""
    prices = [s.price for s in shown if s.price is not None and (currency is None or s.currency in (None, currency))]
    return float(statistics.median(prices)) if prices else None


def apply(state: SessionState, intent: ShoppingIntent, group_of: GroupOf | None = None) -> Need:
    """The constraints after this message (the state itself is not modified)."""
    group_of = group_of or (lambda _v: None)
    old = state.constraints
    relation = intent.relation
    if not state.turns and relation in (Relation.refine, Relation.replace):
        relation = Relation.new  # nothing to refine yet
    if relation in KEEPS_NEED:
        new = old.model_copy(deep=True)
        new.language = intent.language
        return new
    if relation == Relation.new:
        new = intent.need()
        for name in ("required", "excluded", "brands", "exclude_brands"):
            setattr(new, name, _norm(getattr(new, name)))
        if state.turns and _is_gift(old) and not new.occasion:
            # "给我妈买个生日礼物 300左右" then "要个保温杯": the gift's recipient and budget stay
            new.occasion = old.occasion
            if new.min_price is None and new.max_price is None:
                new.min_price, new.max_price, new.currency = old.min_price, old.max_price, old.currency
    else:
        new = old.model_copy(deep=True)
        new.language = intent.language
        if intent.category and intent.category != old.category:
            new.category = intent.category
            if intent.query:
                new.query = intent.query
        elif intent.query and relation == Relation.replace and (not old.query or _names_product(intent)):
            # "what about dog food?" after cat food: the product itself is swapped, and with it
            # the category it was found in
            new.query = intent.query
            if old.query and intent.category is None:
                new.category = None
        elif intent.query and relation == Relation.refine:
            # "with noise cancelling": the words join the query (products with every query word
            # come first), they do not become a hard filter the catalog may not spell that way
            # ... but talk around them does not ("what if I go up to", "same thing for men")
            extra = [
                w
                for w in intent.query.split()
                if w.casefold() not in new.query.casefold()
                and w.casefold() not in _TALK
                and w.casefold() not in EN_STOPWORDS
            ]
            new.query = " ".join([new.query, *extra]).strip()
        required = list(new.required)
        for value in intent.required:
            # a value of a group replaces the group's old value, in a refine too ("for women"
            # after men's shoes cannot mean both); its word leaves the query text with it
            group = group_of(value)
            if group:
                dropped = [r for r in required if group_of(r) == group and r != value]
                required = [r for r in required if r not in dropped]
                for r in dropped:
                    new.query = " ".join(new.query.replace(r, " ").split())
            elif relation == Relation.replace:
                required = _without(required, [value])  # an ungrouped value replaces nothing but itself
        for value in intent.required:
            _swap_audience(new, value)
        if relation == Relation.replace and intent.brands:
            new.brands = []
        new.required = _norm(_without(required, intent.excluded) + intent.required)
        new.excluded = _norm(_without(new.excluded, intent.required) + intent.excluded)
        if intent.min_price is not None:
            new.min_price = intent.min_price
            if intent.max_price is None and new.max_price is not None and new.max_price < intent.min_price:
                new.max_price = None  # "500以上的" after "300左右": the old cap goes
        if intent.max_price is not None:
            new.max_price = intent.max_price
            if intent.min_price is None and new.min_price is not None and new.min_price > intent.max_price:
                new.min_price = None  # "anything under $100 then?" after "around $150"
        if intent.currency:
            new.currency = intent.currency
        if intent.brands:
            new.brands = _norm(_without(new.brands, intent.exclude_brands) + intent.brands)
            new.exclude_brands = _without(new.exclude_brands, intent.brands)
        if intent.exclude_brands:
            new.exclude_brands = _norm(new.exclude_brands + intent.exclude_brands)
            new.brands = _without(new.brands, intent.exclude_brands)
        if intent.sort != Sort.relevance:
            new.sort = intent.sort
        if intent.occasion:
            new.occasion = intent.occasion
    if intent.clear_price:
        new.min_price = new.max_price = None
    if intent.clear_brands:
        new.brands = []
    if intent.avoid_shown_brands:
        shown_brands = [b for b in state.shown_brands if b not in new.exclude_brands]
        new.exclude_brands = _norm(new.exclude_brands + shown_brands)
        new.brands = _without(new.brands, shown_brands)
    if intent.price_change is not None:
        ref = reference_price(state.shown, new.currency)
        if ref is not None:
            if intent.price_change == PriceChange.cheaper:
                cap = round(ref * 0.999, 2)
                new.max_price = cap if new.max_price is None else min(new.max_price, cap)
                if new.min_price is not None and new.min_price > new.max_price:
                    new.min_price = None
            else:
                floor = round(ref * 1.001, 2)
                new.min_price = floor if new.min_price is None else max(new.min_price, floor)
                if new.max_price is not None and new.max_price < new.min_price:
                    new.max_price = None
        elif intent.price_change == PriceChange.cheaper:
            new.sort = Sort.price_asc
        else:
            new.sort = Sort.price_desc
    if new.min_price is not None and new.max_price is not None and new.min_price > new.max_price:
        new.min_price, new.max_price = new.max_price, new.min_price
    return new


class ConstraintEdit(BaseModel):
    """The shopper editing the parsed need directly (a chip removed or toggled, a price typed in)
    instead of writing a message. Applied by ``edit_constraints``; the agent re-searches at once."""

    model_config = ConfigDict(extra="forbid")

    remove: list[str] = Field(default_factory=list, max_length=20, description="Values to drop wherever they are.")
    require: list[str] = Field(default_factory=list, max_length=20, description="Values the products must have.")
    exclude: list[str] = Field(default_factory=list, max_length=20, description="Values the products must not have.")
    toggle: list[str] = Field(
        default_factory=list, max_length=20, description="Values to move between must-have and excluded."
    )
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    clear_price: bool = False
    category: str | None = Field(default=None, max_length=60)
    clear_category: bool = False
    query: str | None = Field(default=None, max_length=200)
    sort: Sort | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ConstraintEdit:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"min_price ({self.min_price}) is above max_price ({self.max_price})")
        if self.clear_price and (self.min_price is not None or self.max_price is not None):
            raise ValueError("clear_price and a price bound in the same edit contradict each other")
        if self.clear_category and self.category:
            raise ValueError("clear_category and category in the same edit contradict each other")
        for name in ("remove", "require", "exclude", "toggle"):
            setattr(self, name, _norm(getattr(self, name)))
        both = {v.casefold() for v in self.require} & {v.casefold() for v in self.exclude}
        if both:
            raise ValueError(f"{sorted(both)} cannot be both required and excluded")
        return self

    def is_empty(self) -> bool:
        return self == ConstraintEdit()


def edit_constraints(old: Need, edit: ConstraintEdit) -> Need:
    """The constraints after a direct edit (``old`` is not modified)."""
    new = old.model_copy(deep=True)
    gone = edit.remove
    new.required = _without(new.required, gone)
    new.excluded = _without(new.excluded, gone)
    new.brands = _without(new.brands, gone)
    new.exclude_brands = _without(new.exclude_brands, gone)
    if new.category and new.category.casefold() in {g.casefold() for g in gone}:
        new.category = None
    if gone:  # a removed word also leaves the search text
        new.query = " ".join(w for w in new.query.split() if w.casefold() not in {g.casefold() for g in gone})
    for value in edit.toggle:
        key = value.casefold()
        if key in {v.casefold() for v in new.required}:
            new.required = _without(new.required, [value])
            new.excluded = _norm([*new.excluded, value])
        elif key in {v.casefold() for v in new.excluded}:
            new.excluded = _without(new.excluded, [value])
            new.required = _norm([*new.required, value])
        elif key in {b.casefold() for b in new.brands}:
            new.brands = _without(new.brands, [value])
            new.exclude_brands = _norm([*new.exclude_brands, value])
        elif key in {b.casefold() for b in new.exclude_brands}:
            new.exclude_brands = _without(new.exclude_brands, [value])
            new.brands = _norm([*new.brands, value])
        else:  # toggling a value that is not set yet (an expansion chip) adds it as a must-have
            new.required = _norm([*new.required, value])
    new.required = _norm(_without(new.required, edit.exclude) + edit.require)
    new.excluded = _norm(_without(new.excluded, edit.require) + edit.exclude)
    if edit.clear_price:
        new.min_price = new.max_price = None
    if edit.min_price is not None:
        new.min_price = edit.min_price
    if edit.max_price is not None:
        new.max_price = edit.max_price
    if new.min_price is not None and new.max_price is not None and new.min_price > new.max_price:
        # the edited bound wins; the other one gives way
        if edit.max_price is not None:
            new.min_price = None
        else:
            new.max_price = None
    if edit.clear_category:
        new.category = None
    elif edit.category:
        new.category = edit.category.strip()
    if edit.query is not None:
        new.query = edit.query.strip()
    if edit.sort is not None:
        new.sort = edit.sort
    return new


class SessionStore:
    """One JSON file per session under ``folder``; writes are atomic (temp file + rename).

    With ``pseudonyms`` (what the stack gives it) a session's file is named by its pseudonym and
    holds the pseudonym, never the id the caller used: ``load("jane@example.com")`` reads
    ``anon-….json`` and hands the state back under the id it was asked for. Files are 0600, the
    folder 0700. With ``retention``, files last saved before its cutoff are deleted when the store
    opens and then at most once an hour on a save; opening also renames files a version without
    pseudonyms named by the raw id."""

    def __init__(
        self, folder: Path, *, pseudonyms: Callable[[str], str] | None = None, retention: Retention | None = None
    ) -> None:
        self.folder = Path(folder)
        self.pseudonyms = pseudonyms
        self.retention = retention or Retention()
        if self.folder.is_dir():
            tighten(self.folder, 0o700)
            if pseudonyms is not None:
                self._rename_raw_files()
        self.purge_if_due()

    def key(self, session_id: str) -> str:
        """The name the session is stored under (its pseudonym when the store has them)."""
        if not _SESSION_ID.match(session_id or ""):
            raise UsageError(f"Session id {session_id!r} is not valid: use 1-128 letters, digits or . _ : @ -")
        return self.pseudonyms(session_id) if self.pseudonyms is not None else session_id

    def _path(self, session_id: str) -> Path:
        return self.folder / f"{self.key(session_id)}.json"

    def load(self, session_id: str) -> SessionState:
        path = self._path(session_id)
        if not path.exists():
            return SessionState(session_id=session_id)
        tighten(path, 0o600)
        try:
            state = SessionState.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # A damaged session file must not block the shopper: start the session afresh,
            # keeping the damaged file aside for inspection.
            path.replace(path.with_suffix(f".damaged-{int(time.time())}.json"))
            return SessionState(session_id=session_id)
        return state.model_copy(update={"session_id": session_id})

    def save(self, state: SessionState) -> None:
        key = self.key(state.session_id)
        private_dir(self.folder, fix=True)
        state.turns = state.turns[-50:]
        stored = state.model_copy(update={"session_id": key})
        write_private(self.folder / f"{key}.json", stored.model_dump_json().encode("utf-8"))
        self.purge_if_due()

    def delete(self, session_id: str) -> bool:
        """Delete the session's file, its damaged copies, and a file named by the raw id (from a
        version without pseudonyms); True when there was one."""
        key = self.key(session_id)
        names = {f"{key}.json", f"{session_id}.json"}
        removed = False
        for path in [*(self.folder / n for n in names), *self.folder.glob(f"{key}.damaged-*.json")]:
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                continue
        return removed

    def purge_if_due(self) -> int:
        """Apply the retention when a sweep is due (at start, then at most once an hour)."""
        return self.purge() if self.retention.due() else 0

    def purge(self) -> int:
        """Delete every session file last saved before the retention cutoff; the number deleted."""
        cutoff = self.retention.cutoff()
        return purge_files(self.folder, cutoff) if cutoff is not None else 0

    def stats(self) -> dict[str, Any]:
        """How many session files there are and when the oldest was last saved (epoch seconds)."""
        times = [p.stat().st_mtime for p in self.folder.glob("*.json")] if self.folder.is_dir() else []
        return {"sessions": len(times), "oldest_update": min(times) if times else None}

    def _rename_raw_files(self) -> None:
        """Files named by a raw session id (written before pseudonyms) move to the pseudonym's name,
        with the id inside replaced too; their time of last update is kept (for retention)."""
        assert self.pseudonyms is not None
        for path in self.folder.glob("*.json"):
            stem = path.name[: -len(".json")]
            if stem.startswith(".tmp-") or is_pseudonym(stem.split(".", 1)[0]):
                continue
            damaged = re.fullmatch(r"(.+)\.damaged-(\d+)", stem)
            raw = damaged.group(1) if damaged else stem
            key = self.pseudonyms(raw)
            try:
                info = path.stat()
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # another process moved it first
            target = self.folder / f"{key}.damaged-{damaged.group(2) if damaged else int(time.time())}.json"
            try:
                if damaged is None:
                    state = SessionState.model_validate_json(data)
                    state = state.model_copy(update={"session_id": key})
                    data, target = state.model_dump_json().encode("utf-8"), self.folder / f"{key}.json"
            except ValueError:
                pass  # kept aside as damaged, under the pseudonym
            data = data.replace(f'"session_id":"{raw}"'.encode(), f'"session_id":"{key}"'.encode())
            if not target.exists():
                write_private(target, data)
                os.utime(target, (info.st_atime, info.st_mtime))
            path.unlink(missing_ok=True)


def dumps(state: SessionState) -> str:
    return json.dumps(state.model_dump(mode="json"), ensure_ascii=False, indent=2)

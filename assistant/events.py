"""What a turn yields, as a typed union with a discriminator (``type``), and its final result.

A turn is a stream of events, so a UI can show products long before the LLM has finished:

1. ``IntentEvent`` (source "rules"): the deterministic parser's reading, in a few ms;
2. ``ProductsEvent``: product cards from the search on the edited need (the fast first answer);
   ``ExpansionsEvent``: facet values that exist in the catalog for the intended category;
3. ``IntentEvent`` (source "rules+llm"): the LLM's reading reconciled with the rules; if it
   changes the need, ``ProductsEvent`` again;
4. ``ReplyDeltaEvent`` while the LLM writes copy (raw text, for logs), ``ReplyLineEvent`` as each
   line completes and passes the grounding check (what a UI streams), then ``ReplyEvent``;
5. ``DoneEvent`` with the ``TurnResult``.

Consumers switch on ``event.type`` (or ``isinstance``); each event carries typed fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from assistant.intent import Facet

# How a message can be read (the ``act`` of a turn): a new need, an edit of the current one
# (refine: add or tighten; replace: swap a value), a question about a shown product, a
# comparison, picking one shown product, more of the same (the next results), chit-chat or
# off-topic text, and a request the shop cannot serve (an order's status, a refund ...).
DIALOGUE_ACTS = ("new", "refine", "replace", "question", "compare", "pick", "more", "chitchat", "unsupported")


class TurnResult(BaseModel):
    session_id: str
    message: str
    intent: dict[str, Any]
    intent_source: str
    constraints: dict[str, Any]
    expansions: list[Facet] = Field(default_factory=list)
    act: str = "new"  # how the message was read: one of DIALOGUE_ACTS
    products: list[str] = Field(default_factory=list)  # the products shown as matches, in order
    focus: list[str] = Field(default_factory=list)  # the shown products the turn is about (pick, question, compare)
    alternatives: list[str] = Field(default_factory=list)  # shown as labelled alternatives, not as matches
    cards: list[dict[str, Any]] = Field(default_factory=list)
    reply: str = ""
    lines: list[str] = Field(default_factory=list)
    relaxed: list[str] = Field(default_factory=list)
    grounding: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """What ``shopassist ask --json`` prints."""
        return {
            "session": self.session_id,
            "intent": self.intent,
            "intent_source": self.intent_source,
            "constraints": self.constraints,
            "expansions": [f.model_dump() for f in self.expansions],
            "act": self.act,
            "products": self.products,
            "focus": self.focus,
            "alternatives": self.alternatives,
            "cards": self.cards,
            "reply": self.reply,
            "relaxed": self.relaxed,
            "grounding": self.grounding,
            "timings": self.timings,
        }


class IntentEvent(BaseModel):
    type: Literal["intent"] = "intent"
    source: str  # "rules", "rules+llm" or "edit"
    intent: dict[str, Any]
    llm: dict[str, Any] | None = None  # the LLM's own reading, before reconciliation


class ProductsEvent(BaseModel):
    type: Literal["products"] = "products"
    cards: list[dict[str, Any]]
    # the LLM's reading changed the products after lines about the first ones may have been
    # streamed: the reply starts over for these (clients show "refined: ..." and drop those lines)
    refined: bool = False


class ExpansionsEvent(BaseModel):
    type: Literal["expansions"] = "expansions"
    facets: list[Facet]


class ReplyDeltaEvent(BaseModel):
    type: Literal["reply_delta"] = "reply_delta"
    text: str


class ReplyLineEvent(BaseModel):
    type: Literal["reply_line"] = "reply_line"
    position: int  # 1-based product position the line is about
    text: str


class StreamedLineEvent(ReplyLineEvent):
    """A ``ReplyLineEvent`` that continues the reply: ``delta`` is the reply's next text (its
    header before the first line, then ``"\\n1. line"``). The final ``ReplyEvent.text`` starts with
    the deltas joined (those after the last ``ProductsEvent(refined=True)``: the reply starts over
    there), so a client that streams them sends only the rest at the end (``ui.api``,
    ``shopassist ask``). A line checked out of order has no delta (a plain
    ``ReplyLineEvent``): its text may still change, and it comes with the rest."""

    delta: str


class ReplyEvent(BaseModel):
    type: Literal["reply"] = "reply"
    text: str


class DoneEvent(BaseModel):
    type: Literal["done"] = "done"
    result: TurnResult


TurnEvent = Annotated[
    IntentEvent | ProductsEvent | ExpansionsEvent | ReplyDeltaEvent | ReplyLineEvent | ReplyEvent | DoneEvent,
    Field(discriminator="type"),
]


def final_result(events: Iterator[TurnEvent]) -> TurnResult:
    """Run a turn's event stream to its end; the ``TurnResult`` of its ``DoneEvent``."""
    result = None
    for event in events:
        if isinstance(event, DoneEvent):
            result = event.result
    if result is None:  # pragma: no cover - every turn ends with done
        raise RuntimeError("the turn ended without a result")
    return result

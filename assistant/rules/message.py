"""The message being read: its normalised text, the spans already used, and what was found."""

from __future__ import annotations

from dataclasses import dataclass, field

from assistant.intent import PriceChange
from assistant.rules.patterns import BLANK
from shopassist.models import Sort

__all__ = ["MessageState", "add_unique"]


@dataclass
class MessageState:
    """The message being read: ``work`` is the normalised text with used spans blanked."""

    norm: str
    work: list[str]
    refs: list[int] = field(default_factory=list)
    compare: bool = False
    pick_cue: bool = False
    detail: bool = False
    deictic: bool = False
    replace: bool = False
    soft_replace: bool = False
    clear_price: bool = False
    clear_brands: bool = False
    other_brand: bool = False
    min_price: float | None = None
    max_price: float | None = None
    currency: str | None = None
    price_change: PriceChange | None = None
    sort: Sort = Sort.relevance
    excluded: list[str] = field(default_factory=list)
    exclude_brands: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.work)

    def blank(self, start: int, end: int) -> None:
        for i in range(max(0, start), min(end, len(self.work))):
            self.work[i] = BLANK


def add_unique(items: list[str], value: str) -> None:
    value = value.strip()
    if value and value.casefold() not in {x.casefold() for x in items}:
        items.append(value)

"""Shared typed models: the one home every package may import.

Kept small on purpose (typed, small interfaces): a product record, the filters a search takes, and the
candidate a search returns. Intent, event and conversation models join later, next to these.
"""

from __future__ import annotations

import html
import math
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shopassist.text import detect_language  # defined there; importable from here too

CATEGORY_SEP = " > "
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_HTML_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")

AttributeValue = str | list[str]


def split_category(path: str) -> list[str]:
    """'服饰 > 女装 > 牛仔裤' -> ['服饰', '女装', '牛仔裤'] (also accepts '>' or '/' without spaces)."""
    if not path:
        return []
    parts = re.split(r"\s*>\s*", path.strip())
    return [p for p in (x.strip() for x in parts) if p]


class Product(BaseModel):
    """One catalog record. Unknown fields are kept (``extra='allow'``), never dropped.

    ``price`` may be unknown (None); when known it is a finite, non-negative number in
    ``currency``. ``stock`` None means unknown (treated as available); 0 means sold out.
    """

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=2000)
    description: str = ""
    brand: str | None = None
    category: str = ""
    price: float | None = None
    currency: str = "CNY"
    stock: int | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    image_url: str | None = None
    rating: float | None = None
    language: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any) -> Any:
        # Integer ids (DummyJSON, most SQL exports) are common and unambiguous.
        if isinstance(v, bool):
            raise ValueError("id must be a string or an integer")
        if isinstance(v, int):
            return str(v)
        return v

    @field_validator("description", "category", mode="before")
    @classmethod
    def _none_to_empty(cls, v: Any) -> Any:
        return "" if v is None else v

    @field_validator("brand", "image_url", mode="before")
    @classmethod
    def _blank_to_none(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            return None
        return v

    @field_validator("price", "rating", mode="before")
    @classmethod
    def _blank_number(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            return None
        if isinstance(v, bool):
            raise ValueError("must be a number, not a boolean")
        return v

    @field_validator("stock", mode="before")
    @classmethod
    def _blank_stock(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            return None
        if isinstance(v, bool):
            raise ValueError("must be an integer, not a boolean")
        return v

    @field_validator("price")
    @classmethod
    def _price_ok(cls, v: float | None) -> float | None:
        if v is None:
            return v
        if not math.isfinite(v):
            raise ValueError("price must be a finite number")
        if v < 0:
            raise ValueError(f"price must not be negative (got {v})")
        return v

    @field_validator("rating")
    @classmethod
    def _rating_ok(cls, v: float | None) -> float | None:
        if v is not None and (not math.isfinite(v) or v < 0 or v > 5):
            raise ValueError(f"rating must be between 0 and 5 (got {v})")
        return v

    @field_validator("stock")
    @classmethod
    def _stock_ok(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError(f"stock must not be negative (got {v})")
        return v

    @field_validator("currency", mode="before")
    @classmethod
    def _currency_ok(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return "CNY"
        if isinstance(v, str):
            v = v.strip().upper()
            if v in {"RMB", "¥", "元"}:
                v = "CNY"
            elif v == "$":
                v = "USD"
            if not _CURRENCY.match(v):
                raise ValueError(f"currency must be a 3-letter code such as CNY or USD (got {v!r})")
        return v

    @field_validator("category", mode="after")
    @classmethod
    def _normalise_category(cls, v: str) -> str:
        return CATEGORY_SEP.join(split_category(v))

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes_ok(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("attributes must be an object mapping names to a value or a list of values")
        out: dict[str, Any] = {}
        for name, value in v.items():
            if isinstance(value, bool):
                value = "是" if value else "否"
            if isinstance(value, int | float):
                value = f"{value:g}" if isinstance(value, float) else str(value)
            if isinstance(value, list):
                items = []
                for item in value:
                    if isinstance(item, int | float) and not isinstance(item, bool):
                        item = str(item)
                    if not isinstance(item, str):
                        raise ValueError(f"attribute {name!r} has a non-text list item {item!r}")
                    items.append(item)
                value = items
            elif value is not None and not isinstance(value, str):
                raise ValueError(f"attribute {name!r} must be text or a list of text (got {type(value).__name__})")
            if value is None or value == "" or value == []:
                continue
            out[str(name)] = value
        return out

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_ok(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            return [t.strip() for t in re.split(r"[,;|，；]", v) if t.strip()]
        return v

    @model_validator(mode="after")
    def _fill_language(self) -> Product:
        if not self.language:
            self.language = detect_language(self.title + " " + self.description)
        return self

    # -- helpers -------------------------------------------------------------------------
    @property
    def category_levels(self) -> list[str]:
        return split_category(self.category)

    def attribute_values(self) -> list[str]:
        """Every attribute value as a flat list of strings."""
        out: list[str] = []
        for value in self.attributes.values():
            out.extend(value if isinstance(value, list) else [value])
        return out

    def search_text(self) -> str:
        """The text both retrieval legs index: title, brand, category and facet values."""
        parts = [self.title]
        if self.brand:
            parts.append(self.brand)
        if self.category:
            parts.append(" ".join(self.category_levels))
        parts.extend(self.attribute_values())
        parts.extend(self.tags)
        return " ".join(p for p in parts if p)

    def embedding_text(self) -> str:
        """What the main vector encodes: the title, plus brand and leaf category when the title
        does not already say them (short on purpose: USE runs ~1,400 titles/s on 2 cores)."""
        parts = [self.title]
        low = self.title.casefold()
        if self.brand and self.brand.split("/")[-1].casefold() not in low:
            parts.append(self.brand)
        leaf = self.category_levels[-1] if self.category else ""
        if leaf and leaf.casefold() not in low:
            parts.append(leaf)
        return " ".join(parts)

    def document_text(self) -> str | None:
        """Title plus plain-text description (first 1,000 characters) for the second vector;
        None when there is no description."""
        if not self.description.strip():
            return None
        text = html.unescape(_HTML_TAG.sub(" ", self.description))
        text = _SPACES.sub(" ", text).strip()
        return f"{self.title}. {text[:1000]}" if text else None

    def record(self) -> dict[str, Any]:
        """The JSON-ready record, extras included."""
        return self.model_dump(mode="json")


class Sort(StrEnum):
    """How results are ordered: by relevance (the ranker's order) or by one product field."""

    relevance = "relevance"
    price_asc = "price_asc"
    price_desc = "price_desc"
    rating = "rating"
    sales = "sales"


class SearchFilters(BaseModel):
    """Structured constraints both retrieval legs honour.

    Brand and attribute matching are case-insensitive. A brand filter value matches a product's
    brand when it equals the whole brand or one of its '/'-separated names ('自然堂' matches
    'CHANDO/自然堂'). An attribute filter value matches when it is contained in one of the
    product's values for that attribute name. ``exclude_terms`` drops products whose title,
    brand or attribute values contain any of the terms ("不要破洞", "not brown");
    ``require_terms`` keeps products whose title, brand, category or attribute values contain
    every term ("高腰", "waterproof").
    """

    model_config = ConfigDict(extra="forbid")

    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    currency: str | None = None
    brands: list[str] = Field(default_factory=list)
    exclude_brands: list[str] = Field(default_factory=list)
    category: str | None = None
    in_stock: bool = False
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    exclude_attributes: dict[str, list[str]] = Field(default_factory=dict)
    require_terms: list[str] = Field(default_factory=list)
    exclude_terms: list[str] = Field(default_factory=list)
    exclude_ids: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _range_ok(self) -> SearchFilters:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"min_price ({self.min_price}) is above max_price ({self.max_price})")
        if self.category is not None:
            self.category = CATEGORY_SEP.join(split_category(self.category)) or None
        return self

    def is_empty(self) -> bool:
        return self == SearchFilters()


class Candidate(BaseModel):
    """A product a retriever or ranker returns, with the evidence that put it there."""

    product: Product
    score: float
    lexical_score: float | None = None
    dense_score: float | None = None
    lexical_rank: int | None = None
    dense_rank: int | None = None
    reasons: list[str] = Field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        p = self.product
        return {
            "id": p.id,
            "title": p.title,
            "brand": p.brand,
            "category": p.category,
            "price": p.price,
            "currency": p.currency,
            "stock": p.stock,
            "score": round(self.score, 6),
            "lexical_rank": self.lexical_rank,
            "dense_rank": self.dense_rank,
            "reasons": self.reasons,
        }


class EventType(StrEnum):
    view = "view"
    click = "click"
    add_to_cart = "add_to_cart"
    purchase = "purchase"
    dislike = "dislike"
    search = "search"


SESSION_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
MAX_CLOCK_SKEW_S = 300.0


class Event(BaseModel):
    """One thing a shopper did. ``search`` carries ``query``; every other type a ``product_id``.
    ``ts`` is seconds since the epoch (now when absent); ``seq`` is given by the event log."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    type: EventType
    product_id: str | None = Field(default=None, max_length=200)
    query: str | None = Field(default=None, max_length=500)
    ts: float | None = None
    seq: int | None = None

    @field_validator("session_id")
    @classmethod
    def _session_ok(cls, v: str) -> str:
        if not SESSION_ID.match(v or ""):
            raise ValueError("session_id must be 1-128 letters, digits or . _ : @ -")
        return v

    @model_validator(mode="after")
    def _complete(self) -> Event:
        import time

        if self.type == EventType.search:
            if not (self.query or "").strip():
                raise ValueError("a search event needs a non-empty query")
            self.query = _SPACES.sub(" ", self.query or "").strip()
        elif not (self.product_id or "").strip():
            raise ValueError(f"a {self.type.value} event needs a product_id")
        now = time.time()
        if self.ts is None:
            self.ts = now
        elif not math.isfinite(self.ts) or self.ts < 0:
            raise ValueError("ts must be a finite, non-negative number of seconds since the epoch")
        elif self.ts > now + MAX_CLOCK_SKEW_S:
            raise ValueError(f"ts {self.ts:.0f} is in the future (now {now:.0f})")
        return self

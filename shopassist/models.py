"""Shared typed models: the one home every package may import.

Kept small on purpose (typed, small interfaces): a product record, the filters a search takes, and the
candidate a search returns. Intent, event and conversation models join later, next to these.
"""

from __future__ import annotations

import html
import json
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

# -- what one product may hold ------------------------------------------------------------------
# A value over a limit is rejected (never truncated), with the field and the limit in the reason,
# the way ``title`` always was: a catalog row that big is a broken export, and cutting it would
# store something nobody wrote. The limits are several times the largest values in the bundled
# and shared catalogs, and bound what one row costs: the text that is indexed (title, brand,
# category, attributes, tags) is at most ~23,000 characters, a few MB of index at worst.
MAX_ID_CHARS = 256
MAX_TITLE_CHARS = 2000
MAX_DESCRIPTION_CHARS = 50_000
MAX_BRAND_CHARS = 200
MAX_CATEGORY_CHARS = 1000
MAX_URL_CHARS = 2048
MAX_LANGUAGE_CHARS = 35
MAX_ATTRIBUTES = 200  # attribute names per product
MAX_ATTRIBUTE_NAME_CHARS = 100
MAX_ATTRIBUTE_VALUE_CHARS = 1000  # each value
MAX_ATTRIBUTE_VALUES = 500  # values in one attribute's list
MAX_ATTRIBUTE_TEXT = 10_000  # names and values of all attributes together (they are all indexed)
MAX_TAGS = 100
MAX_TAG_CHARS = 100
MAX_EXTRA_CHARS = 65_536  # every unknown field together, as JSON
MAX_EXTRA_DEPTH = 32  # nesting of lists/objects in unknown fields
MAX_EXTRA_INT = 2**63 - 1  # integers in unknown fields (what SQLite and JSON readers hold)
MAX_PRICE = 1e12
MAX_STOCK = 10**12
MAX_SALE_COUNT = 10**12

# C0/C1 control characters (NUL included), DEL and lone surrogates: never part of product text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_CONTROLS = re.compile(r"[\t\n\r]+")


def clean_text(value: str, *, multiline: bool = False) -> str:
    """``value`` without control characters (NUL, escapes, DEL, C1) or lone surrogates.

    Tabs and line breaks become one space, or are kept when ``multiline`` (descriptions)."""
    if value.isprintable():  # the common case, checked in C: no control character, no surrogate
        return value
    if multiline:
        return _CONTROL_KEEP_LINES.sub("", value)
    if not _CONTROL.search(value):
        return value
    return _CONTROL.sub("", _LINE_CONTROLS.sub(" ", value))


def has_control(value: str) -> bool:
    """Whether ``value`` holds a control character, NUL included, or a lone surrogate."""
    return _CONTROL.search(value) is not None


def _too_long(what: str, value: str, limit: int) -> ValueError:
    return ValueError(f"{what} is {len(value):,} characters; at most {limit:,} are allowed")


def _clean_extra(value: Any, where: str, depth: int = 0) -> Any:
    """An unknown field's value with its text cleaned; ValueError when it cannot be stored."""
    if depth > MAX_EXTRA_DEPTH:
        raise ValueError(f"{where} is nested more than {MAX_EXTRA_DEPTH} levels deep")
    if isinstance(value, str):
        return clean_text(value, multiline=True)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) > MAX_EXTRA_INT:
            raise ValueError(f"{where} holds an integer too large to store (at most {MAX_EXTRA_INT})")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} holds a number that is not finite ({value})")
        return value
    if isinstance(value, list | tuple):
        return [_clean_extra(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_extra(v, where, depth + 1) for k, v in value.items()}
    raise ValueError(f"{where} holds a {type(value).__name__}, which is not JSON")


# In the JSON of unknown fields: an escaped control character (or a line break, kept only in
# values), a raw C1 character or surrogate, or a run of digits that may be a too-large integer.
_SUSPECT_JSON = re.compile(r"\\u00[01][0-9a-fA-F]|\\u007[fF]|\\[bfnrt]|[\x7f-\x9f\ud800-\udfff]|\d{19}")


def _plain_extras(extras: dict[str, Any]) -> bool:
    """True when the unknown fields need no cleaning and pass every check (the common case, and
    what every stored row is): one ``json.dumps`` instead of walking them. False means "look
    closer" (``_clean_extra`` then says what, if anything, is wrong)."""
    try:
        dumped = json.dumps(extras, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return False
    return (
        len(dumped) <= MAX_EXTRA_CHARS
        and dumped.count("[") + dumped.count("{") <= MAX_EXTRA_DEPTH  # so no deeper nesting either
        and _SUSPECT_JSON.search(dumped) is None
    )


def _sale_count(value: Any) -> Any:
    """``sale_count`` (read by the sales sort and browsing): a number in 0..MAX_SALE_COUNT; a
    numeric string (CSV) becomes that number. None or empty stays as it is (no count)."""
    if value is None or value == "":
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            raise ValueError(f"sale_count must be a number (got {value[:50]!r})") from None
        value = int(number) if number.is_integer() else number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"sale_count must be a number (got {type(value).__name__})")
    if not (0 <= value <= MAX_SALE_COUNT):  # also False for NaN
        raise ValueError(f"sale_count must be between 0 and {MAX_SALE_COUNT:,}")
    return value


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

    Text is cleaned: control characters (NUL included) are removed from every text field (tabs
    and line breaks become a space, except in ``description``), and an ``id`` holding one is
    rejected. Values over the ``MAX_*`` limits above are rejected with the field and the limit,
    never truncated; numbers must be finite and within bounds (``MAX_PRICE``, ``MAX_STOCK``), so
    every stored product fits the in-memory columns searches read.
    """

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    brand: str | None = Field(default=None, max_length=MAX_BRAND_CHARS)
    category: str = Field(default="", max_length=MAX_CATEGORY_CHARS)
    price: float | None = None
    currency: str = "CNY"
    stock: int | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    image_url: str | None = Field(default=None, max_length=MAX_URL_CHARS)
    rating: float | None = None
    language: str | None = Field(default=None, max_length=MAX_LANGUAGE_CHARS)

    @model_validator(mode="before")
    @classmethod
    def _extras_ok(cls, data: Any) -> Any:
        """Unknown fields: text cleaned, numbers finite, at most MAX_EXTRA_CHARS of JSON in all."""
        if not isinstance(data, dict):
            return data
        known = _PRODUCT_FIELDS
        extras = [k for k in data if k not in known]
        if not extras:
            return data
        if _plain_extras({k: data[k] for k in extras}):
            if "sale_count" in data and (count := _sale_count(data["sale_count"])) is not data["sale_count"]:
                return {**data, "sale_count": count}
            return data
        out = dict(data)
        for key in extras:
            name = clean_text(str(key))
            value = _clean_extra(out.pop(key), f"field {name[:50]!r}")
            if name in known:
                raise ValueError(f"field {name!r} is written with control characters in its name")
            if name == "sale_count":
                value = _sale_count(value)
            out[name] = value
        size = len(json.dumps({k: v for k, v in out.items() if k not in known}, ensure_ascii=False))
        if size > MAX_EXTRA_CHARS:
            raise ValueError(
                f"the fields beyond the known ones take {size:,} characters of JSON; at most {MAX_EXTRA_CHARS:,} "
                "are allowed (drop the bulky ones before ingesting)"
            )
        return out

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any) -> Any:
        # Integer ids (DummyJSON, most SQL exports) are common and unambiguous.
        if isinstance(v, bool):
            raise ValueError("id must be a string or an integer")
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str) and has_control(v.strip()):  # surrounding whitespace is stripped anyway
            raise ValueError(
                "id must not contain control characters (NUL, tab, line break, escape ...) or broken "
                "Unicode: fix the id in the source"
            )
        return v

    @field_validator("title", "category", "language", mode="before")
    @classmethod
    def _clean_line(cls, v: Any) -> Any:
        return clean_text(v) if isinstance(v, str) else v

    @field_validator("description", mode="before")
    @classmethod
    def _clean_description(cls, v: Any) -> Any:
        if v is None:
            return ""
        return clean_text(v, multiline=True) if isinstance(v, str) else v

    @field_validator("category", mode="before")
    @classmethod
    def _none_to_empty(cls, v: Any) -> Any:
        return "" if v is None else v

    @field_validator("brand", "image_url", mode="before")
    @classmethod
    def _blank_to_none(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = clean_text(v)
            if not v.strip():
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
        if v > MAX_PRICE:
            raise ValueError(f"price must be at most {MAX_PRICE:,.0f} (got {v:g})")
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
        if v is not None and v > MAX_STOCK:
            raise ValueError(f"stock must be at most {MAX_STOCK:,} (got a larger number)")
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
        total = 0
        for raw_name, value in v.items():
            name = clean_text(str(raw_name)).strip()
            shown = repr(name[:50])
            if len(name) > MAX_ATTRIBUTE_NAME_CHARS:
                raise _too_long(f"attribute name {shown}...", name, MAX_ATTRIBUTE_NAME_CHARS)
            if isinstance(value, bool):
                value = "是" if value else "否"
            if isinstance(value, int | float):
                value = f"{value:g}" if isinstance(value, float) else str(value)
            if isinstance(value, list):
                if len(value) > MAX_ATTRIBUTE_VALUES:
                    raise ValueError(
                        f"attribute {shown} has {len(value):,} values; at most {MAX_ATTRIBUTE_VALUES:,} are allowed"
                    )
                items = []
                for item in value:
                    if isinstance(item, int | float) and not isinstance(item, bool):
                        item = str(item)
                    if not isinstance(item, str):
                        raise ValueError(f"attribute {shown} has a non-text list item {repr(item)[:50]}")
                    item = clean_text(item).strip()
                    if len(item) > MAX_ATTRIBUTE_VALUE_CHARS:
                        raise _too_long(f"a value of attribute {shown}", item, MAX_ATTRIBUTE_VALUE_CHARS)
                    if item:
                        items.append(item)
                value = items
            elif isinstance(value, str):
                value = clean_text(value).strip()
                if len(value) > MAX_ATTRIBUTE_VALUE_CHARS:
                    raise _too_long(f"the value of attribute {shown}", value, MAX_ATTRIBUTE_VALUE_CHARS)
            elif value is not None:
                raise ValueError(f"attribute {shown} must be text or a list of text (got {type(value).__name__})")
            if value is None or value == "" or value == []:
                continue
            total += len(name) + (sum(map(len, value)) if isinstance(value, list) else len(value))
            out[name] = value
        if len(out) > MAX_ATTRIBUTES:
            raise ValueError(f"{len(out):,} attributes; at most {MAX_ATTRIBUTES:,} are allowed")
        if total > MAX_ATTRIBUTE_TEXT:
            raise ValueError(
                f"the attributes hold {total:,} characters in all; at most {MAX_ATTRIBUTE_TEXT:,} are allowed"
            )
        return out

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_ok(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            v = re.split(r"[,;|，；]", v)
        if not isinstance(v, list):
            return v  # pydantic says what is wrong with it
        tags = [clean_text(t).strip() if isinstance(t, str) else t for t in v]
        tags = [t for t in tags if t != ""]
        if len(tags) > MAX_TAGS:
            raise ValueError(f"{len(tags):,} tags; at most {MAX_TAGS:,} are allowed")
        for i, tag in enumerate(tags):
            if isinstance(tag, str) and len(tag) > MAX_TAG_CHARS:
                raise _too_long(f"tag {i + 1}", tag, MAX_TAG_CHARS)
        return tags

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


_PRODUCT_FIELDS: frozenset[str] = frozenset(Product.model_fields)


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
# an online experiment's arm an event belongs to: "EXPERIMENT:VARIANT" (``ranking.experiments``)
VARIANT_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_.-]{1,64}$")
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
    variant: str | None = None  # "EXPERIMENT:VARIANT" when the session is in an online experiment

    @field_validator("session_id")
    @classmethod
    def _session_ok(cls, v: str) -> str:
        if not SESSION_ID.match(v or ""):
            raise ValueError("session_id must be 1-128 letters, digits or . _ : @ -")
        return v

    @field_validator("variant")
    @classmethod
    def _variant_ok(cls, v: str | None) -> str | None:
        if v is not None and not VARIANT_TAG.match(v):
            raise ValueError("variant must be EXPERIMENT:VARIANT, each 1-64 letters, digits or . _ -")
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

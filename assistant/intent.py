"""What the shopper wants, as a typed object: the contract between the LLM, the rule parser,
the conversation state and the tools.

The JSON schema the LLM is constrained with is ``ShoppingIntent.llm_schema()``: every array is
bounded (``maxItems``), because without bounds the small embedded model repeats items until it
runs out of tokens (MODELS.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_ITEMS = 6


class Relation(StrEnum):
    """How a message relates to the conversation so far."""

    new = "new"  # a new need: start from a clean set of constraints
    refine = "refine"  # add or tighten constraints ("不要黑色的", "under $100", "便宜点")
    replace = "replace"  # type: ignore[assignment]  # swap a constraint ("换成男款", "red instead")
    compare = "compare"  # compare shown products ("compare 1 and 3")
    pick = "pick"  # one shown product ("第二个详细说说", "tell me about the first one")


class PriceChange(StrEnum):
    cheaper = "cheaper"
    pricier = "pricier"


class Sort(StrEnum):
    relevance = "relevance"
    price_asc = "price_asc"
    price_desc = "price_desc"
    rating = "rating"
    sales = "sales"


def _clean_list(values: Any) -> Any:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if isinstance(values, list):
        out: list[str] = []
        for v in values:
            if isinstance(v, int | float) and not isinstance(v, bool):
                v = str(v)
            if isinstance(v, str):
                v = v.strip()
                if v and v not in out:
                    out.append(v)
        return out[:MAX_ITEMS]
    return values


class ShoppingIntent(BaseModel):
    """A shopper's need, parsed from one message (and merged across turns by the state)."""

    model_config = ConfigDict(extra="ignore", use_enum_values=False)

    query: str = Field(default="", description="search text: the product words, without prices or negations")
    category: str | None = Field(default=None, description="product category word, e.g. 牛仔裤 or hiking boots")
    required: list[str] = Field(default_factory=list, description="must-have attribute values, e.g. 高腰, waterproof")
    excluded: list[str] = Field(
        default_factory=list, description="attribute values or words to avoid, e.g. 破洞, brown"
    )
    price_min: float | None = Field(default=None, ge=0)
    price_max: float | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, description="CNY, USD, ... when the message names one")
    price_change: PriceChange | None = Field(default=None, description="'cheaper'/'pricier' relative to what was shown")
    brands: list[str] = Field(default_factory=list)
    exclude_brands: list[str] = Field(default_factory=list)
    sort: Sort = Sort.relevance
    language: str = Field(default="zh", description="zh or en: the language of the reply")
    relation: Relation = Relation.new
    references: list[int] = Field(default_factory=list, description="1-based positions of shown products")
    clear_brands: bool = Field(default=False, description="'不限品牌' / 'any brand': drop the brand constraint")
    clear_price: bool = Field(default=False, description="'价格不限' / 'budget doesn't matter': drop price bounds")
    avoid_shown_brands: bool = Field(default=False, description="'换个牌子' / 'another brand': not the brands shown")

    @field_validator("required", "excluded", "brands", "exclude_brands", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _clean_list(v)

    @field_validator("references", mode="before")
    @classmethod
    def _refs(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, int):
            v = [v]
        if isinstance(v, list):
            out = []
            for x in v:
                try:
                    n = int(x)
                except (TypeError, ValueError):
                    continue
                if 1 <= n <= 50 and n not in out:
                    out.append(n)
            return out[:MAX_ITEMS]
        return v

    @field_validator("category", "currency", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            return None
        return v

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, v: Any) -> Any:
        if not isinstance(v, str) or v.strip().lower() not in ("zh", "en"):
            return "zh"
        return v.strip().lower()

    @model_validator(mode="after")
    def _prices(self) -> ShoppingIntent:
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            self.price_min, self.price_max = self.price_max, self.price_min
        if self.currency:
            self.currency = self.currency.strip().upper()
            if self.currency in ("RMB", "元", "¥"):
                self.currency = "CNY"
            if self.currency == "$":
                self.currency = "USD"
            if len(self.currency) != 3 or not self.currency.isalpha():
                self.currency = None
        return self

    @classmethod
    def llm_schema(cls) -> dict[str, Any]:
        """The JSON schema for constrained decoding: only what the rules read poorly (meaning,
        categories, attribute words), every key required (with optional keys the embedded
        model writes the first three and closes the object), every array bounded.

        Relation, references, sort, brands and currency come from the rule parser, whose
        patterns are exact there; leaving them out saves ~40 generated tokens (~3 s on CPU).
        """
        str_list = {"type": "array", "items": {"type": "string"}, "maxItems": MAX_ITEMS}
        num = {"type": ["number", "null"]}
        return {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "category": {"type": ["string", "null"]},
                "required": str_list,
                "excluded": str_list,
                "price_min": num,
                "price_max": num,
                "price_change": {"type": ["string", "null"], "enum": ["cheaper", "pricier", None]},
            },
            "required": ["query", "category", "required", "excluded", "price_min", "price_max", "price_change"],
            "additionalProperties": False,
        }

    def summary(self) -> dict[str, Any]:
        """Only what is set: what the UI shows as chips."""
        return self.model_dump(mode="json", exclude_defaults=True)


class Facet(BaseModel):
    """A refinement that exists in the catalog: attribute ``name`` has ``value`` on ``count``
    products of the intended category (``name`` is "title" for frequent title words)."""

    name: str
    value: str
    count: int = Field(ge=0)

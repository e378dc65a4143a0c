"""The shopper's need, as one typed model: the contract between the LLM, the rule parser, the
conversation state, the chips a shopper edits and the search planner.

* ``Need``: what the shopper wants right now (search words, category, must-haves, exclusions,
  price bounds, brands, sort, reply language). A session keeps one; a turn or an edit changes it.
* ``ShoppingIntent``: one message read as a ``Need`` plus how it relates to the conversation
  (new need, refine, replace, compare, pick), the shown products it refers to, and one-off
  instructions (cheaper, any brand, another brand). ``ShoppingIntent.need()`` drops those.
* The JSON schema the LLM is constrained with is generated from ``ShoppingIntent``'s fields
  (``llm_schema``): only the fields the rules read poorly, every key required, every array
  bounded (``maxItems``), because without bounds the small embedded model repeats items until it
  runs out of tokens (measured).

The one conversion from a ``Need`` to search filters lives in ``assistant.planner``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shopassist.models import Sort

MAX_ITEMS = 6  # values per list in one message's reading


class Relation(StrEnum):
    """How a message relates to the conversation so far."""

    new = "new"  # a new need: start from a clean set of constraints
    refine = "refine"  # add or tighten constraints ("不要黑色的", "under $100", "便宜点")
    replace = "replace"  # type: ignore[assignment]  # swap a constraint ("换成男款", "red instead")
    compare = "compare"  # compare shown products ("compare 1 and 3")
    pick = "pick"  # one shown product ("第二个详细说说", "tell me about the first one")
    question = "question"  # a question about a shown product ("这个适合油皮吗？", "is the second one waterproof?")
    more = "more"  # more of the same: the next results ("还有别的吗", "show me more")
    chitchat = "chitchat"  # small talk, off-topic text, attempts to override the instructions
    unsupported = "unsupported"  # what a shop assistant cannot do here (an order's status, a refund)


# Acts that leave the session's need as it is: they answer about what is shown, or about nothing.
KEEPS_NEED = frozenset(
    {Relation.compare, Relation.pick, Relation.question, Relation.more, Relation.chitchat, Relation.unsupported}
)


class PriceChange(StrEnum):
    cheaper = "cheaper"
    pricier = "pricier"


def _clean_list(values: Any, cap: int | None) -> Any:
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
        return out[:cap] if cap else out
    return values


def _currency(value: str | None) -> str | None:
    if not value:
        return None
    code = value.strip().upper()
    code = {"RMB": "CNY", "元": "CNY", "¥": "CNY", "$": "USD"}.get(code, code)
    return code if len(code) == 3 and code.isalpha() else None


class Need(BaseModel):
    """What the shopper wants: the session's accumulated need, or what one message states."""

    model_config = ConfigDict(extra="ignore", use_enum_values=False)
    list_cap: ClassVar[int | None] = None  # a session's need keeps every value it was given

    query: str = Field(default="", description="search text: the product words, without prices or negations")
    category: str | None = Field(default=None, description="product category word, e.g. 牛仔裤 or hiking boots")
    required: list[str] = Field(default_factory=list, description="must-have attribute values, e.g. 高腰, waterproof")
    excluded: list[str] = Field(
        default_factory=list, description="attribute values or words to avoid, e.g. 破洞, brown"
    )
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, description="CNY, USD, ... when the message names one")
    brands: list[str] = Field(default_factory=list)
    exclude_brands: list[str] = Field(default_factory=list)
    sort: Sort = Sort.relevance
    language: str = Field(default="zh", description="zh or en: the language of the reply")
    occasion: str = Field(
        default="", description="who or what it is for (妈妈 生日, dad, summer wedding): context, never a filter"
    )

    @field_validator("required", "excluded", "brands", "exclude_brands", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _clean_list(v, cls.list_cap)

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
    def _prices(self) -> Need:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            self.min_price, self.max_price = self.max_price, self.min_price
        self.currency = _currency(self.currency)
        return self

    def summary(self) -> dict[str, Any]:
        """Only what is set: what the UI shows as chips and ``ask --json`` prints."""
        return self.model_dump(mode="json", exclude_defaults=True)


class ShoppingIntent(Need):
    """One message, read: the need it states plus how it relates to the conversation."""

    list_cap: ClassVar[int | None] = MAX_ITEMS

    price_change: PriceChange | None = Field(default=None, description="'cheaper'/'pricier' relative to what was shown")
    relation: Relation = Relation.new
    references: list[int] = Field(default_factory=list, description="1-based positions of shown products")
    clear_brands: bool = Field(default=False, description="'不限品牌' / 'any brand': drop the brand constraint")
    clear_price: bool = Field(default=False, description="'价格不限' / 'budget doesn't matter': drop price bounds")
    avoid_shown_brands: bool = Field(default=False, description="'换个牌子' / 'another brand': not the brands shown")

    # What the LLM writes (the schema's keys, in this order). Relation, references, sort, brands
    # and currency come from the rule parser, whose patterns are exact there; leaving them out
    # saves ~40 generated tokens (~3 s on CPU).
    LLM_FIELDS: ClassVar[tuple[str, ...]] = (
        "query",
        "category",
        "required",
        "excluded",
        "min_price",
        "max_price",
        "price_change",
    )

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

    @classmethod
    def from_need(cls, need: Need, **update: Any) -> ShoppingIntent:
        """A need restated as a message's reading (e.g. the rules' view of the previous turn)."""
        return cls.model_validate({**need.model_dump(), **update})

    def need(self) -> Need:
        """The need this message states, without the message-only fields."""
        return Need.model_validate(self.model_dump(include=set(Need.model_fields)))

    @classmethod
    def llm_schema(cls) -> dict[str, Any]:
        """The JSON schema for constrained decoding, generated from the fields in ``LLM_FIELDS``:
        every key required (with optional keys the embedded model writes the first three and
        closes the object), nullable fields as ``[type, "null"]``, every array bounded."""
        full = cls.model_json_schema()
        defs = full.get("$defs", {})
        props = {name: _plain(full["properties"][name], defs, cls.list_cap) for name in cls.LLM_FIELDS}
        return {
            "type": "object",
            "properties": props,
            "required": list(cls.LLM_FIELDS),
            "additionalProperties": False,
        }


def _plain(prop: dict[str, Any], defs: dict[str, Any], cap: int | None) -> dict[str, Any]:
    """A pydantic property schema reduced to what grammar-constrained decoders handle well:
    ``type`` (a list for nullable fields), ``enum``, ``items`` and ``maxItems``."""
    if "$ref" in prop:
        prop = defs[prop["$ref"].rsplit("/", 1)[-1]]
    variants = prop.get("anyOf", [prop])
    types: list[str] = []
    enum: list[Any] = []
    out: dict[str, Any] = {}
    for variant in variants:
        if "$ref" in variant:
            variant = defs[variant["$ref"].rsplit("/", 1)[-1]]
        kind = variant.get("type", "string")
        types.append(kind)
        enum.extend(variant.get("enum", []))
        if kind == "array":
            out["items"] = {"type": variant.get("items", {}).get("type", "string")}
            if cap:
                out["maxItems"] = cap
    if enum:
        out["enum"] = [*enum, None] if "null" in types else enum
    return {"type": types[0] if len(types) == 1 else types, **out}


class Facet(BaseModel):
    """A refinement that exists in the catalog: attribute ``name`` has ``value`` on ``count``
    products of the intended category (``name`` is "title" for frequent title words)."""

    name: str
    value: str
    count: int = Field(ge=0)

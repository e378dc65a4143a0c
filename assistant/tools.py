"""The assistant's tools: typed arguments, OpenAI function schemas, and nothing else.

Exactly five tools exist (``TOOLS``); the registry refuses any other name, whoever asks (the
model, the HTTP API, a prompt injected into product text). Arguments are validated by pydantic
before anything runs, and every failure comes back as a ``ToolResult`` with ``ok=False`` and a
message the model (or an API client) can act on: a tool never raises into the agent loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retrieval import Catalog, HybridRetriever
from retrieval.filters import term_in
from shopassist.errors import BackendError, ShopAssistError
from shopassist.models import Candidate, Product, SearchFilters, Sort
from shopassist.text import HAS_CJK, money


class SearchProductsArgs(SearchFilters):
    """Search the catalog. Every constraint is optional; filters are hard, the query ranks."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(default="", description="product words, e.g. 'high-waist jeans' or '高腰牛仔裤'")
    category: str | None = Field(default=None, description="category path prefix or level name")
    currency: str | None = Field(default=None, description="CNY, USD, ...")
    brands: list[str] = Field(default_factory=list, max_length=10)
    exclude_brands: list[str] = Field(default_factory=list, max_length=10)
    require_terms: list[str] = Field(default_factory=list, max_length=10, description="each must appear in the product")
    exclude_terms: list[str] = Field(default_factory=list, max_length=10, description="none may appear in the product")
    exclude_ids: list[str] = Field(default_factory=list, max_length=200)
    sort: Sort = Sort.relevance
    top_k: int = Field(default=10, ge=1, le=50)

    def filters(self) -> SearchFilters:
        """The filters part (the fields this model shares with ``SearchFilters``)."""
        return SearchFilters.model_validate(self.model_dump(include=set(SearchFilters.model_fields)))


class GetProductArgs(BaseModel):
    """One product's full record."""

    model_config = ConfigDict(extra="forbid")
    product_id: str = Field(min_length=1)


class CompareProductsArgs(BaseModel):
    """Two to five products side by side: price, brand, stock, rating and shared attributes."""

    model_config = ConfigDict(extra="forbid")
    product_ids: list[str] = Field(min_length=2, max_length=5)


class SimilarProductsArgs(BaseModel):
    """Products like a given one (same category first), optionally cheaper."""

    model_config = ConfigDict(extra="forbid")
    product_id: str = Field(min_length=1)
    max_price: float | None = Field(default=None, ge=0)
    top_k: int = Field(default=5, ge=1, le=20)


class RecordFeedbackArgs(BaseModel):
    """What the shopper did with a product: it changes the next answer of that session."""

    model_config = ConfigDict(extra="forbid")
    session_id: str = Field(min_length=1, max_length=128)
    product_id: str = Field(min_length=1)
    event: Literal["view", "click", "add_to_cart", "purchase", "dislike"]


class ToolResult(BaseModel):
    ok: bool
    tool: str
    data: Any = None
    error: str | None = None
    # why it failed, for callers that map errors (the HTTP API: 404 / 422 / 409)
    error_kind: Literal["unknown_tool", "invalid_arguments", "not_found", "failed"] | None = None

    def as_message(self) -> str:
        """Compact JSON for the model's context (a tool message)."""
        payload = {"ok": self.ok, "data": self.data} if self.ok else {"ok": False, "error": self.error}
        return json.dumps(payload, ensure_ascii=False, default=str)


# Why a product is shown, in plain words: reason codes (retrieval and the ranker give them, see
# ``retrieval.search`` and ``ranking.ranker.Ranker._reasons``) -> (Chinese, English). A code not
# here (out_of_stock: the card shows the stock; listed) gives no phrase.
REASON_WORDS: dict[str, tuple[str, str]] = {
    "viewed_together": ("看过同款的人也选了它", "chosen by shoppers who viewed what you viewed"),
    "after_search": ("搜索这个的人常选它", "often chosen by shoppers who searched this"),
    "popular": ("最近很多人在看", "popular with shoppers lately"),
    "like_popular": ("和热门商品很像", "like the items shoppers love"),
    "new": ("新品，还没多少人看过", "new: few shoppers have seen it yet"),
}
# what found it, said only when nothing more telling is
FOUND_WORDS: dict[str, tuple[str, str]] = {
    "all_words": ("符合你搜索的内容", "matches what you searched for"),
    "search": ("符合你搜索的内容", "matches what you searched for"),
    "keyword": ("符合你搜索的内容", "matches what you searched for"),
    "meaning": ("和你描述的很接近", "close to what you described"),
    "filters": ("符合你的筛选条件", "fits your filters"),
}
MAX_REASONS = 3
Lookup = Callable[[str], Product | None]


def _record_text(p: Product) -> str:
    return " ".join([p.title, p.brand or "", p.category, p.description, *p.attribute_values(), *p.tags]).casefold()


def _price_words(p: Product, lo: float | None, hi: float | None, zh: bool) -> str | None:
    """The asked price bound this product keeps, as a shopper says it: "200元以内" / "under $200"."""
    price = p.price
    if price is None or (lo is None and hi is None):
        return None
    if (lo is not None and price < lo) or (hi is not None and price > hi):
        return None
    cur = (p.currency or "").upper()
    if zh:
        unit = {"": "元", "CNY": "元", "RMB": "元", "USD": "美元"}.get(cur, f" {cur}")
        if lo is not None and hi is not None:
            return f"{money(lo)}–{money(hi)}{unit}"
        return f"{money(hi)}{unit}以内" if hi is not None else f"{money(lo or 0)}{unit}以上"

    def amount(x: float) -> str:
        sign = {"USD": "$", "CNY": "¥", "RMB": "¥", "EUR": "€", "GBP": "£"}.get(cur)
        return f"{sign}{money(x)}" if sign else f"{money(x)} {cur}".strip()

    if lo is not None and hi is not None:
        return f"{amount(lo)}–{amount(hi)}"
    return f"under {amount(hi)}" if hi is not None else f"over {amount(lo or 0)}"


def _term_words(term: str, text: str, zh: bool) -> str | None:
    """The shopper's term as found in the record (of ``防水|waterproof``, the one in their language)."""
    found = [t.strip() for t in term.split("|") if t.strip() and term_in(t, text)]
    if not found:
        return None
    same = [t for t in found if bool(HAS_CJK.search(t)) == zh]
    return (same or found)[0]


def asked_phrase(p: Product, asked: SearchFilters | None, language: str) -> str | None:
    """What the shopper asked for that this product has: the brand, the must-have terms found in
    its record and the price bound it keeps ("高腰、200元以内，符合你的要求")."""
    if asked is None:
        return None
    zh = language == "zh"
    text = _record_text(p)
    parts: list[str] = []
    if p.brand and p.brand.casefold() in {b.casefold() for b in asked.brands}:
        parts.append(p.brand)
    for term in asked.require_terms:
        word = _term_words(term, text, zh)
        if word and word not in parts:
            parts.append(word)
    parts = parts[:2]
    price = _price_words(p, asked.min_price, asked.max_price, zh)
    if price:
        parts.append(price)
    if not parts:
        return None
    if zh:
        return "、".join(parts) + "，符合你的要求"
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listed}, as you asked"


def _similar_phrase(p: Product, anchor_id: str, lookup: Lookup | None, zh: bool) -> str:
    if anchor_id == p.id:
        return "你看过这款" if zh else "you looked at this one"
    anchor = lookup(anchor_id) if lookup is not None and anchor_id else None
    leaf = anchor.category.split(" > ")[-1].strip() if anchor is not None and anchor.category else ""
    if zh:
        return f"和你看过的{leaf}相似" if leaf else "和你看过的商品相似"
    return f"similar to the {leaf.casefold()} you looked at" if leaf else "similar to what you looked at"


def reason_phrases(
    p: Product,
    codes: list[str],
    language: str = "en",
    asked: SearchFilters | None = None,
    lookup: Lookup | None = None,
) -> list[str]:
    """At most ``MAX_REASONS`` plain phrases in the shopper's language (``zh`` or ``en``) for why
    ``p`` is shown: what they asked for that it has, then what the ranker says moved it (in its
    order: like what they looked at, chosen after this search, popular ...), and, when nothing
    else, how the search found it. Never ranks, scores or the query echoed back."""
    zh = language == "zh"
    out: list[str] = []
    first = asked_phrase(p, asked, language)
    if first:
        out.append(first)
    for code in codes:
        if code.startswith("similar_to:"):
            phrase: str | None = _similar_phrase(p, code.split(":", 1)[1], lookup, zh)
        else:
            words = REASON_WORDS.get(code)
            phrase = (words[0] if zh else words[1]) if words else None
        if phrase and phrase not in out:
            out.append(phrase)
    if not out:
        found = next((FOUND_WORDS[c] for c in codes if c in FOUND_WORDS), None)
        if found:
            out.append(found[0] if zh else found[1])
    return out[:MAX_REASONS]


def language_of(*texts: str) -> str:
    """``zh`` when the text has Chinese characters, else ``en`` (the language of a tool call)."""
    return "zh" if any(HAS_CJK.search(t or "") for t in texts) else "en"


def product_card(
    p: Product,
    rank: int | None = None,
    reasons: list[str] | None = None,
    *,
    language: str = "en",
    asked: SearchFilters | None = None,
    lookup: Lookup | None = None,
) -> dict[str, Any]:
    """The facts about a product that tools return and copy may mention: nothing else.

    ``reasons`` are reason codes (``Candidate.reasons``): the card keeps them as ``reason_codes``
    and says them as ``reasons``, plain phrases in ``language`` (``reason_phrases``); ``asked``:
    the shopper's constraints (must-have terms, price bounds, brands), ``lookup``: a product by id
    (to name what the shopper looked at)."""
    card: dict[str, Any] = {
        "id": p.id,
        "title": p.title,
        "brand": p.brand,
        "category": p.category,
        "price": p.price,
        "currency": p.currency,
        "stock": p.stock,
        "rating": p.rating,
        "attributes": p.attributes,
    }
    if rank is not None:
        card["rank"] = rank
    if reasons:
        card["reason_codes"] = list(reasons)
        phrases = reason_phrases(p, reasons, language, asked, lookup)
        if phrases:
            card["reasons"] = phrases
    if p.image_url:
        card["image_url"] = p.image_url
    generated = (p.model_extra or {}).get("generated_fields")
    if generated:
        card["generated_fields"] = generated
    return card


FeedbackSink = Callable[[str, str, str], None]


class ToolRegistry:
    """Runs the five tools against one catalog. ``feedback`` receives (session, product, event)."""

    def __init__(
        self, catalog: Catalog, retriever: HybridRetriever | None = None, feedback: FeedbackSink | None = None
    ):
        self.catalog = catalog
        self.retriever = retriever or HybridRetriever(catalog)
        self.feedback = feedback
        self._impl: dict[str, tuple[type[BaseModel], Callable[[Any], Any]]] = {
            "search_products": (SearchProductsArgs, self._search),
            "get_product": (GetProductArgs, self._get),
            "compare_products": (CompareProductsArgs, self._compare),
            "similar_products": (SimilarProductsArgs, self._similar),
            "record_feedback": (RecordFeedbackArgs, self._feedback),
        }

    @property
    def names(self) -> list[str]:
        return list(self._impl)

    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI function-tool schemas (``{"type": "function", "function": {...}}``)."""
        out = []
        for name, (model, _) in self._impl.items():
            schema = _inline_refs(model.model_json_schema())
            schema.pop("title", None)
            props = schema.get("properties", {})
            if "query" in props:  # the words first: what a model should fill in before any filter
                schema["properties"] = {"query": props.pop("query"), **props}
            for prop in schema.get("properties", {}).values():
                prop.pop("title", None)
            out.append(
                {
                    "type": "function",
                    "function": {"name": name, "description": (model.__doc__ or "").strip(), "parameters": schema},
                }
            )
        return out

    def call(self, name: str, arguments: dict[str, Any] | str | None) -> ToolResult:
        if name not in self._impl:
            return ToolResult(
                ok=False,
                tool=name,
                error=f"unknown tool {name!r}; the tools are: {', '.join(self._impl)}",
                error_kind="unknown_tool",
            )
        model, fn = self._impl[name]
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return ToolResult(
                    ok=False,
                    tool=name,
                    error=f"arguments are not valid JSON: {exc.msg}",
                    error_kind="invalid_arguments",
                )
        try:
            args = model.model_validate(arguments or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            return ToolResult(
                ok=False, tool=name, error=f"invalid arguments: {problems}", error_kind="invalid_arguments"
            )
        try:
            return ToolResult(ok=True, tool=name, data=fn(args))
        except KeyError as exc:
            return ToolResult(
                ok=False, tool=name, error=str(exc.args[0]) if exc.args else "not found", error_kind="not_found"
            )
        except BackendError:
            raise  # a store that is down is the caller's 503 (and its message names hosts): not a tool answer
        except (ShopAssistError, ValueError) as exc:
            return ToolResult(ok=False, tool=name, error=str(exc) or type(exc).__name__, error_kind="failed")

    # -- implementations ------------------------------------------------------------------------
    def search(self, args: SearchProductsArgs) -> list[Candidate]:
        """Typed entry point the agent uses directly (same code as the tool)."""
        results = self.retriever.search(
            args.query, args.filters(), top_k=max(args.top_k, 30) if args.sort != "relevance" else args.top_k
        )
        if args.sort != "relevance":
            results = sort_candidates(results, args.sort)
        return results[: args.top_k]

    def _search(self, args: SearchProductsArgs) -> list[dict[str, Any]]:
        language = language_of(args.query, *args.require_terms, args.category or "")
        return [
            product_card(c.product, i, c.reasons, language=language, asked=args.filters(), lookup=self.catalog.get)
            for i, c in enumerate(self.search(args), 1)
        ]

    def _get(self, args: GetProductArgs) -> dict[str, Any]:
        p = self.catalog.get(args.product_id)
        if p is None:
            raise KeyError(f"no product with id {args.product_id!r}")
        card = product_card(p)
        card["description"] = p.description[:1000]
        card["tags"] = p.tags
        return card

    def _compare(self, args: CompareProductsArgs) -> dict[str, Any]:
        products = []
        for pid in args.product_ids:
            p = self.catalog.get(pid)
            if p is None:
                raise KeyError(f"no product with id {pid!r}")
            products.append(p)
        names = set.intersection(*(set(p.attributes) for p in products)) if products else set()
        priced = [p for p in products if p.price is not None]
        cheapest = min(priced, key=lambda p: p.price or 0).id if priced else None
        return {
            "products": [product_card(p) for p in products],
            "shared_attributes": sorted(names),
            "cheapest": cheapest,
        }

    def _similar(self, args: SimilarProductsArgs) -> list[dict[str, Any]]:
        p = self.catalog.get(args.product_id)
        if p is None:
            raise KeyError(f"no product with id {args.product_id!r}")
        # The product's own category first, then each broader level, then anywhere.
        levels = p.category_levels
        scopes: list[str | None] = [" > ".join(levels[:n]) for n in range(len(levels), 0, -1)] + [None]
        results: list[Candidate] = []
        for scope in scopes:
            filters = SearchFilters(max_price=args.max_price, exclude_ids=[p.id], category=scope)
            results = self.retriever.search(p.title, filters, top_k=args.top_k)
            if results:
                break
        return [product_card(c.product, i) for i, c in enumerate(results, 1)]

    def _feedback(self, args: RecordFeedbackArgs) -> dict[str, Any]:
        if self.catalog.get(args.product_id) is None:
            raise KeyError(f"no product with id {args.product_id!r}")
        if self.feedback is None:
            raise ValueError("feedback is not recorded in this context")
        self.feedback(args.session_id, args.product_id, args.event)
        return {"recorded": True, "session_id": args.session_id, "product_id": args.product_id, "event": args.event}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every ``$ref`` replaced by its definition (no ``$defs``): some servers'
    tool-call grammars do not follow references."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
                target.pop("title", None)
                return walk({**target, **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def sort_candidates(results: list[Candidate], sort: Sort | str) -> list[Candidate]:
    def price(c: Candidate) -> float:
        return c.product.price if c.product.price is not None else float("inf")

    if sort == "price_asc":
        return sorted(results, key=price)
    if sort == "price_desc":
        return sorted(results, key=lambda c: -(c.product.price or 0.0))
    if sort == "rating":
        return sorted(results, key=lambda c: -(c.product.rating or 0.0))
    if sort == "sales":
        return sorted(results, key=lambda c: -float((c.product.model_extra or {}).get("sale_count") or 0))
    return results

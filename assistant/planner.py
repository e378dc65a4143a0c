"""Search planning: from the shopper's ``Need`` to the searches that answer it.

Pure functions of the need and the catalog's vocabulary (no I/O, no catalog access): the agent
runs the plan. This is the one place a ``Need`` becomes search filters (``search_args``).

What the shopper said is hard (prices, brands, exclusions, must-have words); what we inferred
is soft and relaxes: the in-stock preference. When no attempt finds anything, the ``probes``
say which single relaxation would (the first that finds something is offered as advice), so the
answer is an honest empty one instead of products that break a stated constraint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from assistant.intent import Need
from assistant.synonyms import alternatives
from assistant.tools import SearchProductsArgs
from shopassist.models import Sort, detect_language

AUDIENCE_WORD = {"f": "女", "m": "男", "k": "童"}
_AUDIENCE_FALLBACK = {
    **dict.fromkeys(("women", "womens", "woman", "ladies", "female", "女", "女装", "女鞋", "女士"), "f"),
    **dict.fromkeys(("men", "mens", "man", "male", "男", "男装", "男鞋", "男士"), "m"),
    **dict.fromkeys(("kids", "children", "child", "儿童", "童装", "童鞋"), "k"),
}


@dataclass(frozen=True)
class Vocabulary:
    """What the planner needs to know about the catalog's words: its category level names
    (case-folded), the closest category for a word, the audience words of its facets, and the
    tokenizer its lexical index uses."""

    levels: frozenset[str]
    best_category: Callable[[str], str | None]
    audience_words: Mapping[str, str]
    tokenize: Callable[[str], list[str]]


@dataclass(frozen=True)
class Attempt:
    """One search to try, and the soft preferences it gave up."""

    args: SearchProductsArgs
    relaxed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe:
    """A search that tells whether dropping one hard constraint (``kind``) would find products."""

    kind: str  # "required" | "price" | "brands" | "excluded"
    args: SearchProductsArgs


@dataclass(frozen=True)
class SearchPlan:
    attempts: list[Attempt]
    words: frozenset[str]  # the query's content words: products that have most of them come first
    probes: list[Probe] = field(default_factory=list)


def audience(value: str, audience_words: Mapping[str, str]) -> str | None:
    """'f', 'm' or 'k' when the value names an audience (女士, men's, 儿童 ...)."""
    cls = audience_words.get(value) or audience_words.get(value.casefold())
    if cls in ("f", "m", "k"):
        return cls
    return _AUDIENCE_FALLBACK.get(value.casefold().replace("'", ""))


def category_filter(category: str | None, vocab: Vocabulary) -> str | None:
    """The category level name to filter on (it matches that level in any path), or None when
    the word is not a category of this catalog. A level name rather than the full path, so
    that 换成男款 can move from 女装 > 牛仔裤 to 男装 > 牛仔裤: the audience is a required term."""
    if not category:
        return None
    leaf = category.split(" > ")[-1].strip()
    if leaf.casefold() in vocab.levels:
        return leaf
    best = vocab.best_category(category)
    return best.split(" > ")[-1] if best else None


def required_terms(need: Need, vocab: Vocabulary) -> list[str]:
    """Each must-have as alternatives that hold in either language (``防水|waterproof``);
    audiences in the short forms titles and category paths use (女士/女款 -> 女|women ...).
    A category path that names an audience (Shoes > Women > Boots) adds it, unless the
    shopper named one (换成男款 overrides the 女装 of the earlier path)."""
    terms: list[str] = []
    has_audience = False
    for value in need.required:
        cls = audience(value, vocab.audience_words)
        if cls:
            has_audience = True
            value = AUDIENCE_WORD[cls]
        alts = "|".join(alternatives(value))
        if alts not in terms:
            terms.append(alts)
    if not has_audience and need.category and " > " in need.category:
        for level in need.category.split(" > ")[:-1]:
            cls = audience(level.strip(), vocab.audience_words)
            if cls:
                terms.append("|".join(alternatives(AUDIENCE_WORD[cls])))
                break
    return terms


def query_words(need: Need, category: str | None, vocab: Vocabulary) -> frozenset[str]:
    """Content words of the query beyond the category and audience: the products that have
    the most of them are shown first, alone (precision over padding)."""
    skip = set(vocab.tokenize(category or "")) | set(vocab.tokenize(" ".join(need.required)))
    words = set()
    for tok in vocab.tokenize(need.query or ""):
        if tok.startswith("#") or tok in skip or audience(tok, vocab.audience_words):
            continue
        if detect_language(tok) == "zh" and len(tok) < 2:
            continue
        words.add(tok)
    return frozenset(words)


def search_args(need: Need, disliked: list[str], top_k: int) -> SearchProductsArgs:
    """The need as search arguments (hard filters, no category, no must-haves): the base every
    attempt and probe refines. Disliked products never come back."""
    parts = [need.query or need.category or ""] + [
        r for r in need.required if r.casefold() not in (need.query or "").casefold()
    ]
    return SearchProductsArgs(
        query=" ".join(w for w in parts if w).strip(),
        min_price=need.min_price,
        max_price=need.max_price,
        currency=need.currency,
        brands=need.brands,
        exclude_brands=need.exclude_brands,
        exclude_terms=[alt for term in need.excluded for alt in alternatives(term)],
        exclude_ids=disliked[-200:],
        sort=need.sort,
        top_k=top_k,
    )


def plan_search(need: Need, vocab: Vocabulary, disliked: list[str], show: int) -> SearchPlan:
    """The attempts, in order (strict and in stock; strict), and the probes for advice."""
    base = search_args(need, disliked, show)
    category = category_filter(need.category, vocab)
    strict = base.model_copy(update={"require_terms": required_terms(need, vocab), "category": category, "top_k": 30})
    attempts = [Attempt(strict.model_copy(update={"in_stock": True})), Attempt(strict, ("in_stock",))]
    probes: list[Probe] = []
    if need.required:
        probes.append(Probe("required", base.model_copy(update={"category": category})))
    if need.max_price is not None or need.min_price is not None:
        probes.append(
            Probe("price", base.model_copy(update={"min_price": None, "max_price": None, "sort": Sort.price_asc}))
        )
    if need.brands:
        probes.append(Probe("brands", base.model_copy(update={"brands": []})))
    if need.excluded:
        probes.append(Probe("excluded", base.model_copy(update={"exclude_terms": []})))
    return SearchPlan(attempts=attempts, words=query_words(need, category, vocab), probes=probes)


def advice(probe: Probe, need: Need, found_count: int, prices: list[float]) -> str | None:
    """What to tell the shopper when ``probe`` found ``found_count`` products (None: say nothing)."""
    zh = need.language == "zh"
    if probe.kind == "required":
        what = "、".join(need.required) if zh else ", ".join(need.required)
        return f"不限“{what}”有 {found_count} 款可选" if zh else f"without '{what}' there are matches"
    if probe.kind == "price":
        if not prices:
            return None
        low = min(prices)
        return f"放宽价格可以找到，最低 {low:g} 起" if zh else f"without the price limit there are matches from {low:g}"
    if probe.kind == "brands":
        return "其他品牌有类似商品" if zh else "other brands have similar products"
    if probe.kind == "excluded":
        return "去掉排除条件可以找到一些" if zh else "dropping the exclusions gives some matches"
    return None

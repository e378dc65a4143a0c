"""Search planning: from the shopper's ``Need`` to the searches that answer it.

Pure functions of the need and the catalog's vocabulary (no I/O, no catalog access): the agent
runs the plan. This is the one place a ``Need`` becomes search filters (``search_args``).

What the shopper said is hard (prices, brands, exclusions, must-have words); what we inferred
is soft and relaxes: the in-stock preference. When no attempt finds anything, the ``probes``
say which single relaxation would (the first that finds something is offered as advice), so the
answer is an honest empty one instead of products that break a stated constraint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from assistant.intent import Need
from assistant.rules.numbers import model_names
from assistant.synonyms import alternatives
from assistant.tools import SearchProductsArgs
from retrieval.tokenize import EN_STOPWORDS
from shopassist.models import Sort, detect_language
from shopassist.text import HAS_CJK, money

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
    level_size: Mapping[str, int] = field(default_factory=dict)  # case-folded level -> products under it
    term_count: Callable[[str], int] | None = None  # products holding an indexed term


# A category level holding fewer products than this is no hard filter: one source's tiny leaf
# (美妆洗护 > 口红: 2 products) must not hide the same products filed elsewhere (美妆 > 唇妆: 69
# lipsticks). The asked product type then has to be named by the title or the category path.
SMALL_LEAF = 20

# Chinese compounds put the head last: 蛋糕鞋 is a shoe, not a cake. When a category word is
# followed in the query by one of these product heads, the compound is what was asked for.
HEAD_CHARS = frozenset("鞋靴包裙裤衣衫帽袜杯壶锅灯机器架柜桌椅床垫枕被表镜笔盒袋箱台凳")


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
    # the product type asked for when the catalog has no category of that name: a result that is
    # not one (its title and category do not name it) is no match ("tasman蛋糕鞋" -> no cakes)
    product_type: str | None = None
    head: str | None = None  # the head of a compound product type (蛋糕鞋 -> 鞋), for alternatives
    unknown: tuple[str, ...] = ()  # names in the query that no product has (Gucci in a shop without it)
    models: tuple[str, ...] = ()  # model names the products must hold ("iphone 15"), each a must-have
    without_models: SearchProductsArgs | None = None  # the strict search without them (for "we don't have")


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


def exclusion_spellings(term: str) -> list[str]:
    """What "不要X" keeps out: X in either language and, for a Chinese compound ending in a product
    head (机械表, 高跟鞋), its modifier too: titles write 全自动机械男士手表, not 机械表."""
    out = alternatives(term)
    if len(term) >= 3 and HAS_CJK.match(term[-1]) and term[-1] in HEAD_CHARS:
        out = [*out, term[:-1]]
    return list(dict.fromkeys(out))


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
        exclude_terms=[alt for term in need.excluded for alt in exclusion_spellings(term)],
        exclude_ids=disliked[-200:],
        sort=need.sort,
        top_k=top_k,
    )


def plan_search(need: Need, vocab: Vocabulary, disliked: list[str], show: int, fresh: bool = False) -> SearchPlan:
    """The attempts, in order (strict and in stock; strict), and the probes for advice.
    ``fresh``: the need was just stated (a new need), so names in it are checked against the
    catalog; an edited need's query also holds words of earlier turns."""
    base = search_args(need, disliked, show)
    category = category_filter(need.category, vocab)
    compound = _compound(need.query, category)
    if compound:  # the category word only modifies what was asked for
        category = None
    musts = required_terms(need, vocab)
    models = model_names(need.query)
    model_musts = [f"{name}{num}|{name} {num}" for name, num in models]
    kind: list[str] = []  # the product type as a term, when its category is too small to filter on
    hard = category
    if category and vocab.level_size and vocab.level_size.get(category.casefold(), 0) < SMALL_LEAF:
        hard = None
        kind = ["|".join(dict.fromkeys([category, *alternatives(category)]))]
    strict = base.model_copy(update={"require_terms": [*musts, *kind, *model_musts], "category": hard, "top_k": 30})
    attempts = [Attempt(strict.model_copy(update={"in_stock": True})), Attempt(strict, ("in_stock",))]
    # each probe gives up ONE hard constraint and keeps the rest (the product type above all), so
    # the advice it leads to is true: "without the price limit" never finds other products in budget
    probe_base = strict.model_copy(update={"top_k": show})
    probes: list[Probe] = []
    if need.required:
        probes.append(Probe("required", probe_base.model_copy(update={"require_terms": kind})))
    if need.max_price is not None or need.min_price is not None:
        probes.append(
            Probe("price", probe_base.model_copy(update={"min_price": None, "max_price": None, "sort": Sort.price_asc}))
        )
    if need.brands:
        probes.append(Probe("brands", probe_base.model_copy(update={"brands": []})))
    if need.excluded:
        probes.append(Probe("excluded", probe_base.model_copy(update={"exclude_terms": []})))
    product_type = need.category.split(" > ")[-1].strip() if need.category and not category else None
    if compound:
        product_type = compound[0]
    return SearchPlan(
        attempts=attempts,
        words=query_words(need, category, vocab),
        probes=probes,
        product_type=product_type,
        head=compound[1] if compound else _english_head(product_type),
        unknown=unknown_names(need, vocab) if fresh else (),
        models=tuple(f"{name} {num}" for name, num in models),
        without_models=strict.model_copy(update={"require_terms": [*musts, *kind], "top_k": show}) if models else None,
    )


_LATIN_WORD = re.compile(r"[a-z][a-z0-9'&.-]{2,}", re.IGNORECASE)
_NOT_NAMES = frozenset({"yuan", "rmb", "cny", "usd", "dollar", "dollars", "bucks", "please", "pls", "thanks"})


def unknown_names(need: Need, vocab: Vocabulary) -> tuple[str, ...]:
    """Latin words of the query (brand and model names: Gucci, tasman) that no product holds,
    while the query's other words are known: the odd one out is what the shop does not carry.
    A query none of whose words are known (English on a Chinese catalog) is left to the dense
    leg, which matches across languages."""
    if vocab.term_count is None or not need.query:
        return ()
    count = vocab.term_count

    def known(word: str) -> bool:
        return any(count(t) > 0 for t in vocab.tokenize(word) if not t.startswith("#"))

    unknown = [
        w
        for w in _LATIN_WORD.findall(need.query)
        if w.casefold() not in _NOT_NAMES and w.casefold() not in EN_STOPWORDS and not known(w)
    ]
    rest = need.query
    for u in unknown:
        rest = rest.replace(u, " ")
    others = [w for w in rest.split() if w.strip()]
    if unknown and any(known(w) for w in others):
        return tuple(unknown)
    return ()


def _compound(query: str, category: str | None) -> tuple[str, str] | None:
    """(compound, head) when ``category`` is followed in the query by a product head: the query
    "tasman蛋糕鞋" with the category 蛋糕 asks for 蛋糕鞋, whose head is 鞋."""
    if not category or not query:
        return None
    at = query.find(category)
    if at < 0:
        return None
    tail = ""
    for ch in query[at + len(category) :]:
        if not HAS_CJK.match(ch):
            break
        tail += ch
    if tail and tail[-1] in HEAD_CHARS and len(tail) <= 3:
        return category + tail, tail
    return None


def _english_head(product_type: str | None) -> str | None:
    """The last word of an English product type ("hiking boots" -> "boots")."""
    if not product_type or not product_type.isascii():
        return None
    words = product_type.split()
    return words[-1] if len(words) > 1 else None


def type_spellings(product_type: str) -> list[str]:
    """How a title or category may name a product type: the word, its other-language forms, and
    for an English phrase its head noun without a plural s ("hiking boots" -> "boot")."""
    out = [product_type, *alternatives(product_type)]
    words = product_type.split()
    if words and words[-1].isascii():
        head = words[-1].casefold()
        out.append(head[:-1] if head.endswith("s") and len(head) > 3 else head)
    return list(dict.fromkeys(w.casefold() for w in out if w))


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
        return (
            f"放宽价格可以找到，最低 {money(low)} 起"
            if zh
            else f"without the price limit there are matches from {money(low)}"
        )
    if probe.kind == "brands":
        return "其他品牌有类似商品" if zh else "other brands have similar products"
    if probe.kind == "excluded":
        return "去掉排除条件可以找到一些" if zh else "dropping the exclusions gives some matches"
    return None

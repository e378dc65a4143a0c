"""The deterministic intent parser: ``parse_rules`` reads one message into a ``ShoppingIntent``.

The steps, each on the NFKC, case-folded text and each blanking what it used (see the package
docstring for the whole story): 1. references to shown products; 2. prices, sort and relative
price; 3. negations (``assistant.rules.negations``); 4. the catalog vocabulary and the shipped
lexicons; 5. the relation to the conversation, and the free-text query.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from assistant.facets import (
    AUDIENCE_WORDS,
    FacetIndex,
    Mention,
    builtin_group,
    normalise_text,
    says,
    scan_builtins,
)
from assistant.intent import PriceChange, Relation, ShoppingIntent
from assistant.rules.lexicon import load_lexicon
from assistant.rules.message import MessageState, add_unique
from assistant.rules.negations import read_negations
from assistant.rules.numbers import model_names, parse_number, parse_ordinal
from assistant.rules.occasion import hobby_products, read_occasion
from assistant.rules.patterns import (
    ADDON,
    BARE_RANGE,
    BARE_REF,
    BLANK,
    BRAND_FREE,
    BUDGET_FREE,
    BUDGET_TO,
    CHEAPER,
    COMPARE,
    CURRENCIES,
    DEICTIC,
    EN_ANAPHORA,
    EN_COMPARATIVES,
    EN_FIRST_N,
    EN_JUNK,
    EN_LAST,
    EN_ORDINAL,
    FILLER_EN,
    FILLER_ZH,
    NON_PREFIX,
    NUMBERED,
    OTHER_BRAND,
    PICK_DETAIL,
    PRICE_PATTERNS,
    PRICIER,
    PUNCT,
    REFERENCE_TALK,
    REPLACE,
    SOFT_REPLACE,
    SORT_PATTERNS,
    ZH_FIRST_N,
    ZH_LAST,
    ZH_ORDINAL,
)
from retrieval.tokenize import EN_STOPWORDS, jieba_tokenizer
from shopassist.models import Sort, split_category
from shopassist.text import HAS_CJK, ONLY_CJK, detect_language

__all__ = ["APPROX_BAND", "MAX_MESSAGE_CHARS", "parse_rules"]

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 500  # longer messages are cut: a shopping request never needs more, and it bounds the time
APPROX_BAND = 0.2  # "200左右" / "around $50" means ±20 %


def parse_rules(
    message: str,
    facets: FacetIndex | None = None,
    *,
    previous: ShoppingIntent | None = None,
    shown_count: int = 0,
) -> ShoppingIntent:
    """Parse one shopper message into a ``ShoppingIntent`` with rules and the catalog vocabulary.

    ``facets`` supplies the catalog's categories, brands and attribute values (without it only
    built-in words and the shipped lexicons are known). ``previous`` is the intent so far, used
    to tell a refinement from a new need; ``shown_count`` is how many products are on screen,
    used for "the last one" and to drop references past the end. The result describes this
    message only; merging it into the conversation is the caller's job.

    Never raises: on an internal error it logs and returns the message as a plain query.
    """
    try:
        text = message if isinstance(message, str) else ("" if message is None else str(message))
        return _parse(text, facets, previous, max(0, int(shown_count or 0)))
    except Exception:  # the fallback path must answer whatever happens
        log.exception("rule parser failed on %r", message)
        try:
            text = str(message)[:MAX_MESSAGE_CHARS]
            return ShoppingIntent(query=PUNCT.sub(" ", text).strip(), language=detect_language(text))
        except Exception:
            return ShoppingIntent()


def _parse(message: str, facets: FacetIndex | None, previous: ShoppingIntent | None, shown: int) -> ShoppingIntent:
    norm = normalise_text(message[:MAX_MESSAGE_CHARS]).replace(BLANK, " ")
    norm = NON_PREFIX.sub("not ", norm)  # "non-leather" is "not leather"
    st = MessageState(norm=norm, work=list(norm))
    language = detect_language(norm)

    _references(st, shown)
    for m in BUDGET_TO.finditer(st.text()):
        value = parse_number(m.group("n"))
        if value is not None:
            st.max_price = value
            st.blank(m.start(), m.end())
    _prices(st)
    for m in BUDGET_FREE.finditer(st.text()):
        st.clear_price = True
        st.blank(m.start(), m.end())
    for pattern, flag in ((BRAND_FREE, "clear_brands"), (OTHER_BRAND, "other_brand")):
        for m in pattern.finditer(st.text()):
            setattr(st, flag, True)
            st.blank(m.start(), m.end())
    _sort_and_relative(st)
    for pattern, flag in ((REPLACE, "replace"), (SOFT_REPLACE, "soft_replace")):
        for m in pattern.finditer(st.text()):
            setattr(st, flag, True)
            if flag == "replace" or m.group(0).startswith(("how", "what")):
                st.blank(m.start(), m.end())
            else:  # 那红色的呢: keep the value, drop the frame
                st.blank(m.start(), m.start() + 1)
                st.blank(m.end() - 2, m.end())
    occ = read_occasion(st)
    kept_products = read_negations(st, facets)

    positive = hobby_products(st.text()) if occ.interest else st.text()  # "喜欢化妆", not 化妆台
    mentions = facets.scan(positive) if facets is not None else scan_builtins(positive)
    lex_brands, lex_products = _lexicon_words(positive, mentions, facets)
    # a lexicon product word swallows the built-in words inside it (羽绒服 is no 羽绒 requirement)
    mentions = [
        m for m in mentions if not any(m.start >= s and m.end <= e and m.kind != "category" for s, e in lex_products)
    ]

    # -- category --------------------------------------------------------------------------
    category: str | None = None
    category_words: list[str] = []
    if facets is not None:
        category = facets.best_category(positive)
    chosen_levels = {lv.casefold() for lv in split_category(category or "")}
    product_words = [m.value for m in mentions if m.kind == "product"] + [positive[s:e] for s, e in lex_products]
    product_words += kept_products
    if category is None and product_words:
        category = max(product_words, key=len)
    if category:
        category_words.append(split_category(category)[-1])

    # -- brands and required ---------------------------------------------------------------
    brands: list[str] = []
    required: list[str] = []
    for mention in mentions:
        if mention.kind == "brand":
            add_unique(brands, mention.value)
        elif mention.kind == "category":
            # a level outside the chosen category that is also an attribute (儿童 in 儿童牛仔裤)
            if mention.value.casefold() not in chosen_levels and (
                builtin_group(mention.text) or AUDIENCE_WORDS.get(mention.text)
            ):
                add_unique(required, mention.text)
        elif (
            mention.kind in ("value", "colour", "audience", "material", "size")
            and mention.value.casefold() not in chosen_levels
        ):
            add_unique(required, mention.value)
    for b in lex_brands:
        add_unique(brands, b)
    brands = [b for b in brands if b.casefold() not in {x.casefold() for x in st.exclude_brands}]
    required = [r for r in required if r.casefold() not in {x.casefold() for x in st.excluded}]

    # -- query -----------------------------------------------------------------------------
    query = _clean_query(positive, mentions)
    if not query and category_words:
        query = category_words[0]
    elif category_words and not says(query, category_words[0]) and not any(says(query, w) for w in product_words):
        query = f"{query} {category_words[0]}".strip()

    # -- relation --------------------------------------------------------------------------
    constraints = bool(
        required
        or brands
        or st.excluded
        or st.exclude_brands
        or st.min_price is not None
        or st.max_price is not None
        or st.price_change
        or st.sort != Sort.relevance
        or st.clear_price
        or st.clear_brands
        or st.other_brand
    )
    for skin in occ.skin:
        add_unique(required, skin)
    has_product = bool(category or product_words)
    relation, refs = _relation(st, shown, previous, category, product_words, has_product, constraints, positive)
    said_models = model_names(positive)
    if previous is not None and said_models and said_models != model_names(previous.query) and not st.refs:
        relation = Relation.new  # "那iphone13有吗" after iPhone 15: another product, not an edit
    if (
        relation == Relation.new
        and previous is not None
        and previous.occasion
        and not occ.gift
        and (occ.interest or occ.skin or (has_product and not said_models and language == previous.language))
    ):
        relation = Relation.refine  # "他平时爱喝咖啡" after a gift for him: the gift narrows, budget kept

    if relation in (Relation.pick, Relation.compare) and not has_product:
        query = _clean_query(REFERENCE_TALK.sub(" ", positive), [])

    return ShoppingIntent(
        query=query,
        category=category,
        required=required,
        excluded=st.excluded,
        min_price=st.min_price,
        max_price=st.max_price,
        currency=st.currency,
        price_change=st.price_change,
        brands=brands,
        exclude_brands=st.exclude_brands,
        sort=st.sort,
        language=language,
        relation=relation,
        references=refs,
        clear_brands=st.clear_brands,
        clear_price=st.clear_price,
        avoid_shown_brands=st.other_brand,
        occasion=occ.text(),
    )


# -- step 1: references ---------------------------------------------------------------------------
def _references(st: MessageState, shown: int) -> None:
    """Ordinals and numbered references to shown products; comparison cues."""
    text = st.text()
    compare_hits = list(COMPARE.finditer(text))
    st.compare = bool(compare_hits)
    refs: list[tuple[int, int]] = []  # (position, reference)

    def take(m: re.Match[str], values: Iterable[int]) -> None:
        for v in values:
            refs.append((m.start(), v))
        st.blank(m.start(), m.end())

    for m in ZH_ORDINAL.finditer(text):
        n = parse_ordinal(m.group("n"))
        if n is None or n <= 0:
            continue
        if m.group("back"):
            if shown:
                take(m, [shown - n + 1])
            else:
                st.blank(m.start(), m.end())
            continue
        take(m, [n])
    text = st.text()
    for m in ZH_FIRST_N.finditer(text):
        n = parse_ordinal(m.group("n")) or 0
        take(m, range(1, n + 1))
    for m in EN_FIRST_N.finditer(st.text()):
        n = parse_ordinal(m.group("n")) or 0
        take(m, range(1, n + 1))
    for pattern in (ZH_LAST, EN_LAST):
        for m in pattern.finditer(st.text()):
            take(m, [shown] if shown else [])
            st.pick_cue = True
    for m in EN_ORDINAL.finditer(st.text()):
        if not (m.group("the") or m.group("noun") or st.compare):
            continue  # "first time buyer" is no reference
        n = parse_ordinal(m.group("n"))
        if n:
            take(m, [n])
    for m in NUMBERED.finditer(st.text()):
        take(m, [int(m.group("n"))])
    if st.compare:
        for m in BARE_RANGE.finditer(st.text()):
            a, b = int(m.group("a")), int(m.group("b"))
            if 1 <= a < b <= 20:
                take(m, range(a, b + 1))
        for m in BARE_REF.finditer(st.text()):
            n = int(m.group("n"))
            if 1 <= n <= 20:
                take(m, [n])
        for m in compare_hits:
            st.blank(m.start(), m.end())
    refs.sort()
    out: list[int] = []
    for _, v in refs:
        if v >= 1 and (not shown or v <= shown) and v not in out:
            out.append(v)
    st.refs = out
    if refs:
        st.pick_cue = True
    text = st.text()
    st.detail = bool(PICK_DETAIL.search(text))
    st.deictic = bool(DEICTIC.search(text))


# -- step 2: prices, sort, relative price --------------------------------------------------------
def _prices(st: MessageState) -> None:
    for kind, pattern in PRICE_PATTERNS:
        for m in pattern.finditer(st.text()):
            a = parse_number(m.group("a")) if m.group("a") else None
            b = parse_number(m.group("b")) if "b" in pattern.groupindex and m.group("b") else None
            if a is None:
                continue
            span = m.group(0)
            currency = next((code for rx, code in CURRENCIES if rx.search(span)), None)
            if kind == "range":
                if b is None:
                    continue
                lo, hi = min(a, b), max(a, b)
                if currency is None and hi < 10 and not span.startswith(("between", "从", "在", "介于")):
                    continue  # "1-3" is more likely a reference or a size than a price
                st.min_price, st.max_price = lo, hi
            elif kind == "approx":
                st.min_price, st.max_price = round(a * (1 - APPROX_BAND), 2), round(a * (1 + APPROX_BAND), 2)
            elif kind == "max":
                st.max_price = a
            else:
                st.min_price = a
            st.currency = st.currency or currency
            st.blank(m.start(), m.end())


def _sort_and_relative(st: MessageState) -> None:
    for sort, pattern in SORT_PATTERNS:
        for m in pattern.finditer(st.text()):
            if st.sort == Sort.relevance:
                st.sort = sort
            st.blank(m.start(), m.end())
    for change, pattern in ((PriceChange.pricier, PRICIER), (PriceChange.cheaper, CHEAPER)):
        for m in pattern.finditer(st.text()):
            st.price_change = st.price_change or change
            st.blank(m.start(), m.end())


# -- step 4: lexicon words ------------------------------------------------------------------------
_TITLE_WORD_NOT_BRAND = 3  # a lexicon "brand" on this many of the catalog's titles describes products


def _lexicon_words(
    text: str, mentions: list[Mention], facets: FacetIndex | None = None
) -> tuple[list[str], list[tuple[int, int]]]:
    """Brands and product words (as spans) of the shipped lexicons, read from jieba words so
    that 破洞 inside 破洞牛仔裤 is not taken for something it shares characters with. Brands only
    where the catalog vocabulary explained nothing, and not a word the catalog's own titles use
    on several products (the lexicon lists 大容量, 全球购, 学院风 as brands: in this shop they
    describe products, and read as a brand they emptied "保温杯 大容量"); product words anywhere
    except inside a catalog phrase, since a lexicon product word may contain a built-in word (羽绒服)."""
    if not HAS_CJK.search(text):
        return [], []
    catalog = [(m.start, m.end) for m in mentions if m.kind in ("category", "brand", "product", "value")]
    others = [(m.start, m.end) for m in mentions]
    lex = load_lexicon()
    brands: list[str] = []
    products: list[tuple[int, int]] = []
    pos = 0
    for word in jieba_tokenizer().lcut(text, HMM=False):
        start, pos = pos, pos + len(word)
        if len(word) < 2 or not ONLY_CJK.match(word):
            continue
        if word in lex.products:
            if not any(s < pos and start < e for s, e in catalog):
                products.append((start, pos))
        elif (
            word in lex.brands
            and not any(s < pos and start < e for s, e in others)
            and (facets is None or facets.title_word_count(word) < _TITLE_WORD_NOT_BRAND)
        ):
            add_unique(brands, word)
    return brands, products


# -- step 5: relation and query -------------------------------------------------------------------
def _relation(
    st: MessageState,
    shown: int,
    previous: ShoppingIntent | None,
    category: str | None,
    product_words: list[str],
    has_product: bool,
    constraints: bool,
    positive: str,
) -> tuple[Relation, list[int]]:
    refs = st.refs
    if st.compare and (len(refs) >= 2 or (shown and not has_product)):
        return Relation.compare, refs
    if len(refs) >= 2 and not has_product:
        return Relation.compare, refs
    if refs or (st.pick_cue and shown and not has_product):
        return Relation.pick, refs[:1] if refs else ([1] if shown == 1 else [])
    # "详细说说" / "tell me more about it" / "这款" with products on screen: the one in focus
    talks_about_one = (st.detail and (st.deictic or not constraints)) or (
        st.deictic and not constraints and not _content_words(positive)
    )
    if shown and not has_product and talks_about_one:
        return Relation.pick, [1] if shown == 1 else []
    if previous is None:
        return Relation.new, []
    new_product = _is_new_product(previous, category, product_words)
    if st.replace:
        return Relation.replace, []
    if st.soft_replace and not new_product:
        return Relation.replace, []
    if new_product:
        return Relation.new, []
    if not has_product and ADDON.match(positive):
        return Relation.refine, []
    if not has_product and not constraints:
        leftover = _content_words(positive)
        if leftover and not (set(leftover) & (EN_ANAPHORA | EN_COMPARATIVES)) and not HAS_CJK.search(positive):
            return Relation.new, []  # "show me tents": an English product word the catalog lacks
    return Relation.refine, []


def _is_new_product(previous: ShoppingIntent, category: str | None, product_words: list[str]) -> bool:
    """A product/category word that the previous intent did not already have."""
    said = [w for w in [category, *product_words] if w]
    if not said:
        return False
    before = " ".join(x for x in (previous.category or "", previous.query) if x)
    if not before:
        return True
    return not any(says(before, (split_category(word) or [word])[-1]) for word in said)


def _content_words(text: str) -> list[str]:
    """English words left after fillers and stop words: what the rules did not understand."""
    cleaned = FILLER_EN.sub(" ", text.replace(BLANK, " "))
    return [w for w in re.findall(r"[a-z][a-z'-]+", cleaned) if w not in EN_STOPWORDS and w not in EN_JUNK]


def _strip_zh_fillers(text: str) -> str:
    """Chinese fillers removed only where they are whole jieba words (or runs of them), so 的
    goes from 自然堂的面霜 but stays in 美的空调 and 目的地."""
    if not HAS_CJK.search(text):
        return text
    bounds = {0}
    pos = 0
    for word in jieba_tokenizer().lcut(text, HMM=False):
        pos += len(word)
        bounds.add(pos)
    return FILLER_ZH.sub(lambda m: " " if m.start() in bounds and m.end() in bounds else m.group(0), text)


def _clean_query(text: str, mentions: list[Mention]) -> str:
    """The free-text query: the positive text without fillers and punctuation. Recognised
    phrases are kept verbatim, so the filler 的 is not cut out of the brand 美的."""
    parts: list[str] = []
    pos = 0
    for m in [*mentions, None]:
        end = m.start if m is not None else len(text)
        if end < pos:
            continue
        gap = text[pos:end].replace(BLANK, " ")
        gap = FILLER_EN.sub(" ", _strip_zh_fillers(gap))
        parts.append(PUNCT.sub(" ", gap))
        if m is not None:
            parts.append(m.text)
            pos = m.end
    return " ".join("".join(parts).split())

"""``FacetIndex``: the catalog's own facet vocabulary, counted per category and kept up to date.

Per-category statistics are kept for every prefix path ("服饰", "服饰 > 女装", ...) and every level
name ("女装", "牛仔裤"), case-folded, so a caller may name a category either way. Each vocabulary
(levels, brands, attribute values, product words) is a ``PhraseMatcher`` kept in step by
reference counts, so ``update``/``remove`` of one product cost about 0.15 ms (mostly jieba over
its title) and no rebuild is ever needed. Expansion lists are sorted once per category and cached
until a product of that category changes.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from assistant.facets.entries import Entry, bump_count, bump_table, product_entry, top
from assistant.facets.mentions import Mention, display_surface, scan_builtin_tokens, scan_builtins
from assistant.facets.phrases import (
    PhraseMatcher,
    fold_word,
    normalise_text,
    phrase_key,
    says_normalised,
    select_spans,
    tokens_and_words,
    word_bounds,
)
from assistant.facets.vocabulary import (
    AUDIENCE_WORDS,
    BUILTIN_GROUPS,
    BUILTIN_MATCHER,
    COLOUR_WORDS,
    GROUP_BRAND,
    GROUP_COLOUR,
    LEVEL_GENDER,
    audience_class,
    builtin_group,
    canonical_group,
)
from assistant.intent import Facet
from retrieval import tokenize as _tokenize_module
from retrieval.tokenize import jieba_tokenizer
from shopassist import snapshot
from shopassist.models import CATEGORY_SEP, Product, split_category
from shopassist.text import ONLY_CJK

__all__ = ["FacetIndex"]

_DEGREE_BEFORE = re.compile(r"(?:很|好|真|太|最|超|挺|蛮|非常|特别|十分|更|多么)$")
# Values that read as noise in a suggestion list (years, percentages, numeric ranges).
_NOISY_EXPANSION = re.compile(r"(?:19|20)\d\d|%|\d\s*[-~至到]\s*\d|^\d+(?:\.\d+)?$")
_MAX_PER_NAME = 3  # suggestion diversity: a list of eight capacities helps nobody
# An attribute value on fewer than this share of the category's products (SPF15 on 3 of 300 face
# creams) is listed after the frequent title words (保湿 on 150), not before them.
_STRONG_SHARE = 0.03
_CACHE_ATTRS = 300
_CACHE_WORDS = 150
# a catalog at least this big has its index saved (shopassist.snapshot) for the next process
SNAPSHOT_MIN_PRODUCTS = 2000


def _facets_code() -> str:
    import jieba

    from assistant.facets import entries, mentions, phrases, vocabulary

    modules = [entries, mentions, phrases, vocabulary, _tokenize_module, sys.modules[__name__]]
    return f"{snapshot.code_fingerprint(modules)}:{jieba.__version__}"


@dataclass(slots=True)
class _Stats:
    size: int = 0
    attrs: Counter[tuple[str, str]] = field(default_factory=Counter)
    brands: Counter[str] = field(default_factory=Counter)
    words: Counter[str] = field(default_factory=Counter)


class _Ranked(NamedTuple):
    path: str
    score: float
    leaf: str  # the path's last level name
    contradicts: bool  # its gendered level disagrees with an audience word in the text
    modifier_only: bool  # only built-in modifier words (儿童, 不锈钢) of the text name its levels


@dataclass(slots=True)
class _Cached:
    attrs: list[tuple[str, str, int]]
    words: list[tuple[str, int]]
    brands: list[tuple[str, int]]
    size: int


class FacetIndex:
    """Counts of the catalog's facets, per category, and the vocabularies built from them.

    Build once with ``from_products`` (about 2 s for 10k products on 2 cores, mostly jieba over
    titles) and keep it in step with ``update``/``remove``. Read methods are cheap: expansions
    are cached per category, matching is a few dict probes per token.
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._stats: dict[str, _Stats] = {}
        self._cache: dict[str, _Cached] = {}
        self._paths: Counter[str] = Counter()
        self._path_case: dict[str, Counter[str]] = {}
        self._level_paths: dict[tuple[str, ...], Counter[str]] = {}
        self._level_display: dict[tuple[str, ...], Counter[str]] = {}
        self._brand_display: dict[tuple[str, ...], Counter[str]] = {}
        self._brand_full: Counter[str] = Counter()
        self._title_words: Counter[str] = Counter()  # every category's title words, together
        self._value_names: dict[tuple[str, ...], Counter[str]] = {}
        self._value_display: dict[tuple[str, ...], Counter[str]] = {}
        self._product_words: dict[tuple[str, ...], Counter[str]] = {}
        self._levels_m = PhraseMatcher()
        self._brands_m = PhraseMatcher()
        self._values_m = PhraseMatcher()
        self._products_m = PhraseMatcher()
        self._freq_table: dict[str, int] | None = None

    @property
    def _freq(self) -> dict[str, int]:
        # jieba's word frequencies (shared with the tokenizer), needed only to count a product
        if self._freq_table is None:
            self._freq_table = jieba_tokenizer().FREQ
        return self._freq_table

    def __getstate__(self) -> dict[str, object]:
        # a snapshot holds the counts, not jieba's dictionary (shared, ~350k words)
        return {k: v for k, v in self.__dict__.items() if k != "_freq_table"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._freq_table = None

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_products(cls, products: Iterable[Product]) -> FacetIndex:
        index = cls()
        for product in products:
            index.update(product)
        return index

    @classmethod
    def cached(cls, home: Path, catalog_key: str, products: Callable[[], Iterable[Product]]) -> FacetIndex:
        """The index of the catalog identified by ``catalog_key`` (``Catalog.catalog_fingerprint``):
        its snapshot under ``home`` when one was saved for exactly that catalog state and this
        code (~0.4 s for 10k products), else built from ``products()`` (~4 s) and saved."""
        path = snapshot.cache_path(home, "facet-index")
        key = {"kind": "facet-index", "catalog": catalog_key, "code": _facets_code()}
        loaded = snapshot.load(path, key)
        if isinstance(loaded, cls):
            return loaded
        index = cls.from_products(products())
        if len(index) >= SNAPSHOT_MIN_PRODUCTS:
            snapshot.save(path, key, index)
        return index

    def __len__(self) -> int:
        return len(self._entries)

    def update(self, product: Product) -> None:
        """Add a product, or replace the version already counted under its id."""
        if product.id in self._entries:
            self.remove(product.id)
        entry = product_entry(product, self._freq)
        self._entries[product.id] = entry
        self._apply(entry, +1)

    def remove(self, product: Product | str) -> bool:
        """Forget a product (by object or id); False when it was not counted."""
        pid = product if isinstance(product, str) else product.id
        entry = self._entries.pop(pid, None)
        if entry is None:
            return False
        self._apply(entry, -1)
        return True

    def _apply(self, e: Entry, sign: int) -> None:
        for key in e.keys:
            self._cache.pop(key, None)
            st = self._stats.get(key)
            if st is None:
                st = self._stats[key] = _Stats()
            st.size += sign
            if st.size <= 0:
                del self._stats[key]
                continue
            for pair in e.pairs:
                bump_count(st.attrs, pair, sign)
            if e.brand:
                bump_count(st.brands, e.brand, sign)
            for w in e.words:
                bump_count(st.words, w, sign)
        for lkey, display, path in e.levels:
            bump_table(self._level_paths, lkey, path, sign)
            bump_table(self._level_display, lkey, display, sign)
            self._matcher_bump(self._levels_m, lkey, sign)
        for path in e.paths:
            bump_count(self._paths, path, sign)
            bump_table(self._path_case, path.casefold(), path, sign)
        if e.brand:
            bump_count(self._brand_full, e.brand, sign)
        for w in e.words:
            bump_count(self._title_words, w, sign)
        for bkey, display in e.brand_names:
            bump_table(self._brand_display, bkey, display, sign)
            self._matcher_bump(self._brands_m, bkey, sign)
        for name, value in e.pairs:
            vkey = phrase_key(value)
            bump_table(self._value_names, vkey, name, sign)
            bump_table(self._value_display, vkey, value, sign)
            self._matcher_bump(self._values_m, vkey, sign)
        for word in e.product_words:
            pkey = phrase_key(word)
            bump_table(self._product_words, pkey, word, sign)
            self._matcher_bump(self._products_m, pkey, sign)

    @staticmethod
    def _matcher_bump(matcher: PhraseMatcher, key: tuple[str, ...], sign: int) -> None:
        if sign > 0:
            matcher.add(key)
        else:
            matcher.discard(key)

    # -- vocabularies ------------------------------------------------------------------------
    def title_word_count(self, word: str) -> int:
        """On how many products' titles ``word`` is a (jieba) word, brand and category names aside."""
        return self._title_words.get(word, 0)

    def brand_names(self) -> list[str]:
        """Every recognisable brand name (the '/'-separated names and full strings)."""
        return sorted(top(c) for c in self._brand_display.values())

    def brands(self) -> Counter[str]:
        """Full brand strings with product counts."""
        return Counter(self._brand_full)

    def category_paths(self) -> Counter[str]:
        """Every category path and prefix with product counts."""
        return Counter(self._paths)

    def category_levels(self) -> list[str]:
        """Every recognisable category level name."""
        return sorted(top(c) for c in self._level_display.values())

    def attribute_values(self) -> dict[str, list[str]]:
        """Attribute value -> the attribute names it occurs under (most frequent first)."""
        return {top(self._value_display[k]): [n for n, _ in c.most_common()] for k, c in self._value_names.items()}

    def colour_words(self) -> set[str]:
        """Built-in colour words plus the catalog's values of colour attributes."""
        out = set(COLOUR_WORDS)
        for key, names in self._value_names.items():
            if any(canonical_group(n) == GROUP_COLOUR for n in names):
                out.add(top(self._value_display[key]))
        return out

    @staticmethod
    def audience_words() -> dict[str, str]:
        """Audience word -> class ('f', 'm', 'k' children, 'o' other)."""
        return dict(AUDIENCE_WORDS)

    def is_brand(self, name: str) -> bool:
        return phrase_key(name) in self._brands_m

    def brand_display(self, name: str) -> str | None:
        """The catalog's spelling of a brand name ('chando' -> 'CHANDO'), or None."""
        c = self._brand_display.get(phrase_key(name))
        return top(c) if c else None

    def is_product_word(self, word: str) -> bool:
        key = phrase_key(word)
        return key in self._products_m or key in self._levels_m

    # -- scanning ----------------------------------------------------------------------------
    def scan(self, text: str) -> list[Mention]:
        """Known phrases in a normalised text, in text order. Category levels are matched first,
        then brands, product words, attribute values and built-in groups, each pass only in what
        the earlier ones left, so "女装" is a category and not the audience word 女, and "羽绒服"
        a product rather than the material 羽绒."""
        toks, words = tokens_and_words(text)
        bounds = word_bounds(text, toks)
        taken = [False] * len(toks)
        out: list[Mention] = []
        passes: tuple[tuple[str, PhraseMatcher], ...] = (
            ("category", self._levels_m),
            ("brand", self._brands_m),
            ("product", self._products_m),
        )
        for kind, matcher in passes:
            for i, j in matcher.find(words, taken, bounds):
                key = tuple(words[i:j])
                start, end = toks[i][1], toks[j - 1][2]
                group: str | None = None
                if kind == "category":
                    value = top(self._level_display[key])
                elif kind == "brand":
                    if _DEGREE_BEFORE.search(text, 0, start) and ONLY_CJK.match(text[start:end]):
                        continue  # 很美的裙子: an adverb before it makes 美的 a word, not the brand
                    value = top(self._brand_display[key])
                    group = GROUP_BRAND
                else:
                    value = top(self._product_words[key])
                out.append(Mention(kind, start, end, text[start:end], value, group))
                for k in range(i, j):
                    taken[k] = True
        # catalog values and built-in words compete on length: 女士 (built-in) beats the catalog's
        # 女, the catalog's 雾霾蓝色 beats the built-in 蓝色
        spans = self._values_m.candidates(words, taken) + BUILTIN_MATCHER.candidates(words, taken)
        for i, j in select_spans(spans, len(words), bounds):
            key = tuple(words[i:j])
            start, end = toks[i][1], toks[j - 1][2]
            if key in self._values_m:
                value = top(self._value_display[key])
                out.append(Mention("value", start, end, text[start:end], value, self.facet_group(value)))
            else:
                kind, group = BUILTIN_GROUPS[key]
                out.append(Mention(kind, start, end, text[start:end], display_surface(text[start:end]), group))
            for k in range(i, j):
                taken[k] = True
        out.extend(scan_builtin_tokens(text, toks, words, taken))
        out.sort(key=lambda m: m.start)
        return out

    # -- categories --------------------------------------------------------------------------
    def categories_for(self, text: str) -> list[str]:
        """Category paths whose level names occur in ``text``, best first.

        A path is a candidate when its *last* level is named in the text; it scores the
        characters of every level name of the path found in the text (so "女装大衣" prefers
        "服饰 > 女装 > 大衣" to "服饰 > 女装"), plus half a point when its gendered level
        (女装, Men) agrees with an audience word in the text and minus half when it contradicts
        one ("牛仔裤女" -> the 女装 jeans before the 男装 ones). Ties go to the larger category.
        """
        exact = self._known_path(text)
        ranked = [r.path for r in self._rank_categories(normalise_text(text))]
        if exact:  # a path is its own best answer
            ranked = [exact] + [p for p in ranked if p != exact]
        return ranked

    def _known_path(self, text: str) -> str | None:
        """The catalog's spelling of ``text`` when it is a category path (any case), else None."""
        if not text or ">" not in text:
            return None
        spelled = self._path_case.get(CATEGORY_SEP.join(split_category(text)).casefold())
        return top(spelled) if spelled else None

    def _rank_categories(self, norm: str) -> list[_Ranked]:
        """Candidate paths for a normalised text, best first."""
        toks, words = tokens_and_words(norm)
        spans = self._levels_m.find(words, None, word_bounds(norm, toks))
        if not spans:
            return []
        matched: dict[tuple[str, ...], float] = {}
        last_end: dict[tuple[str, ...], int] = {}
        for i, j in spans:
            key = tuple(words[i:j])
            weight = float(toks[j - 1][2] - toks[i][1])
            if key in BUILTIN_GROUPS:
                weight /= 2  # 宝宝, 儿童, 女装's 女: a level that is also a modifier is weaker evidence
            matched[key] = max(matched.get(key, 0.0), weight)
            last_end[key] = toks[j - 1][2]
        genders = {
            c for m in scan_builtin_tokens(norm, toks, words, [False] * len(toks)) if (c := audience_class(m.text))
        }
        scored: dict[str, tuple[float, int, _Ranked]] = {}
        for key in matched:
            for path in self._level_paths.get(key, ()):
                if path in scored:
                    continue
                levels = split_category(path)
                score = 0.0
                path_genders: set[str] = set()
                modifier_only = True
                for lv in levels:
                    names = [lv] + ([p for p in lv.split("/") if p.strip()] if "/" in lv else [])
                    hits = [k for k in map(phrase_key, names) if k in matched]
                    score += max((matched[k] for k in hits), default=0)
                    modifier_only = modifier_only and all(k in BUILTIN_GROUPS for k in hits)
                    for pattern, g in LEVEL_GENDER:
                        if pattern.search(fold_word(lv.casefold())):
                            path_genders.add(g)
                contradicts = bool(genders and path_genders and not genders & path_genders)
                if genders and path_genders:
                    score += -0.5 if contradicts else 0.5
                scored[path] = (score, last_end[key], _Ranked(path, score, levels[-1], contradicts, modifier_only))
        # ties: the later mention (Chinese puts the head noun last: 宝宝奶粉 is milk powder), then
        # the larger category
        ranked = sorted(scored.items(), key=lambda kv: (-kv[1][0], -kv[1][1], -self._paths.get(kv[0], 0), kv[0]))
        return [r for _, (_, _, r) in ranked]

    def best_category(self, text: str) -> str | None:
        """The category to search in: the single best path, or its level name when two paths tie
        (大衣 under 女装 and 男装 alike) or when the best path contradicts the audience in the
        text; the category filter matches a level name in any path. None when the text names
        no category, or names one only with a modifier word (儿童, 不锈钢)."""
        exact = self._known_path(text)
        if exact:
            return exact
        # a level that is only a modifier word (儿童, 不锈钢) does not make the category on its
        # own: "匡威儿童鞋" is shoes for children, not the catalog's 母婴玩具 > 儿童
        ranked = [r for r in self._rank_categories(normalise_text(text)) if not r.modifier_only]
        if not ranked:
            return None
        best = ranked[0]
        if best.contradicts or (len(ranked) > 1 and ranked[1].score == best.score):
            return best.leaf  # "women coats" where only Men > Coats exists: the level, not the wrong path
        return best.path

    # -- expansions --------------------------------------------------------------------------
    def _resolve(self, category: str | None, query: str) -> str | None:
        if category:
            key = CATEGORY_SEP.join(split_category(category)).casefold()
            if key in self._stats:
                return key
            best = self.best_category(category)
            if best:
                return best.casefold()
        best = self.best_category(query) if query else None
        return best.casefold() if best else None

    def _cached(self, key: str) -> _Cached:
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        st = self._stats[key]
        per_name: Counter[str] = Counter()
        distinct: Counter[str] = Counter()
        for (name, _), n in st.attrs.items():
            per_name[name] += n
            distinct[name] += 1
        # identifier-like attributes (a different value on nearly every product) are not facets
        skip = {n for n, total in per_name.items() if total >= 8 and distinct[n] / total > 0.8}
        attrs = [
            (name, value, n)
            for (name, value), n in st.attrs.most_common()
            if name not in skip and not _NOISY_EXPANSION.search(value)
        ][:_CACHE_ATTRS]
        words = [(w, n) for w, n in st.words.most_common(_CACHE_WORDS) if n >= 2]
        hit = _Cached(attrs, words, st.brands.most_common(50), st.size)
        self._cache[key] = hit
        return hit

    def expansions(
        self, category: str | None, query: str = "", exclude: Iterable[str] = (), limit: int = 8
    ) -> list[Facet]:
        """Refinements that really occur in the intended category, most frequent first:
        attribute values first (at most three per attribute, so one field cannot fill the list),
        then frequent title words (``name='title'``, on two products or more), then attribute
        values too rare to lead (under 3 % of the category); skipping what the query already
        says, what is excluded, and the category's own names.

        ``category`` may be a path, a prefix or a level name; when it is None or unknown the
        category is taken from the query. No category, no expansions: suggestions from the
        whole catalog would be noise.
        """
        if limit <= 0:
            return []
        key = self._resolve(category, query)
        if key is None or key not in self._stats:
            return []
        data = self._cached(key)
        min_count = 2 if data.size >= 10 else 1
        query_norm = normalise_text(query)
        query_key = phrase_key(query_norm)
        avoid = [normalise_text(x) for x in exclude if x and x.strip()]
        avoid += [lv.casefold() for lv in split_category(category or "")]
        avoid += [lv.casefold() for lv in key.split(" > ")]
        seen: set[str] = set()
        # an audience that contradicts the query's ("女士大衣" -> not 男) is no refinement
        wanted = {c for m in scan_builtins(query_norm) if (c := audience_class(m.text)) and c in "fm"}

        def usable(value: str) -> bool:
            low = normalise_text(value)
            if low in seen or any(low == a or (a and a in low) or low in a for a in avoid):
                return False
            other = audience_class(low)
            if wanted and other in ("f", "m") and other not in wanted:
                return False
            return not says_normalised(query_norm, query_key, low)

        out: list[Facet] = []
        per_name: Counter[str] = Counter()
        strong = max(min_count, math.ceil(_STRONG_SHARE * data.size))

        def take_attrs(lo: int, hi: float) -> None:
            for name, value, n in data.attrs:
                if n < lo or len(out) >= limit:
                    break
                if n >= hi or per_name[name] >= _MAX_PER_NAME or not usable(value):
                    continue
                per_name[name] += 1
                seen.add(normalise_text(value))
                out.append(Facet(name=name, value=value, count=n))

        take_attrs(strong, math.inf)
        for word, n in data.words:
            if len(out) >= limit:
                break
            if not usable(word):
                continue
            seen.add(word)
            out.append(Facet(name="title", value=word, count=n))
        take_attrs(min_count, strong)
        return out

    def top_brands(self, category: str | None, query: str = "", limit: int = 8) -> list[Facet]:
        """The most common brands of the intended category (``name='brand'``)."""
        key = self._resolve(category, query)
        if key is None or key not in self._stats:
            return []
        return [Facet(name="brand", value=b, count=n) for b, n in self._cached(key).brands[:limit]]

    def category_size(self, category: str) -> int:
        """Products under a path, prefix or level name (0 when unknown)."""
        st = self._stats.get(CATEGORY_SEP.join(split_category(category)).casefold())
        return st.size if st else 0

    # -- groups ------------------------------------------------------------------------------
    def facet_group(self, value: str) -> str | None:
        """The constraint a value belongs to, so a "replace" knows what it swaps: colours ->
        颜色, audience words -> 适用对象, sizes -> 尺码, materials -> 材质 (built-in, the same for
        Chinese and English words), brands -> 品牌, else the catalog attribute name the value
        occurs under most often (canonicalised: 颜色分类 -> 颜色). None when unknown."""
        if not value or not value.strip():
            return None
        group = builtin_group(value)
        if group:
            return group
        key = phrase_key(value)
        names = self._value_names.get(key)
        if names:
            return canonical_group(names.most_common(1)[0][0])
        if key in self._brands_m:
            return GROUP_BRAND
        return None

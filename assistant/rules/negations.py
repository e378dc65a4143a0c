"""Step 3 of the rule parser: negations (不要X, 别X, 不含X, 非X, 除了X, 没有X的, not/no/without/except X).

X is cut at punctuation or a clause word, split on 和/或/、/or, and each piece is classified with
the catalog vocabulary: a brand goes to ``exclude_brands``, anything else to ``excluded``, and a
product word at the end stays positive, so "不要破洞牛仔裤" excludes 破洞 and still searches 牛仔裤.
"""

from __future__ import annotations

from assistant.facets import FacetIndex, Mention, scan_builtins
from assistant.intent import PriceChange
from assistant.rules.lexicon import load_lexicon
from assistant.rules.message import MessageState, add_unique
from assistant.rules.patterns import (
    BLANK,
    EN_JUNK,
    EN_X,
    EN_X_STOP,
    NEG_EN,
    NEG_PRICE_CHEAPER,
    NEG_PRICE_PRICIER,
    NEG_ZH,
    NEG_ZH_HAVE,
    SPLIT_EN,
    SPLIT_ZH,
    STRIP_EN,
    STRIP_ZH,
    ZH_X,
    ZH_X_STOP,
)
from retrieval.tokenize import EN_STOPWORDS, jieba_tokenizer

__all__ = ["read_negations"]


def read_negations(st: MessageState, facets: FacetIndex | None) -> list[str]:
    """Fill ``excluded``/``exclude_brands``; return product words found at the end of a negated
    phrase, which stay positive (their span is left unblanked)."""
    kept: list[str] = []
    text = st.text()
    spans: list[tuple[int, int, int, str]] = []  # (trigger start, x start, x end, language)
    for m in NEG_ZH_HAVE.finditer(text):
        spans.append((m.start(), m.start("x"), m.end("x"), "zh"))
    for m in NEG_ZH.finditer(text):
        x = ZH_X.match(text, m.end())
        if not x:
            if m.group(0) not in ("别", "非"):
                st.blank(m.start(), m.end())
            continue
        stop = ZH_X_STOP.search(x.group(0))
        end = x.start() + (stop.start() if stop else len(x.group(0)))
        if m.group(0) == "非" and end > x.start():
            # 非 is a prefix of one word: 非转基因大豆油 is soybean oil that is not GM
            end = x.start() + len(jieba_tokenizer().lcut(text[x.start() : end], HMM=False)[0])
        if end > x.start():
            spans.append((m.start(), x.start(), min(end, x.start() + 12), "zh"))
    for m in NEG_EN.finditer(text):
        if m.group(0) == "no" and (m.start() == 0 or not text[: m.start()].strip(BLANK + " ")):
            rest = text[m.end() : m.end() + 2]
            if rest.strip().startswith((",", "!", ".")) or not rest.strip():
                continue  # "No, ..." answers a question; it negates nothing
        x = EN_X.match(text, m.end())
        if not x:
            continue
        stop = EN_X_STOP.search(x.group(0))
        end = x.start() + (stop.start() if stop else len(x.group(0)))
        if x.group(0)[: end - x.start()].strip():
            spans.append((m.start(), x.start(), end, "en"))
    spans.sort()
    last_end = -1
    for trigger, xs, xe, lang in spans:
        if trigger < last_end:
            continue  # a trigger inside an earlier negated phrase ("不要非...")
        phrase = st.norm[xs:xe]
        keep_from = _classify_negated(st, facets, phrase, lang, kept)
        end = xs + keep_from if keep_from is not None else xe
        st.blank(trigger, end)
        last_end = xe
    return kept


def _said_before(prefix: str, lang: str) -> bool:
    """Whether a negated phrase says something before its trailing product word (含/带/有 don't)."""
    return bool((STRIP_ZH if lang == "zh" else STRIP_EN).sub("", prefix.strip(" 的" + BLANK)).strip(" 的"))


def _classify_negated(
    st: MessageState, facets: FacetIndex | None, phrase: str, lang: str, kept: list[str]
) -> int | None:
    """Sort the pieces of a negated phrase into excluded values, excluded brands and a trailing
    product word; return the offset in ``phrase`` where that product word starts (or None)."""
    keep_from: int | None = None
    # a product word at the end of the phrase stays positive: 不要破洞牛仔裤 -> exclude 破洞
    mentions = facets.scan(phrase) if facets is not None else scan_builtins(phrase)
    tail = mentions[-1] if mentions else None
    if tail is not None and tail.kind in ("category", "product") and not phrase[tail.end :].strip(" 的"):
        # ... unless nothing but a filler comes before it: 不要含酒精的 excludes 酒精 itself
        if tail.start > 0 and _said_before(phrase[: tail.start], lang):
            keep_from = tail.start
            kept.append(tail.value)
    elif lang == "zh":
        words = jieba_tokenizer().lcut(phrase, HMM=False)
        lex = load_lexicon()
        if len(words) > 1 and words[-1] in lex.products:
            start = len(phrase) - len(words[-1])
            if _said_before(phrase[:start], lang):
                keep_from = start
                kept.append(words[-1])
    body = phrase[:keep_from] if keep_from is not None else phrase
    pieces = (SPLIT_ZH if lang == "zh" else SPLIT_EN).split(body)
    for piece in pieces:
        piece = piece.strip(" " + BLANK)
        piece = (STRIP_ZH if lang == "zh" else STRIP_EN).sub("", piece).strip()
        if not piece:
            continue
        if NEG_PRICE_CHEAPER.match(piece):
            st.price_change = st.price_change or PriceChange.cheaper
            continue
        if NEG_PRICE_PRICIER.match(piece):
            st.price_change = st.price_change or PriceChange.pricier
            continue
        if lang == "en":
            words = piece.split()
            if len(words) > 3 or all(w in EN_STOPWORDS or w in EN_JUNK for w in words):
                continue
        found = facets.scan(piece) if facets is not None else scan_builtins(piece)
        brand_hits = [m for m in found if m.kind == "brand"]
        if brand_hits and len(brand_hits) == len(found) and _covers(piece, brand_hits):
            for m in brand_hits:
                add_unique(st.exclude_brands, m.value)
            continue
        lex_brand = piece if piece in load_lexicon().brands else None
        if lex_brand:
            add_unique(st.exclude_brands, lex_brand)
            continue
        if found and _covers(piece, found):
            for m in found:
                if m.kind == "brand":
                    add_unique(st.exclude_brands, m.value)
                else:
                    add_unique(st.excluded, m.value if m.kind == "value" else m.text)
            continue
        add_unique(st.excluded, piece)
    return keep_from


def _covers(text: str, mentions: list[Mention]) -> bool:
    """Whether the mentions cover all of the text but spaces and 的."""
    rest = list(text)
    for m in mentions:
        for i in range(m.start, m.end):
            rest[i] = " "
    return not "".join(rest).strip(" 的-")

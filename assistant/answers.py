"""Answers about products on screen, from their records only: a question ("这个适合油皮吗？"), the
details of one product ("第二个详细说说"), a comparison ("compare 1 and 3").

Every answer quotes the record's own words (an attribute "适用肤质：油性肤质", a sentence of the
description, the price); when the record does not say, the answer says so plainly instead of
guessing. Nothing here calls a model: these are the answers the LLM path may rephrase but never
contradict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.synonyms import alternatives
from retrieval.tokenize import jieba_tokenizer
from shopassist.models import Product
from shopassist.text import HAS_CJK, money

# what a question asks about, beyond its words: the record fields and attribute names to look at
ASPECTS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"多少钱|价格|价钱|贵不贵|\bhow much (?:is|are|was|does|do|for|would)\b|\bhow much\s*[?？]?\s*$|\bprice\b|\bcost\b",
            re.I,
        ),
        "price",
    ),
    (
        re.compile(
            r"有货|库存|还有吗|卖完|还剩|剩多少|剩几|多少件|\bin stock\b|\bavailable\b|\bsold out\b|"
            r"\bhow many\b.*\b(?:left|have|got|stock)\b|\bany left\b",
            re.I,
        ),
        "stock",
    ),
    (re.compile(r"什么牌子|哪个牌子|品牌|哪家|\bbrand\b|\bwho makes\b|\bmade by\b", re.I), "brand"),
    (re.compile(r"评分|评价|好评|口碑|\brating\b|\breviews?\b|\brated\b", re.I), "rating"),
]
# question words -> attribute-name hints (an attribute whose name holds the hint answers it)
NAME_HINTS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(r"皮|肤|肌|\bskin\b", re.I), ("肤质", "skin")),
    (re.compile(r"码|尺|大小|\bsize\b|\bfit\b", re.I), ("尺码", "尺寸", "size")),
    (
        re.compile(r"材质|面料|成分|做的|\bmaterial\b|\bmade of\b|\bfabric\b|\bingredients?\b", re.I),
        ("材质", "面料", "成分", "material"),
    ),
    (re.compile(r"颜色|色|\bcolou?rs?\b", re.I), ("颜色", "色", "color", "colour")),
    (re.compile(r"容量|多大|净含量|\bml\b|\bcapacity\b|\bvolume\b", re.I), ("容量", "净含量", "规格", "capacity")),
    (re.compile(r"年龄|岁|\bage\b|\bkids?\b", re.I), ("年龄", "age")),
    (re.compile(r"季节|冬|夏|\bseason\b|\bwinter\b|\bsummer\b", re.I), ("季节", "season")),
    (re.compile(r"保质期|\bshelf life\b|\bexpir", re.I), ("保质期", "shelf")),
    (re.compile(r"产地|哪国|\bmade in\b|\borigin\b", re.I), ("产地", "origin")),
    (re.compile(r"重|\bweight\b|\bheavy\b", re.I), ("重量", "weight")),
    (re.compile(r"保修|质保|\bwarranty\b|\bguarantee\b", re.I), ("保修", "质保", "warranty")),
    (
        re.compile(r"发货|快递|配送|运费|几天到|多久到|包邮|\bship|\bdeliver|\bpostage\b|\barrive\b", re.I),
        ("发货", "配送", "快递", "shipping", "delivery"),
    ),
    (re.compile(r"退货|退换|七天无理由|\breturns?\b|\bsend (?:it )?back\b", re.I), ("退货", "退换", "return")),
    (
        re.compile(r"内存|存储|\bstorage\b|\bgb\b|\bmemory\b|\bram\b", re.I),
        ("存储", "内存", "storage", "memory", "ram"),
    ),
    (re.compile(r"尺寸|长宽高|\bdimensions?\b|\bhow big\b|\bsize\b", re.I), ("尺寸", "dimension", "size")),
]
# an open question ("what's the warranty?", "保修多久") is answered by an attribute of its kind; a
# yes/no question ("is it waterproof?") is not answered by a related attribute
OPEN_QUESTION = re.compile(
    r"\b(?:what|what's|whats|which|how|how's|hows|tell me)\b|多少|多久|多长|多大|多重|什么|哪|几", re.I
)
# words of a question that say nothing about the product
_QUESTION_NOISE = re.compile(
    r"什么|怎么|怎样|如何|哪种|哪个|哪款|这个|那个|这款|那款|这件|那件|这双|那双|这条|那条|这瓶|这台|它|该款|第[一二三四五六七八九十\d]+[个款件条双瓶台]?|"
    r"适合|适用|能不能|可不可以|可以|能否|是不是|是否|有没有|会不会|好不好|怎么样|多久|多少|几年|几个|吗|呢|嘛|么|吧|啊|的|了|我|我们|用|是|"
    r"[?？!！,，。.、:：;；]|\b(?:is|are|does|do|can|will|would|could|should|has|have|it|this|that|the|a|an|for|of|"
    r"good|ok|okay|suitable|first|second|third|fourth|fifth|last|one|item|product|me|my|i|to|in|on|with|any|"
    r"work|works|be|there|how|what|which|about|really|and|also|then|so|much|many|ok|okay|what's|whats|they|them|those|these)\b",
    re.I,
)
# a few question words and how records spell the same fact
_FACT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "油皮": ("油性", "油皮", "混油", "控油", "混合"),
    "干皮": ("干性", "干皮", "保湿", "补水", "滋润"),
    "敏感肌": ("敏感",),
    "敏感": ("敏感",),
    "防水": ("防水", "waterproof", "water-resistant", "water resistant"),
    "waterproof": ("waterproof", "water-resistant", "water resistant", "防水"),
    "酒精": ("酒精", "alcohol", "乙醇"),
    "alcohol": ("alcohol", "酒精"),
}


@dataclass
class ProductAnswer:
    text: str  # the answer as the shopper reads it (the record's words quoted)
    said: bool  # the record states something about what was asked
    facts: list[str] = field(default_factory=list)
    topic: str = ""  # what was asked about, in the shopper's words (for "the record does not say X")


def _price(p: Product) -> str:
    return f"{money(p.price)} {p.currency}" if p.price is not None else ""


def _attr_lines(p: Product) -> list[tuple[str, str]]:
    return [(name, "/".join(v) if isinstance(v, list) else str(v)) for name, v in p.attributes.items()]


def topic_terms(question: str) -> list[str]:
    """The content words of a question: what the record has to say something about."""
    text = _QUESTION_NOISE.sub(" ", question)
    words: list[str] = []
    for chunk in text.split():
        if HAS_CJK.search(chunk):
            parts = [w for w in jieba_tokenizer().lcut(chunk, HMM=False) if len(w) >= 2]
            words.extend(parts or ([chunk] if len(chunk) >= 2 else []))  # 干皮: jieba splits it to 干 / 皮
        elif len(chunk) >= 3:
            words.append(chunk.casefold())
    return list(dict.fromkeys(words))


def _spellings(term: str) -> list[str]:
    return list(dict.fromkeys([*_FACT_SYNONYMS.get(term.casefold(), ()), *alternatives(term)]))


def _around(text: str, spellings: list[str], pad: int = 8) -> str:
    """The words around the first spelling found in ``text`` (a quote, not the whole title)."""
    low = text.casefold()
    for s in spellings:
        at = low.find(s)
        if at >= 0:
            start, end = max(0, at - pad), min(len(text), at + len(s) + pad)
            return ("…" if start else "") + text[start:end].strip() + ("…" if end < len(text) else "")
    return ""


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[。！？!?；;])|(?<=\.)\s+", text or "") if s.strip()]


def answer_question(p: Product, question: str, language: str) -> ProductAnswer:
    """What the record says about ``question``; ``said`` is False when it says nothing."""
    zh = language == "zh"
    for pattern, aspect in ASPECTS:
        if pattern.search(question):
            fact = _aspect_fact(p, aspect, zh)
            if fact:
                return ProductAnswer(fact, True, [fact], aspect)
    terms = topic_terms(question)
    facts: list[str] = []
    for term in terms:
        spellings = [s.casefold() for s in _spellings(term)]
        for name, value in _attr_lines(p):
            line = f"{name}：{value}" if zh else f"{name}: {value}"
            if any(s in line.casefold() for s in spellings) and line not in facts:
                facts.append(line)
        for field_text in (p.title, " ".join(p.tags)):
            snippet = _around(field_text, spellings)
            if snippet and not facts:
                facts.append(snippet)
        for sentence in _sentences(p.description):
            if any(s in sentence.casefold() for s in spellings) and len(facts) < 3:
                facts.append(sentence[:120])
    if facts:
        return ProductAnswer("；".join(facts[:3]) if zh else "; ".join(facts[:3]), True, facts[:3], " ".join(terms))
    # nothing about the words themselves: an attribute of the same kind may still answer it
    for pattern, hints in NAME_HINTS:
        if pattern.search(question):
            related = [
                f"{n}：{v}" if zh else f"{n}: {v}" for n, v in _attr_lines(p) if any(h in n.casefold() for h in hints)
            ]
            if related:
                topic = " ".join(terms) or question.strip("?？ ")
                said = bool(OPEN_QUESTION.search(question))
                return ProductAnswer("；".join(related[:2]) if zh else "; ".join(related[:2]), said, related[:2], topic)
    return ProductAnswer("", False, [], " ".join(terms) or question.strip("?？ "))


def _aspect_fact(p: Product, aspect: str, zh: bool) -> str:
    if aspect == "price" and p.price is not None:
        return f"价格 {_price(p)}" if zh else f"price {_price(p)}"
    if aspect == "stock" and p.stock is not None:
        if zh:
            return f"库存 {p.stock} 件" if p.stock > 0 else "目前缺货"
        return f"{p.stock} in stock" if p.stock > 0 else "currently out of stock"
    if aspect == "brand" and p.brand:
        return f"品牌：{p.brand}" if zh else f"brand: {p.brand}"
    if aspect == "rating" and p.rating is not None:
        return f"评分 {p.rating:g}/5" if zh else f"rated {p.rating:g}/5"
    return ""


def question_reply(p: Product, position: int | None, ans: ProductAnswer, language: str) -> str:
    zh = language == "zh"
    name = (
        f"第 {position} 款（{p.title[:30]}）"
        if zh and position
        else (p.title[:40] if zh else f"#{position} ({p.title[:40]})" if position else p.title[:40])
    )
    if ans.said:
        return f"{name}：商品信息写的是 {ans.text}。" if zh else f"{name}: the product record says {ans.text}."
    if ans.facts:  # related facts, but not what was asked
        return (
            f"{name} 的商品信息没有提到“{ans.topic}”，只写了 {ans.text}。"
            if zh
            else f"The record of {name} does not say anything about '{ans.topic}'; it only lists {ans.text}."
        )
    return (
        f"{name} 的商品信息没有提到“{ans.topic}”，我不能确定。"
        if zh
        else f"The record of {name} does not say anything about '{ans.topic}', so I can't tell."
    )


def details(p: Product, position: int | None, language: str) -> str:
    """One product in a few lines: price, brand, stock, attributes, the start of the description."""
    zh = language == "zh"
    head = f"{position}. {p.title}" if position else p.title
    facts = [x for x in (_price(p), _aspect_fact(p, "brand", zh), _aspect_fact(p, "stock", zh)) if x]
    attrs = [f"{n}：{v}" if zh else f"{n}: {v}" for n, v in _attr_lines(p)[:6]]
    parts = [head, "，".join(facts) if zh else ", ".join(facts)]
    if attrs:
        parts.append("；".join(attrs) if zh else "; ".join(attrs))
    desc = re.sub(r"<[^>]+>", " ", p.description or "").strip()
    if desc:
        parts.append(desc[:160] + ("…" if len(desc) > 160 else ""))
    return "\n".join(x for x in parts if x)


def compare(products: list[Product], positions: list[int], need_terms: list[str], language: str) -> str:
    """A table of what differs (price, brand, stock, rating, attributes) and a one-line verdict
    tied to the need: the cheapest, the best rated, the one whose record has the must-haves."""
    zh = language == "zh"
    label = [f"[{n}]" for n in positions]
    rows: list[tuple[str, list[str]]] = [("价格" if zh else "price", [_price(p) or "-" for p in products])]
    rows.append(("品牌" if zh else "brand", [p.brand or "-" for p in products]))
    rows.append(("库存" if zh else "stock", ["-" if p.stock is None else str(p.stock) for p in products]))
    if any(p.rating is not None for p in products):
        rows.append(("评分" if zh else "rating", ["-" if p.rating is None else f"{p.rating:g}" for p in products]))
    names = list(dict.fromkeys(n for p in products for n in p.attributes))
    for name in names[:8]:
        values = [dict(_attr_lines(p)).get(name, "-") for p in products]
        rows.append((name, values))
    differing = [(n, v) for n, v in rows if len(set(v)) > 1]
    table = ["| | " + " | ".join(label) + " |", "|---|" + "---|" * len(products)]
    table += [f"| {n} | " + " | ".join(x[:24] for x in v) + " |" for n, v in differing or rows[:1]]
    verdict: list[str] = []
    priced = [(p.price, i) for i, p in enumerate(products) if p.price is not None]
    if len(priced) > 1 and len({x for x, _ in priced}) > 1:
        i = min(priced)[1]
        verdict.append(f"{label[i]} 更便宜" if zh else f"{label[i]} is cheaper")
    rated = [(p.rating, i) for i, p in enumerate(products) if p.rating is not None]
    if len(rated) > 1 and len({x for x, _ in rated}) > 1:
        i = max(rated)[1]
        verdict.append(f"{label[i]} 评分更高" if zh else f"{label[i]} is rated higher")
    for term in need_terms[:2]:
        has = [i for i, p in enumerate(products) if any(s.casefold() in _record(p) for s in _spellings(term))]
        if 0 < len(has) < len(products):
            who = "、".join(label[i] for i in has) if zh else ", ".join(label[i] for i in has)
            verdict.append(f"只有 {who} 写明了“{term}”" if zh else f"only {who} lists '{term}'")
    if not differing:
        verdict.append("这几款的记录信息几乎相同" if zh else "their records are almost the same")
    elif not verdict:
        names = [n for n, _ in differing][:3]
        same_price = len(priced) > 1 and len({x for x, _ in priced}) == 1
        if zh:
            verdict.append(("价格相同，" if same_price else "") + "区别在" + "、".join(names))
        else:
            verdict.append(("same price; " if same_price else "") + "they differ in " + ", ".join(names))
    line = ("结论：" + "；".join(verdict) + "。") if zh else ("Verdict: " + "; ".join(verdict) + ".")
    return "\n".join([*table, line])


def _record(p: Product) -> str:
    return " ".join([p.title, p.brand or "", p.description, *p.attribute_values(), *p.tags]).casefold()


_NAME_NOISE = frozenset(
    [
        "the",
        "one",
        "ones",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "and",
        "or",
        "with",
        "for",
        "of",
        "to",
        "in",
        "on",
        "a",
        "an",
        "me",
        "my",
        "i",
        "you",
        "your",
        "do",
        "does",
        "is",
        "are",
        "how",
        "much",
        "many",
        "what",
        "which",
        "who",
        "about",
        "take",
        "get",
        "buy",
        "go",
        "add",
        "cart",
        "basket",
        "ok",
        "okay",
        "then",
        "have",
        "has",
        "left",
        "stock",
        "please",
        "will",
        "ill",
        "i'll",
        "want",
        "made",
    ]
)


def named_positions(message: str, products: list[Product]) -> list[int]:
    """The shown products a message names by a word of their own ("i'll take the dell", "how much is
    the basketball?", "那个小米的多少钱"): 1-based positions of those whose title, brand or
    attributes hold a word of the message that not every shown product holds. Empty when the
    message names none, or names every one alike."""
    if len(products) < 2:
        return []
    words: list[str] = []
    for chunk in re.split(r"[\s,.!?;:，。！？；：、]+", _QUESTION_NOISE.sub(" ", message).casefold()):
        if not chunk:
            continue
        if HAS_CJK.search(chunk):
            words.extend(w for w in jieba_tokenizer().lcut(chunk, HMM=False) if len(w) >= 2 and HAS_CJK.search(w))
            words.extend(re.findall(r"[a-z][a-z0-9\-]{2,}", chunk))
        elif len(chunk) >= 3 and chunk not in _NAME_NOISE:
            words.append(chunk.rstrip("s") if len(chunk) > 4 else chunk)
    if not words:
        return []
    texts = [" ".join([p.title, p.brand or "", *p.attribute_values()]).casefold() for p in products]
    hits = [sum(1 for w in words if w in t) for t in texts]
    best = max(hits)
    if best == 0:
        return []
    chosen = [i + 1 for i, h in enumerate(hits) if h == best]
    if len(chosen) > 1:
        # "the basketball" between Basketball and Basketball Rim: the title the words fill most
        def fill(pos: int) -> float:
            title = products[pos - 1].title.casefold()
            return sum(len(w) for w in words if w in title) / max(1, len(title))

        ranked = sorted(chosen, key=fill, reverse=True)
        if fill(ranked[0]) > fill(ranked[1]) * 1.25:
            return ranked[:1]
    return chosen if len(chosen) <= max(1, len(products) // 2) else []

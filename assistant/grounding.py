"""Grounded copy: every claim in a product's copy must come from that product's record.

The LLM writes one short line per shown product (``[1] ...``). Each line is checked against
the record of the product it describes:

* numbers: every number in the line (a price, a size, a capacity) must occur in the record:
  its price (any usual formatting), rating, stock, title, attributes or tags;
* brands: a catalog brand named in the line must be this product's brand;
* facets: a catalog attribute value (a colour, a material, a fit ...) named in the line must
  occur in this product's title, attributes, tags or description;
* injection: a line may not contain markup, links, or text of the system prompt;
* content: a line that says nothing ("无", "N/A", "-", "暂无描述", a lone "无品牌") is
  "content-free"; a line that lists missing attributes ("无品牌，无颜色分类，无适用年龄": two or
  more clauses that start with 无/没有/暂无/"no " or end with "not specified"/"：无", or three or
  more ``key: value`` pairs) is an "attribute dump";
* duplicates: a line the same as one already accepted for another product of the same answer
  (compared case-folded, without punctuation or spaces) is a "duplicate of [k]";
* truncation: a line that ends on a dangling "-", "/", "(", ":", "，", "、" ... or on "and",
  "with", "for" ..., or that opens a bracket or a curly quote ("（", "(", "【", "[", "“", "《")
  it never closes, is "truncated"; a sentence-final "…" after a full phrase stays. Brackets
  and endings of the product's own title (and brand) are not held against the line;
* absence claims: "无X", "不含X", "不添加X"/"未添加X", "零X"/"0X", "X-free", "X free",
  "free of/from X", "no X", "without X" claim that the product lacks X; such a claim must be
  in the record, in any of these forms and in either language for the substances the two
  languages share (酒精/alcohol, 香精/fragrance, 防腐剂/paraben, 糖/sugar ...): "无酒精" is
  backed by a record that says "不含酒精" or "alcohol-free". Judgement calls, to keep good
  lines: a 无-word that names a kind of product or is an idiom (无线, 无缝, 无袖, 无痕, 无框,
  无叶, 无刷, 无人机, 无纺布, 无骨, 无钢圈, 无门槛, 无限, 无忧, 无需, 无论, 独一无二, 无印良品 ...;
  ``_NOT_ABSENCE_ZH``) is never a claim; "无"/"不含"/"不添加" followed by any other Chinese word
  is one (the word: a known substance, else the next two characters), "零"/"0" only before a
  known substance (零食, 零件, 零售 are no claims); in English "X-free" and "free of/from X"
  are claims for any X but a short list (hands-free, worry-free, wire-free ...), while
  "no X", "without X" and "X free" are claims only for a known substance ("no wonder",
  "no fuss" are not);
* language (when ``check_line`` is told the conversation's language): in an English
  conversation a line that is mostly Chinese (more than half of its letters are CJK), the
  product's own title and brand aside, is "not in the conversation's language"; in a Chinese
  one, so is a line longer than 20 characters without any Chinese about a product whose title
  is Chinese (English lines about English-titled products stay).

A line that fails is replaced by a template built from the record alone, and the failure is
counted (``GroundingReport``), so an eval can count ungrounded claims and still show none.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from retrieval.filters import term_in
from shopassist.models import Product
from shopassist.text import CJK_CLASS, HAS_CJK, word_set

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# a copy line about one shown product: "[2] ..." or "2. ..." (groups: the position, either form; the text)
LINE_PATTERN = re.compile(r"^\s*(?:\[(\d{1,2})\]|(\d{1,2})\s*[.、)）:：])\s*(.+?)\s*$")
_LINE = LINE_PATTERN  # the old private name, until its last importer switches
_MARKUP = re.compile(r"<[^>]*>|\]\(|https?://|www\.", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CURRENCY_BEFORE = r"(?:[$¥￥€£]|US\$|RMB|CNY|USD|EUR)"
_CURRENCY_AFTER = r"(?:元|块钱|块|rmb|cny|usd|dollars?|bucks|eur|euros?)"
_BUDGET_AFTER = re.compile(r"\s*(?:以内|以下|之内|内|左右|上下|预算)")
_BUDGET_BEFORE = re.compile(
    r"(?:under|below|within|less than|up to|budget of|预算|不到|不超过|低于)\s*$", re.IGNORECASE
)
_PRICE_CLAIM = re.compile(
    rf"{_CURRENCY_BEFORE}\s*(?P<a>\d+(?:[.,]\d+)*)|(?P<b>\d+(?:[.,]\d+)*)\s*{_CURRENCY_AFTER}(?![a-z])",
    re.IGNORECASE,
)


def clean_text(text: str) -> str:
    """Strip control characters; the UI escapes the rest (``html.escape``) before display."""
    return _CONTROL.sub("", text or "").strip()


def escape(text: str) -> str:
    return html.escape(clean_text(text), quote=True)


def _numbers(text: str) -> set[str]:
    out = set()
    for m in _NUMBER.finditer(text):
        raw = m.group(0).replace(",", "")
        try:
            value = float(raw)
        except ValueError:
            continue
        out.add(_canon(value))
    return out


def _canon(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def record_text(p: Product) -> str:
    parts = [p.title, p.brand or "", p.category, p.description, *p.attribute_values(), *p.tags]
    return " ".join(parts).casefold()


def record_numbers(p: Product) -> set[str]:
    nums = _numbers(" ".join([p.title, *p.attribute_values(), *p.tags, p.description]))
    for value in (p.price, p.rating, p.stock):
        if value is not None:
            nums.add(_canon(float(value)))
    return nums


# -- what a line says: content, dumps, truncation, absence claims, language ------------------------

_PUNCT = re.compile(r"[\W_]+")
# words that say nothing about a product, alone or together ("N/A", "无", "暂无", "none", "-")
_EMPTY_WORDS = word_set(
    "无 没有 暂无 没 空 略 不详 未知 无信息 暂无信息 无描述 暂无描述 无内容 无数据 未提供 未注明 未说明 未标明 "
    "na n a none null nil no not nothing unknown tbd tba unspecified notspecified notavailable"
)
# clauses: a line split on the separators that join items ("，", ",", ";", "、", "|", "。", ". ")
_CLAUSE_SPLIT = re.compile(r"[，,;；、。！？!?|｜\n]|\.(?:\s|$)")
# a clause that starts by saying something is missing ("无品牌", "没有颜色", "no brand")
_NEG_START_ZH = re.compile(r"^(?:暂无|没有|无)")
_NEG_START_EN = re.compile(r"^no\s+([a-z]+)")
# "no" + these is an idiom or a kind of product, not a missing attribute
_EN_NO_OK = word_set(
    "wonder need matter more problem problems fuss frills doubt longer other one less show slip iron "
    "compromise compromises worries worry hassle nonsense joke kidding way time brainer sweat strings limit "
    "limits regrets mess surprises questions"
)
# a clause that ends by saying something is missing ("品牌：无", "brand not specified")
_MISSING_END = re.compile(
    r"(?:[:：]\s*(?:无|没有|暂无|未知|不详|none|n/?a|unknown|-+)|不详|未注明|未提供|未标明|未说明"
    r"|\b(?:not (?:specified|available|listed|provided|stated|given|applicable)|unspecified|n/a))$"
)
# key: value pairs ("品牌：自然堂", "Color: brown"); the key has a letter
_KEY_VALUE = re.compile(r"(?:^|[\s，,;；、|｜])([^\s:：，,;；、|｜]{1,20})\s*[:：]\s*(?=[^\s:：])")
_LETTER_KEY = re.compile(rf"[a-zA-Z{CJK_CLASS}]")

# a line that ends here was cut off; "18+" and a closing "…" are fine
_DANGLING_END = re.compile(r"(?:[-–—/\\(（\[【{《「“‘:：，,、;；&|=]|(?:^|\s)(?:and|or|with|for|of|the|to|from|by))$")
_ELLIPSIS_END = re.compile(r"(?:…|\.\.\.+|。。。)+$")
_BRACKETS = (("(（", ")）"), ("[【［", "]】］"), ("“", "”"), ("‘", "’"), ("《", "》"), ("「", "」"), ("{", "}"))

# substances a claim of absence names, Chinese and English side by side: "无酒精" is backed by a
# record that says "alcohol-free", and "no parabens" by one that says "不含防腐剂"
_SUBSTANCES: tuple[tuple[str, ...], ...] = (
    ("酒精", "乙醇", "alcohol", "ethanol"),
    ("香精", "香料", "fragrance", "perfume", "parfum", "scent"),
    ("防腐剂", "尼泊金", "羟苯", "preservative", "paraben"),
    ("糖", "糖分", "sugar"),
    ("蔗糖", "sucrose"),
    ("添加", "添加剂", "additive"),
    ("硅油", "silicone"),
    ("荧光剂", "荧光增白剂", "增白剂", "fluorescent", "optical brightener"),
    ("色素", "人工色素", "dye", "colorant", "colourant"),
    ("矿物油", "mineral oil"),
    ("油", "oil"),
    ("麸质", "gluten"),
    ("乳糖", "lactose"),
    ("双酚a", "bpa"),
    ("甲醛", "醛", "formaldehyde"),
    ("激素", "hormone"),
    ("反式脂肪", "反式脂肪酸", "trans fat"),
    ("脂肪", "脂", "fat"),
    ("咖啡因", "caffeine"),
    ("农药", "农残", "pesticide"),
    ("重金属", "heavy metal"),
    ("铅", "lead"),
    ("汞", "mercury"),
    ("磷", "phosphate"),
    ("塑化剂", "邻苯二甲酸酯", "phthalate"),
    ("硫酸盐", "sulfate", "sulphate", "sls"),
    ("氟", "fluoride"),
    ("卡路里", "热量", "calorie"),
    ("钠", "sodium"),
    ("盐", "salt"),
    ("致敏", "过敏原", "allergen"),
    ("坚果", "nut"),
    ("乳制品", "dairy"),
    ("大豆", "soy"),
    ("转基因", "gmo"),
    ("抗生素", "antibiotic"),
    ("动物实验", "cruelty"),
)
_ZH_SUBSTANCES = sorted({t for group in _SUBSTANCES for t in group if HAS_CJK.search(t)}, key=len, reverse=True)
_EN_SUBSTANCES = sorted({t for group in _SUBSTANCES for t in group if not HAS_CJK.search(t)}, key=len, reverse=True)
# 无-words that name a kind of product or are idioms, never a claim that the product lacks
# something (the rest of 无X, 不含X, 不添加X is one)
_NOT_ABSENCE_ZH = tuple(
    sorted(
        word_set(
            "无线 无缝 无袖 无痕 无框 无叶 无刷 无人机 无人 无纺布 无骨 无帽 无钢圈 无门槛 无界 无限 无忧 无敌 无比 "
            "无论 无需 无须 无法 无与伦比 无可 无所 无处 无时 无微不至 无拘无束 无懈可击 无数 无穷 无尽 无边 "
            "无声 无损 无极 无级 无感 无惧 无双 无价 无瑕 无暇 无间 无印良品 无锡 无花果 无籽 无盖 无跟 无扣 "
            "无源 无绳 无风扇 无反 无死角 无压力 无意 无聊 无奈 无关 无辜 无形 无非 无疑 无量 无畏 无名 无谓 "
            "无为 无常 无阻 无碍 无障碍 无差别 无情 无核 无芯 无塔 无碳 无霜 无胆 无纺 无钉 无土 巨无霸 "
            "独一无二 毫无疑问 一无所有 有无 没有之一 没有比 没有什么"
        ),
        key=len,
        reverse=True,
    )
)
# "X-free" words that are kinds of product or idioms: hands-free earbuds, a worry-free return
_NOT_ABSENCE_EN = word_set(
    "hands hand worry hassle care stress trouble risk tool tools maintenance duty toll tax rent fancy "
    "scot wire cord clutter feel glare charge cost"
)
_ZH_CLAIM = re.compile(rf"(不含|不添加|未添加|无|零|(?<![\d.])0)([{CJK_CLASS}]*)")
_EN_WORD = r"[a-z][a-z0-9]*"
_EN_HYPHEN_FREE = re.compile(rf"\b({_EN_WORD})-free\b")
_EN_SPACE_FREE = re.compile(rf"\b({_EN_WORD}) free\b")
_EN_FREE_OF = re.compile(
    rf"\bfree (?:of|from) (?:(?:any|all|added|artificial|harsh|harmful|synthetic) )*({_EN_WORD}(?: {_EN_WORD})?)"
)
_EN_NO = re.compile(
    rf"\b(?:no|without|zero|0%) (?:(?:any|added|artificial|harsh|harmful|synthetic) )*({_EN_WORD}(?: {_EN_WORD})?)"
)
_LATIN_LETTER = re.compile(r"[a-zA-Z\u00c0-\u024f]")
_CJK_CHAR = re.compile(f"[{CJK_CLASS}]")


def line_key(text: str) -> str:
    """A line as duplicates are compared: case-folded, without punctuation or spaces."""
    return _PUNCT.sub("", text.casefold())


def _own_names(p: Product) -> list[str]:
    names = [p.title, p.brand or "", *(p.brand or "").split("/")]
    return sorted({n.strip().casefold() for n in names if n.strip()}, key=len, reverse=True)


def _without_own_names(low: str, p: Product) -> str:
    """The case-folded line less the product's own title and brand (what the line adds to them)."""
    for name in _own_names(p):
        low = low.replace(name, " ")
    return low


def _covered(text: str, words: Iterable[str]) -> set[int]:
    """Positions of ``text`` inside an occurrence of one of ``words``."""
    out: set[int] = set()
    for w in words:
        start = text.find(w)
        while start >= 0:
            out.update(range(start, start + len(w)))
            start = text.find(w, start + 1)
    return out


def _zh_substance(run: str) -> str | None:
    return next((t for t in _ZH_SUBSTANCES if run.startswith(t)), None)


def _en_substance_words(phrase: str) -> tuple[str, str] | None:
    """The known substance a (one- or two-word) English phrase starts with, and the words that
    name it: "parabens and" -> ("paraben", "parabens")."""
    words = phrase.split()
    for n in (2, 1):
        if len(words) < n:
            continue
        cand = " ".join(words[:n])
        for form in (cand, cand[:-1] if cand.endswith("s") else cand, cand[:-2] if cand.endswith("es") else cand):
            if form in _EN_SUBSTANCES:
                return form, cand
    return None


def _en_substance(phrase: str) -> str | None:
    found = _en_substance_words(phrase)
    return found[0] if found else None


def _is_negative_clause(clause: str, facts: str) -> bool:
    """A short clause that only says something is missing: "无品牌", "no brand", "品牌：无",
    "size not specified". Not one: a 无-word that names a kind of product (无线), a substance
    (无酒精: a claim, checked as such), or what the record says too (无延迟 of a 无延迟 headset)."""
    if _MISSING_END.search(clause):
        return True
    m = _NEG_START_ZH.match(clause)
    if m:
        rest = clause[m.end() :].strip()
        return (
            0 < len(rest) <= 8
            and 0 not in _covered(clause[:6], _NOT_ABSENCE_ZH)
            and _zh_substance(rest) is None
            and _en_substance(rest) is None
            and clause not in facts
        )
    e = _NEG_START_EN.match(clause)
    if e:
        rest = clause[e.start(1) :]
        return (
            len(rest.split()) <= 4
            and e.group(1) not in _EN_NO_OK
            and _en_substance(rest) is None
            and clause not in facts
        )
    return False


def content_problem(text: str, product: Product) -> str | None:
    """ "content-free" or "attribute dump" when the line says nothing or lists missing attributes."""
    low = text.casefold().strip()
    numbered = LINE_PATTERN.match(low)  # "1. 无" as a whole line
    if numbered:
        low = numbered.group(3)
    if not line_key(low) or line_key(low) in _EMPTY_WORDS:
        return "content-free"
    clauses = [c.strip(" \t-–—*·•") for c in _CLAUSE_SPLIT.split(low)]
    clauses = [c for c in clauses if c]
    facts = record_text(product)
    empty = [c for c in clauses if not line_key(c) or all(w in _EMPTY_WORDS for w in _PUNCT.split(c) if w)]
    negative = [c for c in clauses if c not in empty and _is_negative_clause(c, facts)]
    if len(negative) >= 2:
        return "attribute dump"
    if len(empty) + len(negative) == len(clauses):
        return "content-free"
    rest = _without_own_names(low, product)
    pairs = [m.group(1) for m in _KEY_VALUE.finditer(rest) if _LETTER_KEY.search(m.group(1))]
    if len(pairs) >= 3:
        return "attribute dump"
    return None


def is_truncated(text: str, product: Product) -> bool:
    """Whether the line was cut off: a dangling ending, or a bracket or curly quote left open."""
    low = text.casefold().strip()
    if any(low.endswith(name) for name in _own_names(product)):
        end = ""
    else:
        end = _ELLIPSIS_END.sub("", low).rstrip()
    if end and _DANGLING_END.search(end):
        return True
    rest = _without_own_names(low, product)
    return any(sum(rest.count(c) for c in opens) > sum(rest.count(c) for c in closes) for opens, closes in _BRACKETS)


def _zh_forms(term: str) -> list[str]:
    negations = ("无", "不含", "不含有", "零", "0", "不添加", "未添加", "无添加", "零添加", "0添加", "没有", "不加")
    return [f"{neg}{term}" for neg in negations]


def _en_backed(term: str, facts: str) -> bool:
    t = re.escape(term) + r"(?:e?s)?"
    pattern = (
        rf"\b{t}[- ]free\b|\bfree (?:of|from) (?:[a-z]+ ){{0,2}}{t}\b"
        rf"|\b(?:no|without|zero|0%|non) ?-?(?:[a-z]+ ){{0,2}}{t}\b"
    )
    return re.search(pattern, facts) is not None


def _claim_backed(term: str, facts: str) -> bool:
    """Whether the record says the product lacks ``term``, in any usual form, in either language."""
    group = next((g for g in _SUBSTANCES if term in g), (term,))
    for t in group:
        if HAS_CJK.search(t):
            if any(form in facts for form in _zh_forms(t)):
                return True
        elif _en_backed(t, facts):
            return True
    return False


def absence_claims(text: str, facts: str) -> list[str]:
    """Claims that the product lacks something ("无酒精", "paraben-free", "no added sugar") that
    the record (``record_text``) does not state, as written in the line."""
    low = text.casefold()
    out: list[str] = []
    idioms = _covered(low, _NOT_ABSENCE_ZH)
    for m in _ZH_CLAIM.finditer(low):
        neg, run = m.group(1), m.group(2)
        if m.start() in idioms or not run:
            continue
        term = _zh_substance(run)
        if term is None:
            if neg in {"零", "0"}:
                continue  # 零食, 零件, 零售: only 零糖, 0添加 ... (a known substance) is a claim
            term = run[:2]
        if not _claim_backed(term, facts):
            out.append(f"{text[m.start() : m.start() + len(neg)]}{term}")
    for m in _EN_HYPHEN_FREE.finditer(low):
        word = m.group(1)
        if word in _NOT_ABSENCE_EN:
            continue
        term = _en_substance(word) or word
        if not _claim_backed(term, facts):
            out.append(m.group(0))
    for pattern, any_word in ((_EN_FREE_OF, True), (_EN_NO, False), (_EN_SPACE_FREE, False)):
        for m in pattern.finditer(low):
            found = _en_substance_words(m.group(1))
            if found is None and not any_word:
                continue  # "no wonder", "no fuss", "feel free": only a known substance is a claim
            term, words = found or (m.group(1).split()[0],) * 2
            if term in _NOT_ABSENCE_EN or _claim_backed(term, facts):
                continue
            # as written, up to the substance: "free of parabens", not "free of parabens and"
            out.append(m.group(0) if pattern is _EN_SPACE_FREE else low[m.start() : m.start(1)] + words)
    return list(dict.fromkeys(out))


def language_problem(text: str, product: Product, language: str | None) -> str | None:
    """ "not in the conversation's language" for a Chinese line in an English conversation (the
    product's own title aside), or an English line about a Chinese-titled product in a Chinese one."""
    if language == "en":
        rest = _without_own_names(text.casefold(), product)
        cjk = len(_CJK_CHAR.findall(rest))
        latin = len(_LATIN_LETTER.findall(rest))
        if cjk and cjk * 2 > cjk + latin:
            return "not in the conversation's language"
    elif language == "zh" and HAS_CJK.search(product.title) and not HAS_CJK.search(text) and len(text.strip()) > 20:
        return "not in the conversation's language"
    return None


def template_line(p: Product, language: str) -> str:
    """Copy from the record alone: always true."""
    price = (
        f"{p.price:.2f} {p.currency}"
        if p.price is not None
        else ("价格待定" if language == "zh" else "price on request")
    )
    names = [n for n in [p.brand or "", *(p.brand or "").split("/")] if n.strip()]
    say_brand = bool(names) and not any(n.casefold() in p.title.casefold() for n in names)
    if language == "zh":
        stock = "" if p.stock is None else ("，暂时缺货" if p.stock == 0 else "，有货")
        brand = f"{p.brand}，" if say_brand else ""
        return f"{brand}{p.title}，{price}{stock}"
    stock = "" if p.stock is None else (", out of stock" if p.stock == 0 else ", in stock")
    brand = f"{p.brand}: " if say_brand else ""
    return f"{brand}{p.title}, {price}{stock}"


@dataclass
class LineCheck:
    position: int
    product_id: str
    text: str
    ok: bool
    problems: list[str] = field(default_factory=list)


@dataclass
class GroundingReport:
    lines: list[LineCheck] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # positions the model wrote nothing for
    extra: int = 0  # lines about positions that were not shown (dropped)

    @property
    def ungrounded(self) -> int:
        return sum(1 for line in self.lines if not line.ok) + self.extra

    def problems(self) -> list[str]:
        return [f"[{c.position}] {p}" for c in self.lines for p in c.problems]


class GroundingChecker:
    """Checks copy lines against records; ``brands`` and ``facet_values`` are the catalog's
    vocabularies (what could be claimed wrongly)."""

    def __init__(self, brands: Iterable[str] = (), facet_values: Iterable[str] = (), system_prompt: str = "") -> None:
        self.brands = sorted({b.casefold() for b in brands if len(b.strip()) >= 2}, key=len, reverse=True)
        self.facet_values = sorted({v.casefold() for v in facet_values if len(v.strip()) >= 2}, key=len, reverse=True)
        self._prompt_shingles = {system_prompt[i : i + 40] for i in range(0, max(0, len(system_prompt) - 40), 20)}

    def check_line(self, text: str, product: Product, *, language: str | None = None) -> list[str]:
        """What is wrong with one copy line about ``product`` (nothing: it may be shown);
        ``language``: the conversation's ("zh"/"en"), to hold the line to it."""
        content = content_problem(text, product)
        if content == "content-free":
            return [content]
        problems = [content] if content else []
        low = text.casefold()
        if _MARKUP.search(text):
            problems.append("markup or link")
        if any(s and s in text for s in self._prompt_shingles):
            problems.append("system prompt text")
        facts = record_text(product)
        known = record_numbers(product)
        for num in _numbers(text) - known:
            # "1" and "2" stand for counts and ordinals often ("2 colours"); all else must be in the record
            if num not in {"0", "1", "2", "3"}:
                problems.append(f"number {num} is not in the record")
        # a number with a currency is a price claim: it must be this product's price, small or not
        # ("only $1 today", "仅需1元"), whatever the title or description says the price is
        price = None if product.price is None else _canon(float(product.price))
        for m in _PRICE_CLAIM.finditer(text):
            if _BUDGET_AFTER.match(text, m.end()) or _BUDGET_BEFORE.search(text[: m.start()]):
                continue  # the shopper's budget ("200元以内", "under $100"): the number check covers it
            claimed = _numbers(m.group("a") or m.group("b") or "")
            if claimed and price not in claimed:
                problems.append(f"price claim {m.group(0).strip()!r} is not this product's price")
        own = {n.casefold() for n in [product.brand or "", *(product.brand or "").split("/")] if n}
        for brand in self.brands:
            if term_in(brand, low) and brand not in facts and brand not in own:
                problems.append(f"brand {brand!r} is not this product's")
                low = low.replace(brand, " ")
        for value in self.facet_values:
            if term_in(value, low) and not term_in(value, facts):
                problems.append(f"{value!r} is not in the record")
                low = low.replace(value, " ")
        if is_truncated(text, product):
            problems.append("truncated")
        if content != "attribute dump":  # its 无X items are the dump, not claims
            problems += [f"claims {claim} which the record does not state" for claim in absence_claims(text, facts)]
        wrong_language = language_problem(text, product, language)
        if wrong_language:
            problems.append(wrong_language)
        return problems

    @staticmethod
    def _title_words(text: str) -> set[str]:
        from retrieval.tokenize import default_tokenizer

        return {t for t in default_tokenizer()(text) if not t.startswith("#") and len(t) >= 3}

    def check(self, copy_text: str, products: Sequence[Product], language: str) -> tuple[list[str], GroundingReport]:
        """Per-product lines to show (checked, or the template) and the report."""
        report = GroundingReport()
        written: dict[int, str] = {}
        for line in (copy_text or "").splitlines():
            m = LINE_PATTERN.match(line)
            if not m:
                continue
            pos = int(m.group(1) or m.group(2))
            if 1 <= pos <= len(products):
                written.setdefault(pos, clean_text(m.group(3)))
            else:
                report.extra += 1
        out = []
        accepted: dict[str, tuple[int, str]] = {}  # line_key -> (position, product id) of lines shown as written
        for pos, product in enumerate(products, 1):
            text = written.get(pos)
            if not text:
                report.missing.append(pos)
                out.append(template_line(product, language))
                continue
            problems = self.check_line(text, product, language=language)
            # a line about another shown product (the model skipped one and renumbered)
            own = self._title_words(record_text(product))
            words = self._title_words(text)
            for other in products:
                if other.id != product.id and (words & (self._title_words(other.title) - own)):
                    problems.append(f"describes another product ({other.id})")
                    break
            key = line_key(text)
            first = accepted.get(key)
            if first is not None and first[1] != product.id:
                problems.append(f"duplicate of [{first[0]}]")
            if not problems:
                accepted.setdefault(key, (pos, product.id))
            report.lines.append(LineCheck(pos, product.id, text, not problems, problems))
            out.append(text if not problems else template_line(product, language))
        return out, report


def written_positions(text: str, n: int) -> set[int]:
    """Product positions (1..n) that have a ``[k]`` / ``k.`` line in ``text``."""
    out = set()
    for line in text.splitlines():
        m = LINE_PATTERN.match(line)
        if m and 1 <= int(m.group(1) or m.group(2)) <= n:
            out.add(int(m.group(1) or m.group(2)))
    return out

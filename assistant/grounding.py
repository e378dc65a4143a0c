"""Grounded copy: every claim in a product's copy must come from that product's record.

The LLM writes one short line per shown product (``[1] ...``). Each line is checked against
the record of the product it describes:

* numbers: every number in the line (a price, a size, a capacity) must occur in the record:
  its price (any usual formatting), rating, stock, title, attributes or tags;
* brands: a catalog brand named in the line must be this product's brand;
* facets: a catalog attribute value (a colour, a material, a fit ...) named in the line must
  occur in this product's title, attributes, tags or description;
* injection: a line may not contain markup, links, or text of the system prompt.

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

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# a copy line about one shown product: "[2] ..." or "2. ..." (groups: the position, either form; the text)
LINE_PATTERN = re.compile(r"^\s*(?:\[(\d{1,2})\]|(\d{1,2})\s*[.、)）:：])\s*(.+?)\s*$")
_LINE = LINE_PATTERN  # the old private name, until its last importer switches
_MARKUP = re.compile(r"<[^>]*>|\]\(|https?://|www\.", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


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

    def check_line(self, text: str, product: Product) -> list[str]:
        problems = []
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
        own = {n.casefold() for n in [product.brand or "", *(product.brand or "").split("/")] if n}
        for brand in self.brands:
            if term_in(brand, low) and brand not in facts and brand not in own:
                problems.append(f"brand {brand!r} is not this product's")
                low = low.replace(brand, " ")
        for value in self.facet_values:
            if term_in(value, low) and not term_in(value, facts):
                problems.append(f"{value!r} is not in the record")
                low = low.replace(value, " ")
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
        for pos, product in enumerate(products, 1):
            text = written.get(pos)
            if not text:
                report.missing.append(pos)
                out.append(template_line(product, language))
                continue
            problems = self.check_line(text, product)
            # a line about another shown product (the model skipped one and renumbered)
            own = self._title_words(record_text(product))
            words = self._title_words(text)
            for other in products:
                if other.id != product.id and (words & (self._title_words(other.title) - own)):
                    problems.append(f"describes another product ({other.id})")
                    break
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

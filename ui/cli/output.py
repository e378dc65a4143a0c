"""The one way commands print a result: ``--json`` dumps it; otherwise a view (a few line specs)
turns the same result into text.

    show(result, as_json, Rows("systems", "{key:>10}: {value:.4f}"), Line("overall {overall:.3f}"))

Templates are ``str.format`` templates over the result's fields (``{latency[a][p50_ms]}`` reaches
into nested ones) with three additions: a mapping with a format spec prints as ``k=v`` pairs two
spaces apart, each value in that spec (``{metrics:.4f}`` -> ``MRR@10=0.3120  Recall@10=0.5000``);
a list with a format spec is joined with the spec (``{problems:; }``); ``!c`` is a count
(``{rejected!c}``). A template given as a tuple has optional parts after the first: each is
printed only when the fields it names have a value (present, not None, not empty).
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

Template = str | tuple[str, ...]


def dump(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (what every ``--json`` prints)."""
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


class _Formatter(string.Formatter):
    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "c":
            return len(value)
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        if format_spec and isinstance(value, Mapping):
            return "  ".join(f"{k}={format(v, format_spec)}" for k, v in value.items())
        if format_spec and isinstance(value, list | tuple):
            return format_spec.join(map(str, value))
        return super().format_field(value, format_spec)


_FORMATTER = _Formatter()


def _has_values(part: str, fields: Mapping[str, Any]) -> bool:
    for _, name, _, _ in _FORMATTER.parse(part):
        if name is None:
            continue
        try:
            value, _ = _FORMATTER.get_field(name, (), fields)
        except (KeyError, IndexError, TypeError):
            return False
        if value is None or (isinstance(value, Sequence | Mapping) and not value):
            return False
    return True


def render(template: Template, fields: Mapping[str, Any]) -> str:
    """One line: ``template`` filled from ``fields`` (optional tuple parts as the module says)."""
    if isinstance(template, str):
        return _FORMATTER.vformat(template, (), fields)
    first, *optional = template
    return _FORMATTER.vformat(first, (), fields) + "".join(
        _FORMATTER.vformat(part, (), fields) for part in optional if _has_values(part, fields)
    )


@dataclass(frozen=True)
class Line:
    """One line from the result's fields; only ``when`` that field has a value; on stderr with ``err``."""

    template: Template
    err: bool = False
    when: str | None = None

    def lines(self, fields: Mapping[str, Any]) -> Iterable[tuple[str, bool]]:
        if self.when is None or fields.get(self.when):
            yield render(self.template, fields), self.err


@dataclass(frozen=True)
class Rows:
    """One line per entry of ``result[field]`` (the result itself when ``field`` is None).

    A mapping's entries fill ``{key}`` and ``{value}`` (and the value's own fields when it is a
    mapping), with ``also``: the same key's value in each of those other mappings of the result,
    under their names. A list's entries fill their own fields. At most ``limit`` lines, then
    ``more`` (with ``{rest}``: how many were left out, out of ``result[total]`` when given)."""

    field: str | None
    template: Template
    limit: int | None = None
    err: bool = False
    also: tuple[str, ...] = ()
    more: str | None = None
    total: str | None = None

    def lines(self, fields: Mapping[str, Any]) -> Iterable[tuple[str, bool]]:
        entries = fields if self.field is None else fields[self.field]
        if isinstance(entries, Mapping):
            rows: list[Mapping[str, Any]] = [
                {
                    **(value if isinstance(value, Mapping) else {}),
                    **{name: fields[name][key] for name in self.also},
                    "key": key,
                    "value": value,
                }
                for key, value in entries.items()
            ]
        else:
            rows = list(entries)
        for row in rows[: self.limit]:
            yield render(self.template, row), self.err
        count = fields[self.total] if self.total else len(rows)
        if self.more and self.limit is not None and count > self.limit:
            yield render(self.more, {"rest": count - self.limit}), self.err


def show(result: Any, as_json: bool, *view: Line | Rows | str, **extra: Any) -> None:
    """``result`` as JSON with ``as_json``; else as text by ``view`` (a str is a ``Line``), whose
    templates also see ``extra`` (values that are not part of the JSON)."""
    if as_json:
        dump(result)
        return
    fields = {**result, **extra} if isinstance(result, Mapping) else {"result": result, **extra}
    for spec in view:
        for text, err in (Line(spec) if isinstance(spec, str) else spec).lines(fields):
            click.echo(text, err=err)


def product_line(rank: int, product: Any, *, detail: bool = True) -> str:
    """A numbered product line (search results); ``detail`` adds stock, category and id."""
    p = product
    price = f"{p.price:.2f} {p.currency}" if p.price is not None else "price n/a"
    if not detail:
        return f"{rank:>2}. {p.title}  —  {price}  ({p.brand or 'no brand'})"
    stock = "" if p.stock is None else (" [sold out]" if p.stock == 0 else f" [stock {p.stock}]")
    return (
        f"{rank:>2}. {p.title}  —  {price}{stock}  ({p.brand or 'no brand'}; {p.category or 'uncategorised'}) id={p.id}"
    )

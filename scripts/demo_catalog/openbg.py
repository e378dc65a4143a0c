"""OpenBG products from EcomGPT task rows: one product per distinct title, merging every row that
mentions it; category from the row labels, else a learned label name or a keyword rule."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

from .categories import learn_label_tokens, match_label_tokens, rule_agreement, zh_keyword_top
from .pricing import generate_price, generate_stock
from .quality import is_service, zh_quality_reject
from .records import Rejects, base_record, read_jsonl, source_info
from .tables import OPENBG_DESCRIPTION_KEYS, OPENBG_NOISE_KEYS, OPENBG_PLACEHOLDERS, OPENBG_TAG_KEYS
from .text import clean_title, dedupe, stable_hash, title_key


def parse_attr_string(s: str) -> list[tuple[str, str]]:
    pairs = []
    for part in s.split("#;#"):
        if "#:#" not in part:
            continue
        k, v = part.split("#:#", 1)
        k, v = k.strip(), v.strip()
        if k:
            pairs.append((k, v))
    return pairs


def _split_item(text: str) -> tuple[str, str]:
    """``"TITLE, a#:#b#;#..."`` -> (title, attr string). Titles may contain ', '."""
    text = text.strip().rstrip(",").strip()
    i = text.find("#:#")
    if i < 0:
        return text, ""
    j = text.rfind(", ", 0, i)
    if j < 0:
        return "", text
    return text[:j].strip(), text[j + 2 :].strip()


_MATCH_RE = re.compile(r"^Title:\s*(.*?), Attritute:\s*(.*)$", re.S)
_ALIGN_RE = re.compile(r"^Item 1:\s*(.*?),?\nItem 2:\s*(.*)$", re.S)


def parse_openbg_row(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Return [{title, attrs, coarse, fine, task}] for every product in one EcomGPT task row."""
    task = str(row.get("task", ""))
    kind = task.rsplit("-", 1)[-1]
    s = row.get("sentences") or ""
    labels = row.get("labels") or {}
    items: list[dict[str, Any]] = []
    if kind in ("item_coarse_classify", "item_fine_classify"):
        title, _, attr = s.partition("\t")
        coarse = (labels.get("coarse") or [None])[0]
        fine = (labels.get("fine") or [None])[0]
        items.append({"title": title, "attrs": parse_attr_string(attr), "coarse": coarse, "fine": fine})
    elif kind == "title_attribute_matching":
        m = _MATCH_RE.match(s)
        if m:
            matched = (labels.get("en") or [""])[0] == "match" or (labels.get("zh") or [""])[0] == "匹配"
            # A 不匹配 row pairs the title with another product's attributes: keep the title only.
            items.append({"title": m.group(1), "attrs": parse_attr_string(m.group(2)) if matched else []})
    elif kind == "item_align":
        m = _ALIGN_RE.match(s)
        if m:
            # Each item carries its own attributes, whether or not the pair is the same product.
            for part in m.groups():
                t, a = _split_item(part)
                items.append({"title": t, "attrs": parse_attr_string(a)})
    elif kind == "title_generate":
        # Input: the product's attributes; target: its real title.
        for span in row.get("spans") or []:
            term = (span or {}).get("term")
            if term:
                items.append({"title": term, "attrs": parse_attr_string(s)})
    else:
        # Unknown task type: take the text before a tab as a title if it looks like one.
        title, _, attr = s.partition("\t")
        if title and "#:#" not in title:
            items.append({"title": title, "attrs": parse_attr_string(attr)})
    for it in items:
        it["task"] = kind
        it["title"] = clean_title(it["title"])
    return items


OPENBG_RULE_CHECK: dict[str, Any] = {}


def load_openbg(path: Path, commits: dict[str, str], rejects: Rejects, seed: int) -> list[dict[str, Any]]:
    rows = read_jsonl(path)
    merged: dict[str, dict[str, Any]] = {}
    for lineno, row in rows:
        for it in parse_openbg_row(row):
            title = it["title"]
            if not title:
                rejects.add("openbg", "empty_title")
                continue
            key = title_key(title)
            m = merged.get(key)
            if m is None:
                m = merged[key] = {
                    "title": title,
                    "attrs": collections.OrderedDict(),
                    "coarse": None,
                    "fine": None,
                    "lines": [],
                    "tasks": [],
                }
            else:
                rejects.add("openbg", "merged_same_title_row")
            if lineno not in m["lines"]:
                m["lines"].append(lineno)
            if it["task"] not in m["tasks"]:
                m["tasks"].append(it["task"])
            for k, v in it["attrs"]:
                vals = m["attrs"].setdefault(k, [])
                if v not in vals:
                    vals.append(v)
            if it.get("fine") and not m["fine"]:
                m["coarse"], m["fine"] = it.get("coarse"), it["fine"]

    rejects.raw["openbg"] = f"{len(rows):,} task rows, {len(merged):,} distinct titles"
    labelled = [(m["title"], m["coarse"], m["fine"]) for m in merged.values() if m["fine"] and m["coarse"]]
    fine_tokens = learn_label_tokens(labelled)
    OPENBG_RULE_CHECK.clear()
    OPENBG_RULE_CHECK.update(rule_agreement(labelled))

    out = []
    for m in sorted(merged.values(), key=lambda m: m["lines"][0]):
        title = m["title"]
        reason = zh_quality_reject(title) or ("service_or_virtual" if is_service(title, []) else None)
        if reason:
            rejects.add("openbg", reason, title)
            continue
        attrs: dict[str, Any] = {}
        brand = None
        for k, vals in m["attrs"].items():
            vals = [v for v in vals if v.casefold() not in OPENBG_PLACEHOLDERS and v.strip()]
            if not vals:
                continue
            if k == "品牌":
                brand = vals[0]
            if k in OPENBG_NOISE_KEYS:
                continue
            attrs[k] = vals[0] if len(vals) == 1 else vals
        if m["fine"]:
            category = f"{m['coarse']} > {m['fine']}" if m["coarse"] else m["fine"]
            category_from = "source_label"
        else:
            hit = match_label_tokens(fine_tokens, title)
            kw = zh_keyword_top(title)
            if hit:
                category, category_from = f"{hit[0]} > {hit[1]}", "label_name_in_title"
            elif kw:
                category, category_from = f"{kw[0]} > {kw[1]}", "keyword_rule"
            else:
                category, category_from = "其他", "keyword_rule"
        tags = []
        for k in OPENBG_TAG_KEYS:
            v = attrs.get(k)
            if v:
                tags.extend(v if isinstance(v, list) else [v])
        tags = dedupe([t for t in tags if len(t) <= 12])[:8]
        desc_keys = [k for k in OPENBG_DESCRIPTION_KEYS if k in attrs]
        desc = "；".join(
            f"{k}：{'、'.join(attrs[k][:4]) if isinstance(attrs[k], list) else attrs[k]}" for k in desc_keys[:6]
        )
        rid = f"obg-{stable_hash(title)}"
        out.append(
            base_record(
                id=rid,
                title=title,
                description=desc,
                brand=brand,
                category=category,
                price=generate_price(seed, rid, category, title),
                currency="CNY",
                stock=generate_stock(seed, rid),
                attributes=attrs,
                tags=tags,
                language="zh",
                source=source_info(
                    "openbg",
                    m["lines"][0],
                    commits,
                    lines=m["lines"],
                    tasks=m["tasks"],
                    category_from=category_from,
                ),
                generated_fields=["price", "stock"],
            )
        )
    return out

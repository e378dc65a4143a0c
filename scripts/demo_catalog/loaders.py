"""Loaders for DummyJSON, the Taobao Double-11 beauty listings and the Taobao NER titles.

(OpenBG has its own module, ``openbg``.)
"""

from __future__ import annotations

import collections
import html
import json
import re
from pathlib import Path
from typing import Any

from .categories import beauty_category, dummyjson_category, zh_keyword_top
from .pricing import generate_price, generate_stock
from .quality import is_service, zh_quality_reject
from .records import Rejects, base_record, num_str, read_jsonl, source_info
from .tables import BEAUTY_EFFECT_TAGS
from .text import clean_title, dedupe, stable_hash


def load_dummyjson(path: Path, commits: dict[str, str], rejects: Rejects) -> list[dict[str, Any]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    products = raw["products"] if isinstance(raw, dict) else raw
    rejects.raw["dummyjson"] = f"{len(products):,} products"
    out = []
    for p in sorted(products, key=lambda p: int(p["id"])):
        title = clean_title(p.get("title"))
        reason = zh_quality_reject(title, "en") if title else "empty_title"
        if reason in ("empty_title", "too_short", "garbled_text"):
            rejects.add("dummyjson", reason, title)
            continue
        tags = [str(t) for t in p.get("tags") or []]
        attrs: dict[str, Any] = {}
        if p.get("sku"):
            attrs["sku"] = str(p["sku"])
        if p.get("discountPercentage") is not None:
            attrs["discount_percentage"] = num_str(p["discountPercentage"])
        if p.get("weight") is not None:
            attrs["weight"] = num_str(p["weight"])
        dims = p.get("dimensions") or {}
        if all(k in dims for k in ("width", "height", "depth")):
            attrs["dimensions"] = " x ".join(num_str(dims[k]) for k in ("width", "height", "depth"))
        for src, dst in (
            ("warrantyInformation", "warranty"),
            ("shippingInformation", "shipping"),
            ("returnPolicy", "return_policy"),
            ("minimumOrderQuantity", "minimum_order_quantity"),
        ):
            if p.get(src) not in (None, ""):
                attrs[dst] = num_str(p[src])
        out.append(
            base_record(
                id=f"dj-{p['id']}",
                title=title,
                description=clean_title(p.get("description")),
                brand=(p.get("brand") or None),
                category=dummyjson_category(p.get("category", ""), tags),
                price=float(p["price"]),
                currency="USD",
                stock=int(p.get("stock") or 0),
                attributes=attrs,
                tags=tags,
                image_url=p.get("thumbnail") or ((p.get("images") or [None])[0]),
                rating=float(p["rating"]) if p.get("rating") is not None else None,
                language="en",
                source=source_info("dummyjson", int(p["id"]), commits, category_from="source_slug_map"),
                generated_fields=[],
            )
        )
    return out


_BRAND_PREFIX_RE = re.compile(
    r"^(?:【[^】]*】|\[[^\]]*\]|\s)*([A-Za-z][A-Za-z0-9'’&.\- ]{0,30}?)\s*/\s*([\u4e00-\u9fff]{1,10})"
)
_VOLUME_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ml|毫升|g|克|kg|l)(?:\s*[*×xX]\s*(\d+))?(?![a-z])", re.I)
_SPF_RE = re.compile(r"spf\s*(\d+)\s*(\+?)", re.I)
_PA_RE = re.compile(r"\bpa\s*(\+{1,4})", re.I)


def beauty_attributes(title: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    vols = []
    for m in _VOLUME_RE.finditer(title):
        unit = m.group(2).lower()
        unit = {"毫升": "ml", "克": "g"}.get(unit, unit)
        v = f"{m.group(1)}{unit}" + (f"*{m.group(3)}" if m.group(3) else "")
        vols.append(v)
    vols = dedupe(vols)
    if vols:
        attrs["容量"] = vols[0] if len(vols) == 1 else vols
    spf = _SPF_RE.search(title)
    if spf:
        attrs["SPF"] = f"SPF{spf.group(1)}{spf.group(2)}"
    pa = _PA_RE.search(title)
    if pa:
        attrs["PA"] = f"PA{pa.group(1)}"
    if "男士" in title or "男用" in title:
        attrs["适用对象"] = "男士"
    return attrs


def load_taobao_beauty(path: Path, commits: dict[str, str], rejects: Rejects, seed: int) -> list[dict[str, Any]]:
    rows = read_jsonl(path)
    rejects.raw["taobao_double11_2016"] = f"{len(rows):,} rows"
    # Canonical brand per shop: the most common "EN/中文" title prefix whose Chinese part is the shop.
    prefixes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for _, r in rows:
        m = _BRAND_PREFIX_RE.match(r.get("title") or "")
        shop = (r.get("shop") or "").strip()
        if m and shop and m.group(2).startswith(shop):
            prefixes[shop][f"{m.group(1).strip()}/{shop}"] += 1
    shop_brand = {shop: c.most_common(1)[0][0] for shop, c in prefixes.items()}

    out = []
    for lineno, r in sorted(rows, key=lambda x: str(x[1].get("id"))):
        title = clean_title(r.get("title"))
        reason = zh_quality_reject(title) or ("service_or_virtual" if is_service(title, []) else None)
        if reason:
            rejects.add("taobao_double11_2016", reason, title)
            continue
        price = r.get("price_cny")
        if price is None or not isinstance(price, (int, float)) or price < 0:
            rejects.add("taobao_double11_2016", "no_price")
            continue
        shop = (r.get("shop") or "").strip() or None
        brand = shop_brand.get(shop or "") or shop
        rid = f"tb11-{r['id']}"
        attrs = beauty_attributes(title)
        low = title.casefold()
        tags = [t for t in BEAUTY_EFFECT_TAGS if t in low]
        desc = "；".join(f"{k}：{'、'.join(v) if isinstance(v, list) else v}" for k, v in attrs.items())
        out.append(
            base_record(
                id=rid,
                title=title,
                description=desc,
                brand=brand,
                category=beauty_category(title),
                price=float(price),
                currency="CNY",
                stock=generate_stock(seed, rid),
                attributes=attrs,
                tags=tags,
                sale_count=r.get("sale_count"),
                comment_count=r.get("comment_count"),
                language="zh",
                source=source_info(
                    "taobao_double11_2016",
                    str(r["id"]),
                    commits,
                    line=lineno,
                    shop=shop,
                    snapshot_date=r.get("snapshot_date"),
                    category_from="keyword_rule",
                ),
                generated_fields=["stock"],
            )
        )
    return out


# NER titles --------------------------------------------------------------------------------------

_TRAILING_ENTITY_RE = re.compile(r"&[A-Za-z]{2,8}$")
_PUNCT_STRIP = " .,;:!?、，。；：！？·-_/\\|()（）【】[]{}\"'“”‘’"


def load_ner(path: Path, commits: dict[str, str], rejects: Rejects, seed: int) -> list[dict[str, Any]]:
    out = []
    rows = read_jsonl(path)
    rejects.raw["taobao_titles_ner"] = f"{len(rows):,} rows"
    for lineno, r in rows:
        title = clean_title(r.get("title"))
        # Upstream titles were cut at ';', leaving a dangling HTML entity ("...&middot").
        title = html.unescape(_TRAILING_ENTITY_RE.sub("", title)).strip()
        title = clean_title(title)
        reason = zh_quality_reject(title)
        if reason:
            rejects.add("taobao_titles_ner", reason, title)
            continue
        low = title.casefold()
        products = dedupe(w.strip(_PUNCT_STRIP) for w in (r.get("products") or []) if isinstance(w, str))
        products = [w for w in products if len(w) >= 2 and w.casefold() in low]
        if not products:
            rejects.add("taobao_titles_ner", "no_product_word", title)
            continue
        if is_service(title, products):
            rejects.add("taobao_titles_ner", "service_or_virtual", title)
            continue
        brands = [b.strip(_PUNCT_STRIP) for b in (r.get("brands") or []) if isinstance(b, str)]
        brands = [b for b in brands if b]
        category = None
        for w in products:
            hit = zh_keyword_top(w, whole_word=True)
            if hit:
                category = f"{hit[0]} > {w}"
                break
        if category is None:
            hit = zh_keyword_top(title)
            category = f"{hit[0]} > {hit[1]}" if hit else f"其他 > {products[0]}"
        rid = f"ner-{stable_hash(title)}"
        out.append(
            base_record(
                id=rid,
                title=title,
                description="",
                brand=brands[0] if brands else None,
                category=category,
                price=generate_price(seed, rid, category, title),
                currency="CNY",
                stock=generate_stock(seed, rid),
                attributes={"产品词": products},
                tags=products[:8],
                language="zh",
                source=source_info(
                    "taobao_titles_ner",
                    lineno,
                    commits,
                    split=r.get("split"),
                    category_from="keyword_rule",
                ),
                generated_fields=["price", "stock"],
            )
        )
    return out

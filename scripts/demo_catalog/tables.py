"""The data tables in ``data/*.json``, loaded once at import time (see ``README.md``).

JSON objects keep their file order, which matters where the code breaks ties by table order
(keyword tables, ordered rules). Regex tables are stored as pattern strings and compiled here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"


def load_table(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


# Sources, in priority order (an exact duplicate title keeps the record of the earlier source).
_SOURCES: list[dict[str, str]] = load_table("sources.json")
SOURCE_ORDER = [s["name"] for s in _SOURCES]
SOURCE_FILES = {s["name"]: s["file"] for s in _SOURCES}
SOURCE_REPOS = {s["name"]: s["repo"] for s in _SOURCES}
ID_PREFIX = {s["name"]: s["id_prefix"] for s in _SOURCES}

# Generated prices: median (CNY) by keyword, then by top-level category, then a default.
_PRICES: dict[str, Any] = load_table("price_medians.json")
PRICE_MEDIAN_BY_KEYWORD: dict[str, int] = _PRICES["by_keyword"]
PRICE_MEDIAN_BY_TOP: dict[str, int] = _PRICES["by_top"]
DEFAULT_PRICE_MEDIAN: int = _PRICES["default"]
PRICE_SIGMA: float = _PRICES["sigma"]

# DummyJSON slug -> readable category path.
_DUMMYJSON: dict[str, Any] = load_table("dummyjson_categories.json")
DUMMYJSON_CATEGORIES: dict[str, str] = _DUMMYJSON["slug_paths"]
DUMMYJSON_TYPE_FROM_TAG: set[str] = set(_DUMMYJSON["type_from_tag"])

# Taobao beauty categories: ordered keyword rules (first hit wins), suffix regex fallbacks, sets.
_BEAUTY: dict[str, Any] = load_table("beauty_categories.json")
BEAUTY_RULES: list[tuple[tuple[str, ...], str]] = [(tuple(r["keywords"]), r["category"]) for r in _BEAUTY["rules"]]
BEAUTY_SUFFIX_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r["pattern"]), r["category"]) for r in _BEAUTY["suffix_rules"]
]
BEAUTY_SET_WORDS: tuple[str, ...] = tuple(_BEAUTY["set_words"])
BEAUTY_SET_CATEGORY: str = _BEAUTY["set_category"]
BEAUTY_FALLBACK_CATEGORY: str = _BEAUTY["fallback_category"]
BEAUTY_EFFECT_TAGS: tuple[str, ...] = tuple(load_table("beauty_effect_tags.json"))


def _zh_top_keywords(groups: dict[str, list[str]]) -> dict[str, str]:
    """Flatten {top: [keyword, ...]}; a keyword listed under several tops keeps the first."""
    table: dict[str, str] = {}
    for top, words in groups.items():
        for w in words:
            table.setdefault(w, top)
    return table


# Chinese product keyword -> top-level category, for titles without a source label.
ZH_TOP_KEYWORDS = _zh_top_keywords(load_table("zh_top_keywords.json"))

# Services, virtual goods and logistics: not products a shopping assistant should recommend.
_SERVICE: dict[str, list[str]] = load_table("service_words.json")
SERVICE_WORDS: tuple[str, ...] = tuple(_SERVICE["product_word_services"])
SERVICE_TITLE_PHRASES: tuple[str, ...] = tuple(_SERVICE["title_phrases"])
VIRTUAL_HEADS: tuple[str, ...] = tuple(_SERVICE["virtual_heads"])

# OpenBG attribute cleaning.
_OPENBG: dict[str, list[str]] = load_table("openbg_attributes.json")
OPENBG_NOISE_KEYS: set[str] = set(_OPENBG["noise_keys"])
OPENBG_PLACEHOLDERS: set[str] = set(_OPENBG["placeholder_values"])
OPENBG_TAG_KEYS: tuple[str, ...] = tuple(_OPENBG["tag_keys"])
OPENBG_DESCRIPTION_KEYS: tuple[str, ...] = tuple(_OPENBG["description_keys"])

"""Locate the inputs, run the four loaders and merge them (dedupe by title, stable order)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .loaders import load_dummyjson, load_ner, load_taobao_beauty
from .openbg import load_openbg
from .records import Rejects
from .tables import SOURCE_FILES, SOURCE_ORDER
from .text import title_key

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "shopassist" / "resources" / "demo_catalog.jsonl"


def resolve_data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg).expanduser().resolve()
    env = os.environ.get("SHOPASSIST_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def build(data_dir: Path, seed: int) -> tuple[list[dict[str, Any]], Rejects, dict[str, int]]:
    cat_dir = data_dir / "catalogs"
    missing = [f for f in SOURCE_FILES.values() if not (cat_dir / f).is_file()]
    if missing:
        raise SystemExit(
            f"error: missing input files in {cat_dir}: {', '.join(missing)}. "
            "Pass --data DIR or set SHOPASSIST_SHARED_DATA to the shared data folder."
        )
    commits: dict[str, str] = {}
    sources_json = data_dir / "SOURCES.json"
    if sources_json.is_file():
        commits = json.loads(sources_json.read_text(encoding="utf-8"))

    rejects = Rejects()
    per_source = {
        "dummyjson": load_dummyjson(cat_dir / SOURCE_FILES["dummyjson"], commits, rejects),
        "taobao_double11_2016": load_taobao_beauty(
            cat_dir / SOURCE_FILES["taobao_double11_2016"], commits, rejects, seed
        ),
        "openbg": load_openbg(cat_dir / SOURCE_FILES["openbg"], commits, rejects, seed),
        "taobao_titles_ner": load_ner(cat_dir / SOURCE_FILES["taobao_titles_ner"], commits, rejects, seed),
    }
    candidates = {s: len(v) for s, v in per_source.items()}

    seen_titles: set[str] = set()
    seen_ids: set[str] = set()
    records: list[dict[str, Any]] = []
    for src in SOURCE_ORDER:
        for rec in per_source[src]:
            key = title_key(rec["title"])
            if key in seen_titles:
                rejects.add(src, "duplicate_title", rec["title"])
                continue
            if rec["id"] in seen_ids:  # hash collision on different titles: keep the first
                rejects.add(src, "duplicate_id")
                continue
            seen_titles.add(key)
            seen_ids.add(rec["id"])
            records.append(rec)

    def sort_key(rec: dict[str, Any]) -> tuple[int, str, int]:
        src = SOURCE_ORDER.index(rec["source"]["dataset"])
        suffix = rec["id"].split("-", 1)[1]
        return (src, "" if suffix.isdigit() else suffix, int(suffix) if suffix.isdigit() else 0)

    records.sort(key=sort_key)
    return records, rejects, candidates

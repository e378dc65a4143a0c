"""Shared loader plumbing: the reject tally, JSONL reading and the record skeleton."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

from .tables import SOURCE_REPOS


class Rejects:
    def __init__(self) -> None:
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

        self.examples: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        self.raw: dict[str, str] = {}  # source -> what was read, for the notes

    def add(self, source: str, reason: str, example: str = "") -> None:
        self.counts[source][reason] += 1
        if example and len(self.examples[source, reason]) < 8:
            self.examples[source, reason].append(example)


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if line:
                rows.append((lineno, json.loads(line)))
    return rows


def num_str(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def base_record(**kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": None,
        "title": "",
        "description": "",
        "brand": None,
        "category": "其他",
        "price": 0.0,
        "currency": "CNY",
        "stock": 0,
        "attributes": {},
        "tags": [],
        "image_url": None,
        "rating": None,
        "sale_count": None,
        "comment_count": None,
        "language": "zh",
        "source": {},
        "generated_fields": [],
    }
    rec.update(kw)
    return rec


def source_info(dataset: str, record: Any, commits: dict[str, str], **extra: Any) -> dict[str, Any]:
    repo = SOURCE_REPOS[dataset]
    info = {"dataset": dataset, "repo": repo, "commit": commits.get(repo), "record": record}
    info.update(extra)
    return info

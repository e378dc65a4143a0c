"""ChineseEcomQA query understanding through the assistant's own LLM path.

Each item carries its task definition (``system_prompt``, with the dataset's own few-shot
examples), the query (``prompt``) and the gold answer (``gt``). The assistant's LLM client
answers with temperature 0; the answer's first line, stripped of the dataset's answer markers,
is compared with ``gt`` (exact match after trimming spaces and punctuation at the ends).
Baseline from the same run: the most frequent gold answer of each task (majority class).
Tasks: ITC (intent class), AC (attribute extraction), SC (spelling correction), RLC (relevance
相关/不相关), CC (fine category).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from shopassist.errors import ShopAssistError, UsageError

_MARKERS = re.compile(r"^\s*(\*{0,3}\s*答案\s*\*{0,3}\s*[:：]?|answer\s*[:：])\s*", re.IGNORECASE)
_EDGES = " \t\r\n。.，,：:；;！!？?\"'“”‘’*`"


def normalise(text: str) -> str:
    text = (text or "").strip()
    text = _MARKERS.sub("", text)
    first = next((line for line in text.splitlines() if line.strip()), "")
    return _MARKERS.sub("", first).strip(_EDGES)


def load_items(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist (expected chinese_ecomqa_query/items.jsonl).")
    items = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if line.strip():
                row = json.loads(line)
                if not {"task", "system_prompt", "prompt", "gt"} <= set(row):
                    raise UsageError(f"{path}:{line_no}: needs task, system_prompt, prompt, gt")
                items.append(row)
    return items


def sample_items(items: list[dict[str, Any]], per_task: int | None, seed: int) -> list[dict[str, Any]]:
    if not per_task:
        return items
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        by_task[it["task"]].append(it)
    rng = random.Random(seed)
    out = []
    for task in sorted(by_task):
        group = by_task[task]
        out.extend(rng.sample(group, min(per_task, len(group))))
    return out


def answer(llm: Any, item: dict[str, Any], max_tokens: int = 48) -> str:
    messages = [{"role": "system", "content": item["system_prompt"]}, {"role": "user", "content": item["prompt"]}]
    try:
        return "".join(llm.stream(messages, max_tokens=max_tokens, temperature=0))
    except ShopAssistError as exc:
        return f"<error: {exc}>"


def run_query_understanding(
    path: Path, *, llm: Any, per_task: int | None = None, seed: int = 0, progress: bool = False
) -> dict[str, Any]:
    from tqdm import tqdm

    items = sample_items(load_items(path), per_task, seed)
    majority = {
        task: Counter(normalise(i["gt"]) for i in items if i["task"] == task).most_common(1)[0][0]
        for task in {i["task"] for i in items}
    }
    correct: Counter[str] = Counter()
    base: Counter[str] = Counter()
    total: Counter[str] = Counter()
    examples: dict[str, list[dict[str, str]]] = defaultdict(list)
    started = time.perf_counter()
    for item in tqdm(items, desc="query understanding", unit="item", disable=not progress):
        task = item["task"]
        got = normalise(answer(llm, item))
        gold = normalise(item["gt"])
        total[task] += 1
        correct[task] += got == gold
        base[task] += majority[task] == gold
        if got != gold and len(examples[task]) < 3:
            examples[task].append({"prompt": item["prompt"][-80:], "gold": gold, "got": got})
    tasks = sorted(total)
    return {
        "dataset": "chinese_ecomqa_query",
        "items": sum(total.values()),
        "per_task_sample": per_task,
        "seed": seed,
        "llm": llm.info() if hasattr(llm, "info") else None,
        "accuracy": {t: round(correct[t] / total[t], 4) for t in tasks},
        "majority_baseline": {t: round(base[t] / total[t], 4) for t in tasks},
        "overall": round(sum(correct.values()) / max(1, sum(total.values())), 4),
        "counts": {t: total[t] for t in tasks},
        "seconds": round(time.perf_counter() - started, 1),
        "wrong_examples": examples,
    }

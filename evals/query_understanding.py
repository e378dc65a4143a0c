"""ChineseEcomQA query understanding through the assistant's own LLM path.

Each item carries its task definition (``system_prompt``, with the dataset's own few-shot
examples), the query (``prompt``) and the gold answer (``gt``). The assistant's LLM client
answers with temperature 0; the answer's first line, stripped of the dataset's answer markers,
is compared with ``gt`` (exact match after trimming spaces and punctuation at the ends).
Baseline from the same run: the most frequent gold answer of each task (majority class).

Where the task definition itself closes the answer set (the intent labels ITC lists, the two
relevance grades of RLC, the candidate categories or the yes/no form of CC, and for AC the words
of the query, since the answer is a span of it), the model answers through the client's
structured output with that set as a JSON-schema ``enum``: the same constrained decoding the
assistant uses to read a message, so a small model cannot answer off the list. SC (spelling
correction) stays free text. ``--free`` turns the constraint off, to measure what it adds.
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


_ITC_LABELS = re.compile(r"候选意图有['‘“]([^'’”]+)['’”]")
_RLC_GRADES = re.compile(r"分为[两二三四五\d]+档，分别为([^，,。\n]+)")
_CC_CANDIDATES = re.compile(r"候选细粒度品类\**[:：]([^\n]+)")
_CC_YES_NO = re.compile(r"是[^\n]{1,40}吗[？?]")
_AC_QUERY = re.compile(r"\*{0,3}query\*{0,3}[:：]\s*([^\n]+)")
_GLOSS = re.compile(r"[（(][^）)]*[）)]")
MAX_SPAN = 16


def _split(text: str) -> list[str]:
    return [w.strip() for w in re.split(r"[、,，]", _GLOSS.sub("", text)) if w.strip()]


def options(item: dict[str, Any]) -> list[str] | None:
    """The closed answer set the task definition gives for this item, or None (free text)."""
    task, system, prompt = item["task"], item["system_prompt"], item["prompt"]
    found: list[str] = []
    labels = {"ITC": _ITC_LABELS, "RLC": _RLC_GRADES}.get(task)
    if labels is not None and (m := labels.search(system)):
        found = _split(m.group(1))
    elif task == "CC":
        if m := _CC_CANDIDATES.search(prompt):
            found = [w.strip() for w in re.split(r"[,，、]", m.group(1)) if w.strip()]
        elif _CC_YES_NO.search(prompt):
            found = ["是", "否"]
    elif task == "AC" and (queries := _AC_QUERY.findall(prompt)):
        query = queries[-1].strip()
        spans = {query[i:j].strip() for i in range(len(query)) for j in range(i + 1, min(len(query), i + MAX_SPAN) + 1)}
        found = sorted((s for s in spans if s), key=lambda s: (query.find(s), -len(s)))
    unique = list(dict.fromkeys(found))
    return unique if len(unique) >= 2 else None


def answer(llm: Any, item: dict[str, Any], max_tokens: int = 48, *, constrained: bool = True) -> str:
    messages = [{"role": "system", "content": item["system_prompt"]}, {"role": "user", "content": item["prompt"]}]
    choices = options(item) if constrained else None
    try:
        if choices:
            schema = {
                "type": "object",
                "properties": {"答案": {"type": "string", "enum": choices}},
                "required": ["答案"],
                "additionalProperties": False,
            }
            value = llm.structured(messages, schema, max_tokens=max_tokens, temperature=0)
            got = value.get("答案") if isinstance(value, dict) else None
            if isinstance(got, str):
                return got
        return "".join(llm.stream(messages, max_tokens=max_tokens, temperature=0))
    except ShopAssistError as exc:
        return f"<error: {exc}>"


def run_query_understanding(
    path: Path,
    *,
    llm: Any,
    per_task: int | None = None,
    seed: int = 0,
    progress: bool = False,
    constrained: bool = True,
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
        got = normalise(answer(llm, item, constrained=constrained))
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
        "constrained": constrained,
        "accuracy": {t: round(correct[t] / total[t], 4) for t in tasks},
        "majority_baseline": {t: round(base[t] / total[t], 4) for t in tasks},
        "overall": round(sum(correct.values()) / max(1, sum(total.values())), 4),
        "counts": {t: total[t] for t in tasks},
        "seconds": round(time.perf_counter() - started, 1),
        "wrong_examples": examples,
    }

"""Check an LLM server end to end on the shop's own tools: structured output and real tool calls.

    .venv/bin/python benchmarks/check_llm_tools.py                       # the embedded llama.cpp model
    .venv/bin/python benchmarks/check_llm_tools.py --base-url http://127.0.0.1:8000/v1   # vLLM etc.

What it checks, against a small catalog built here (six products, zh and en) and the real
``ToolRegistry`` (the five tools the API serves):

1. structured output: ``LLMClient.structured`` with a JSON schema whose answer is an ``enum``
   returns a JSON object with a listed value (the form vLLM's guided decoding expects);
2. tool choice: for each probe message the model is offered the five tools with
   ``tool_choice="auto"``; the probe passes when it calls the expected tool with arguments the
   registry accepts (a call that fails validation is a failure, not a pass);
3. forced tool choice: ``tool_choice="search_products"`` returns a search call;
4. the model-driven loop (``assistant.toolloop.run_tool_loop``): the model searches, reads the
   results and answers in text naming a product of the catalog.

Prints a table and writes ``benchmarks/results/llm-tools-<date>.json`` (``--out`` to change).
Exit status 0 when every check passed, 1 otherwise: the same script runs on a GPU host against
vLLM (see ``scripts/gpu_vllm_check.sh``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CATALOG = [
    {"id": "b1", "title": "Waterproof leather hiking boots", "category": "Shoes > Boots", "price": 89.0,
     "currency": "USD", "brand": "Trailco", "stock": 5, "attributes": {"colour": "brown"}},
    {"id": "b2", "title": "Trail running shoes, breathable mesh", "category": "Shoes > Running", "price": 59.0,
     "currency": "USD", "brand": "Fleet", "stock": 9},
    {"id": "b3", "title": "Insulated winter snow boots", "category": "Shoes > Boots", "price": 129.0,
     "currency": "USD", "brand": "Polar", "stock": 2},
    {"id": "z1", "title": "高腰修身牛仔裤女 弹力显瘦", "category": "女装 > 牛仔裤", "price": 129.0,
     "currency": "CNY", "stock": 30},
    {"id": "z2", "title": "加绒直筒牛仔裤女 冬季保暖", "category": "女装 > 牛仔裤", "price": 159.0,
     "currency": "CNY", "stock": 12},
    {"id": "z3", "title": "补水保湿面霜 干皮适用 50g", "category": "美妆 > 面霜", "price": 99.0,
     "currency": "CNY", "stock": 40},
]  # fmt: skip

PROBES = [
    ("hiking boots under $100, waterproof", "search_products"),
    ("牛仔裤女 150以内 要高腰的", "search_products"),
    ("tell me everything about product b3", "get_product"),
    ("compare products b1 and b3", "compare_products"),
    ("show me products similar to z1", "similar_products"),
]
SYSTEM = (
    "You are a shop assistant. Use the tools to find products; never invent products or prices. "
    "Product ids look like b1, z2."
)


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, round((time.perf_counter() - started) * 1000, 1)


def run(llm: Any, registry: Any) -> list[dict[str, Any]]:
    from assistant.toolloop import run_tool_loop

    checks: list[dict[str, Any]] = []
    schema = {
        "type": "object",
        "properties": {"intent": {"type": "string", "enum": ["search", "question", "chitchat"]}},
        "required": ["intent"],
    }
    msgs = [{"role": "system", "content": "Classify the shopper's message."}, {"role": "user", "content": "red shoes"}]
    try:
        value, ms = _timed(lambda: llm.structured(msgs, schema, max_tokens=32))
        ok = isinstance(value, dict) and value.get("intent") in {"search", "question", "chitchat"}
        checks.append({"check": "structured output (enum)", "ok": ok, "got": value, "ms": ms})
    except Exception as exc:  # every failure is a finding, never a crash of the check
        checks.append({"check": "structured output (enum)", "ok": False, "got": repr(exc), "ms": None})
    for message, expected in PROBES:
        history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": message}]
        try:
            reply, ms = _timed(lambda h=history: llm.chat_with_tools(h, registry.schemas(), max_tokens=256))
            calls = [(c["name"], c["arguments"]) for c in reply.tool_calls]
            valid = [registry.call(name, args).ok for name, args in calls]
            ok = bool(calls) and calls[0][0] == expected and valid[0]
            got: Any = [{"name": n, "arguments": a, "valid": v} for (n, a), v in zip(calls, valid, strict=True)]
            got = got or {"text": reply.text[:200]}
        except Exception as exc:
            ok, got, ms = False, repr(exc), None
        checks.append({"check": f"auto tool choice: {message!r} -> {expected}", "ok": ok, "got": got, "ms": ms})
    history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "boots"}]
    try:
        reply, ms = _timed(
            lambda: llm.chat_with_tools(history, registry.schemas(), tool_choice="search_products", max_tokens=128)
        )
        ok = bool(reply.tool_calls) and reply.tool_calls[0]["name"] == "search_products"
        checks.append({"check": "forced tool_choice=search_products", "ok": ok, "got": reply.tool_calls, "ms": ms})
    except Exception as exc:
        checks.append({"check": "forced tool_choice=search_products", "ok": False, "got": repr(exc), "ms": None})
    history = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "I need winter boots. Which do you have?"},
    ]
    try:
        (text, calls), ms = _timed(lambda: run_tool_loop(llm, registry, history, max_steps=3))
        titles = [p["title"].casefold() for p in CATALOG]
        names_one = any(w in text.casefold() for t in titles for w in t.split() if len(w) > 5)
        ok = any(c["name"] == "search_products" and c["ok"] for c in calls) and bool(text.strip()) and names_one
        got = {"calls": calls, "text": text[:300]}
        checks.append({"check": "tool loop: search, read, answer", "ok": ok, "got": got, "ms": ms})
    except Exception as exc:
        checks.append({"check": "tool loop: search, read, answer", "ok": False, "got": repr(exc), "ms": None})
    return checks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", default=None, help="OpenAI-compatible server; default: the embedded model")
    ap.add_argument("--model", default=None)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--home", default=None, help="shopassist home (where the embedded model is assembled)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from assistant.llm import LLMSettings, open_llm
    from assistant.tools import ToolRegistry
    from retrieval import Catalog
    from retrieval.ingest import ingest_file
    from retrieval.testing import HashingEmbedder
    from shopassist.config import Settings

    settings = LLMSettings.from_env(base_url=args.base_url, model=args.model, api_key=args.api_key)
    with tempfile.TemporaryDirectory(prefix="shopassist-llm-tools-") as tmp:
        catalog_file = Path(tmp) / "catalog.jsonl"
        catalog_file.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in CATALOG) + "\n", encoding="utf-8")
        catalog = Catalog(Settings(home=Path(tmp) / "home", collection="llm-tools"), embedder=HashingEmbedder())
        ingest_file(catalog, catalog_file)
        home = args.home or Settings.from_env().home
        with open_llm(settings, home=home) as llm:
            info = llm.info()
            checks = run(llm, ToolRegistry(catalog))
    passed = sum(c["ok"] for c in checks)
    for c in checks:
        print(f"{'PASS' if c['ok'] else 'FAIL'}  {c['ms'] or '-':>8} ms  {c['check']}")
        if not c["ok"]:
            print(f"      got: {json.dumps(c['got'], ensure_ascii=False, default=str)[:300]}")
    print(f"{passed}/{len(checks)} checks passed on {info.get('model')} at {info.get('base_url')}")
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"llm-tools-{dt.date.today()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"llm": info, "passed": passed, "checks": checks}, ensure_ascii=False, indent=1, default=str),
        encoding="utf-8",
    )
    print(f"wrote {out}")
    return 0 if passed == len(checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())

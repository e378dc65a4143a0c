"""Dialogue suites: multi-turn conversations replayed through the agent, each turn's top 5
products checked against expectations.

Suite format (JSONL, one dialogue a line)::

    {"id": "...", "catalog": "catalogs/x.jsonl", "turns": [{"user": "...", "expect": {...}}]}

``catalog`` is relative to the suite file and loaded into a fresh temporary home per dialogue.
``expect`` keys: ``all_match`` / ``any_match`` / ``none_match`` (each a check with
``price_max``, ``price_min``, ``category_contains``, ``text_contains`` (list: any of),
``brand_in`` (list)) and ``min_results``. ``all_match``: every shown product satisfies every
field; ``any_match``: at least one product satisfies every field; ``none_match``: no product
satisfies any one of the fields.

Grounding is counted for every turn: shown products that are not in the catalog, card prices
that differ from the record, reply lines whose numbers/brands/facets are not in their product's
record (after the agent's own check: what the shopper would have seen), and the LLM lines the
agent replaced.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from shopassist.config import Settings
from shopassist.errors import UsageError
from shopassist.models import Product

CHECK_FIELDS = ("price_max", "price_min", "category_contains", "text_contains", "brand_in")
EXPECT_KEYS = ("all_match", "any_match", "none_match", "min_results")


def _field_ok(p: Product, name: str, value: Any) -> bool:
    if name == "price_max":
        return p.price is not None and p.price <= float(value)
    if name == "price_min":
        return p.price is not None and p.price >= float(value)
    if name == "category_contains":
        return str(value) in p.category
    if name == "text_contains":
        text = " ".join([p.title, p.brand or "", *p.attribute_values()])
        return any(str(v) in text for v in value)
    if name == "brand_in":
        names = {p.brand or ""} | set((p.brand or "").split("/"))
        return any(str(b) in names for b in value)
    raise UsageError(f"unknown expectation field {name!r}: use {', '.join(CHECK_FIELDS)}")


def check_turn(products: list[Product], expect: dict[str, Any]) -> list[str]:
    """The failed expectations of one turn (empty when it passes)."""
    unknown = set(expect) - set(EXPECT_KEYS)
    if unknown:
        raise UsageError(f"unknown expect keys {sorted(unknown)}: use {', '.join(EXPECT_KEYS)}")
    top = products[:5]
    failures = []
    if "min_results" in expect and len(top) < int(expect["min_results"]):
        failures.append(f"min_results {expect['min_results']}: shown {len(top)}")
    if "all_match" in expect:
        for p in top:
            bad = [f for f, v in expect["all_match"].items() if not _field_ok(p, f, v)]
            if bad:
                failures.append(f"all_match: {p.id} fails {', '.join(bad)}")
    if "any_match" in expect and not any(all(_field_ok(p, f, v) for f, v in expect["any_match"].items()) for p in top):
        failures.append("any_match: no shown product satisfies every field")
    if "none_match" in expect:
        for p in top:
            hit = [f for f, v in expect["none_match"].items() if _field_ok(p, f, v)]
            if hit:
                failures.append(f"none_match: {p.id} matches {', '.join(hit)}")
    return failures


def default_suite() -> Path:
    """The project's own suite (65 dialogues, 7 catalogs), shipped in the repository."""
    return Path(__file__).resolve().parent / "data" / "dialogues" / "dialogues.jsonl"


def load_suite(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"Dialogue suite {path} does not exist.")
    out = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                assert isinstance(d.get("turns"), list) and d.get("id")
            except (json.JSONDecodeError, AssertionError):
                raise UsageError(f"{path}:{line_no}: not a dialogue (needs id and turns)") from None
            out.append(d)
    return out


def dialogue_settings(settings: Settings, home: Path, catalog_file: Path | None) -> Settings:
    """``settings`` over a dialogue's fresh ``home`` (every backend option kept). With a Chroma
    server the vectors go to a collection of their own per catalog file and embedder, never the
    shopper-facing one (an embedded Chroma lives under ``home`` anyway)."""
    from evals.common import file_digest

    tag = file_digest(catalog_file) if catalog_file is not None else "empty"
    return replace(settings.with_home(home), collection=f"eval-dialogues-{settings.embedder}-{tag}")


def run_dialogues(
    path: Path,
    *,
    settings: Settings,
    llm: Any = None,
    progress: bool = False,
    limit: int | None = None,
) -> dict[str, Any]:
    from tqdm import tqdm

    from assistant.grounding import GroundingChecker
    from assistant.stack import build_stack
    from retrieval.embedders import make_embedder

    path = Path(path)
    suite = load_suite(path)[:limit] if limit else load_suite(path)
    embedder = make_embedder(settings)
    turns_total = turns_passed = dialogues_passed = 0
    ungrounded_products = ungrounded_prices = ungrounded_lines_shown = llm_lines_replaced = llm_lines_checked = 0
    failures: list[dict[str, Any]] = []
    per_dialogue = []
    latencies: list[float] = []
    first_products: list[float] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shopassist-dialogues-") as tmp:
        for d in tqdm(suite, desc="dialogues", unit="dialogue", disable=not progress):
            catalog_file = path.parent / d["catalog"] if d.get("catalog") else None
            dsettings = dialogue_settings(settings, Path(tmp) / d["id"].replace("/", "_"), catalog_file)
            # the product's configuration: the behaviour ranker, with a fresh event log per dialogue
            stack = build_stack(dsettings, llm=llm, embedder=embedder, catalog_file=catalog_file)
            report = stack.ingest_report
            if report is not None and report.rejected:
                stack.close()
                raise UsageError(f"{d['id']}: {report.rejected} catalog rows rejected: {report.rejects[0].reason}")
            agent, catalog = stack.agent, stack.catalog
            checker = GroundingChecker(brands=agent.checker.brands, facet_values=agent.checker.facet_values)
            ok_all = True
            for i, turn in enumerate(d["turns"], 1):
                result = agent.ask(d["id"], turn["user"])
                latencies.append(result.timings.get("total_ms", 0.0))
                first_products.append(result.timings.get("first_products_ms", 0.0))
                products = []
                for card in result.cards:
                    p = catalog.get(card["id"])
                    if p is None:
                        ungrounded_products += 1
                        continue
                    if card.get("price") != p.price:
                        ungrounded_prices += 1
                    products.append(p)
                # re-check the lines the shopper saw against the records, independently
                for line, p in zip(result.lines, products, strict=False):
                    if checker.check_line(line, p):
                        ungrounded_lines_shown += 1
                llm_lines_checked += result.grounding.get("checked_lines", 0)
                llm_lines_replaced += result.grounding.get("ungrounded_replaced", 0)
                problems = check_turn(products, turn.get("expect", {}))
                turns_total += 1
                if problems:
                    ok_all = False
                    failures.append(
                        {
                            "dialogue": d["id"],
                            "turn": i,
                            "user": turn["user"],
                            "problems": problems,
                            "intent": result.intent,
                            "constraints": result.constraints,
                            "shown": [f"{p.id} {p.title} {p.price} {p.currency}" for p in products[:5]],
                        }
                    )
                else:
                    turns_passed += 1
            stack.close()
            dialogues_passed += ok_all
            per_dialogue.append({"id": d["id"], "passed": ok_all})
    latencies.sort()
    first_products.sort()
    return {
        "suite": str(path),
        "llm": getattr(llm, "info", lambda: None)() if llm is not None else None,
        "dialogues": len(suite),
        "turns": turns_total,
        "turns_passed_share": round(turns_passed / turns_total, 4) if turns_total else 0.0,
        "dialogues_passed_share": round(dialogues_passed / len(suite), 4) if suite else 0.0,
        "grounding": {
            "ungrounded_products_shown": ungrounded_products,
            "ungrounded_prices_shown": ungrounded_prices,
            "ungrounded_lines_shown": ungrounded_lines_shown,
            "llm_lines_checked": llm_lines_checked,
            "llm_lines_replaced_by_template": llm_lines_replaced,
        },
        "turn_ms_p50": round(latencies[len(latencies) // 2], 1) if latencies else None,
        "first_products_ms_p50": round(first_products[len(first_products) // 2], 1) if first_products else None,
        "seconds": round(time.perf_counter() - started, 1),
        "failures": failures,
        "per_dialogue": per_dialogue,
    }

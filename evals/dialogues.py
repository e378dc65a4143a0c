"""Dialogue suites: multi-turn conversations replayed through the agent, each turn's result
checked against expectations.

Suite format (JSONL, one dialogue a line)::

    {"id": "...", "catalog": "catalogs/x.jsonl" | "demo", "turns": [{"user": "...", "expect": {...}}]}

``catalog`` is a path relative to the suite file, or ``"demo"``: the bundled demo catalog
(``shopassist/resources/demo_catalog.jsonl``, 10,485 products).

``expect`` keys on the products shown as matches (``TurnResult.products``, the top 5 counted;
labelled alternatives are not matches): ``all_match`` / ``any_match`` / ``none_match`` (each a
check with ``price_max``, ``price_min``, ``category_contains``, ``text_contains`` (list: any of),
``brand_in`` (list)), ``min_results`` and ``max_results`` (at most N shown as matches; 0 when
the shop does not carry the thing). ``all_match``: every shown product satisfies every field;
``any_match``: at least one product satisfies every field; ``none_match``: no product
satisfies any one of the fields.

``expect`` keys on the rest of the ``TurnResult``: ``reply_contains`` (list: the reply contains
at least one, case-insensitive), ``reply_excludes`` (list: it contains none of them), ``act``
(the dialogue act the turn must be read as, one of ``assistant.events.DIALOGUE_ACTS``, or a list
of acceptable ones), ``answer`` (a string or a list of synonyms: the reply states the fact;
also counted apart as "answers correct") and ``not_shown_before`` (true: no product shown as a
match in the previous turn is shown again).

Every dialogue gets its own session store and event log (nothing one dialogue does reaches the
next); each catalog file is loaded once per run into a cached eval home keyed by the file's
digest and the embedder (``evals.common.eval_home``), so the 10k demo catalog is embedded once
and reused by later runs.

Grounding is counted for every turn: shown products that are not in the catalog, card prices
that differ from the record, reply lines whose numbers/brands/facets are not in their product's
record (after the agent's own check: what the shopper would have seen), and the LLM lines the
agent replaced.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopassist.config import Settings
from shopassist.errors import UsageError
from shopassist.models import Product

if TYPE_CHECKING:
    from assistant.events import TurnResult
    from assistant.stack import Stack
    from retrieval import Embedder

SHOWN = 5  # the top N products a turn's product checks look at
DEMO_CATALOG = "demo"  # ``"catalog": "demo"``: the bundled demo catalog
SUITE_NAMES = ("project", "demo")  # ``--suite`` names; anything else is a path
CHECK_FIELDS = ("price_max", "price_min", "category_contains", "text_contains", "brand_in")
PRODUCT_KEYS = ("all_match", "any_match", "none_match", "min_results", "max_results")
REPLY_KEYS = ("reply_contains", "reply_excludes", "act", "answer", "not_shown_before")
EXPECT_KEYS = PRODUCT_KEYS + REPLY_KEYS
NO_ACT = "unlabelled"  # the per-act bucket of turns whose expect names no act


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


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def expected_acts(expect: dict[str, Any]) -> list[str]:
    """The acts a turn may be read as (empty when its expect names none)."""
    return _as_list(expect["act"]) if "act" in expect else []


def answer_ok(reply: str, expect: dict[str, Any]) -> bool | None:
    """Whether the reply states the expected fact (None when the turn asks for no answer)."""
    if "answer" not in expect:
        return None
    text = reply.casefold()
    return any(a.casefold() in text for a in _as_list(expect["answer"]))


def check_turn(
    products: list[Product],
    expect: dict[str, Any],
    *,
    reply: str = "",
    act: str | None = None,
    shown: Sequence[str] | None = None,
    previous: Iterable[str] = (),
) -> list[str]:
    """The failed expectations of one turn (empty when it passes).

    ``products``: the products shown as matches, in order (the product checks look at the top
    5); ``shown``: their ids as the turn reported them (default: ``products``' ids; ``max_results``
    and ``not_shown_before`` count these, so an id missing from the catalog still counts);
    ``reply`` / ``act``: the turn's reply text and how it was read; ``previous``: the ids shown
    as matches in the previous turn."""
    unknown = set(expect) - set(EXPECT_KEYS)
    if unknown:
        raise UsageError(f"unknown expect keys {sorted(unknown)}: use {', '.join(EXPECT_KEYS)}")
    top = products[:SHOWN]
    shown_ids = list(shown) if shown is not None else [p.id for p in products]
    failures = []
    if "min_results" in expect and len(top) < int(expect["min_results"]):
        failures.append(f"min_results {expect['min_results']}: shown {len(top)}")
    if "max_results" in expect and len(shown_ids) > int(expect["max_results"]):
        failures.append(f"max_results {expect['max_results']}: shown {len(shown_ids)}")
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
    failures += _check_reply(expect, reply, act, shown_ids, set(previous))
    return failures


def _check_reply(
    expect: dict[str, Any], reply: str, act: str | None, shown: list[str], previous: set[str]
) -> list[str]:
    """The failed expectations on the reply, the act and the previous turn."""
    failures = []
    text = reply.casefold()
    if "reply_contains" in expect and not any(s.casefold() in text for s in _as_list(expect["reply_contains"])):
        failures.append(f"reply_contains: none of {_as_list(expect['reply_contains'])}")
    hits = [s for s in _as_list(expect.get("reply_excludes", [])) if s.casefold() in text]
    if hits:
        failures.append(f"reply_excludes: the reply says {hits}")
    acts = expected_acts(expect)
    if acts and act not in acts:
        failures.append(f"act: read as {act!r}, expected {'/'.join(acts)}")
    if answer_ok(reply, expect) is False:
        failures.append(f"answer: the reply does not state {_as_list(expect['answer'])}")
    if expect.get("not_shown_before"):
        again = [i for i in shown if i in previous]
        if again:
            failures.append(f"not_shown_before: shown again {again}")
    return failures


def check_result(
    result: TurnResult, products: list[Product], expect: dict[str, Any], previous: Iterable[str] = ()
) -> list[str]:
    """``check_turn`` on an agent's ``TurnResult``: ``products`` are the records of
    ``result.products`` (the caller looks them up in the catalog)."""
    return check_turn(
        products, expect, reply=result.reply, act=result.act, shown=list(result.products), previous=previous
    )


# -- suites ---------------------------------------------------------------------------------------
def suite_dir() -> Path:
    return Path(__file__).resolve().parent / "data" / "dialogues"


def default_suite() -> Path:
    """The project's own suite (65 dialogues, 7 catalogs), shipped in the repository."""
    return suite_dir() / "dialogues.jsonl"


def demo_suites() -> list[Path]:
    """The demo-catalog suites that exist: ``demo_zh.jsonl`` and ``demo_en.jsonl``."""
    return [p for p in (suite_dir() / "demo_zh.jsonl", suite_dir() / "demo_en.jsonl") if p.exists()]


def resolve_suites(spec: str | Path) -> list[Path]:
    """``project`` (the default suite), ``demo`` (the demo-catalog suites), a ``.jsonl`` file or a
    folder of them."""
    if str(spec) == "project":
        return [default_suite()]
    if str(spec) == "demo":
        found = demo_suites()
        if not found:
            raise UsageError(f"No demo dialogue suite (demo_zh.jsonl / demo_en.jsonl) in {suite_dir()}.")
        return found
    path = Path(spec)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise UsageError(f"No .jsonl dialogue suite in {path}.")
        return files
    if not path.exists():
        raise UsageError(f"Dialogue suite {path} does not exist (use project, demo, a .jsonl file or a folder).")
    return [path]


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


def catalog_file(suite_path: Path, dialogue: dict[str, Any]) -> Path | None:
    """The catalog file a dialogue names (``"demo"``: the bundled demo catalog), or None."""
    name = dialogue.get("catalog")
    if not name:
        return None
    if name == DEMO_CATALOG:
        from shopassist.resources import demo_catalog_path

        return demo_catalog_path()
    return Path(suite_path).parent / name


def _pick(suites: list[tuple[Path, list[dict[str, Any]]]], limit: int | None) -> list[tuple[Path, dict[str, Any]]]:
    """Every dialogue, or ``limit`` of them: the first N of one file; with several files, taken
    from each in turn (so a subset of the demo suites holds both languages)."""
    if limit is None:
        return [(path, d) for path, ds in suites for d in ds]
    queues = [[(path, d) for d in ds] for path, ds in suites]
    out: list[tuple[Path, dict[str, Any]]] = []
    while len(out) < limit and any(queues):
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return out


def catalog_settings(settings: Settings, path: Path) -> Settings:
    """The cached eval home of one catalog file: keyed by its digest and the embedder (the demo
    catalog shares the home of the replay suite)."""
    from evals.common import eval_home, file_digest
    from shopassist.resources import demo_catalog_path

    name = "demo" if path.resolve() == demo_catalog_path().resolve() else f"dialogues-{path.stem}"
    return eval_home(settings, name, file_digest(path))


@dataclass
class _Catalogs:
    """One loaded stack per catalog file for the whole run; dialogues borrow its catalog."""

    settings: Settings
    embedder: Embedder
    scratch: Path
    progress: bool
    stacks: dict[str, Stack] = field(default_factory=dict)

    def base(self, path: Path | None) -> Stack:
        from assistant.stack import build_stack

        key = str(path.resolve()) if path is not None else ""
        if key not in self.stacks:
            if path is None:  # a dialogue without a catalog: an empty home of its own
                base = build_stack(self.settings.with_home(self.scratch / "empty-catalog"), embedder=self.embedder)
            else:
                base = build_stack(
                    catalog_settings(self.settings, path),
                    embedder=self.embedder,
                    catalog_file=path,
                    progress=self.progress,
                )
            self.stacks[key] = base
            report = base.ingest_report
            if report is not None and report.rejected:
                raise UsageError(f"{path}: {report.rejected} catalog rows rejected: {report.rejects[0].reason}")
        return self.stacks[key]

    def dialogue_stack(self, path: Path | None, folder: Path, llm: Any) -> Stack:
        """A stack over the catalog's loaded catalog and retriever with a fresh session store and
        event log in ``folder`` (the behaviour ranker's configuration, as the product runs it).

        The catalog, the retriever and the agent's facet index are loaded once per catalog and
        shared (building the facet index of the 10k demo catalog takes ~10 s); everything a
        dialogue writes (session state, events, the ranker's profiles) is its own."""
        return self.base(path).fork(sessions_dir=folder / "sessions", events_path=folder / "events.sqlite", llm=llm)

    @staticmethod
    def release(stack: Stack) -> None:
        """Close what a dialogue's stack opened (its event log), never the shared catalog."""
        stack.close()

    def close(self) -> None:
        for stack in self.stacks.values():
            stack.close()
        self.stacks.clear()


@dataclass
class _Tally:
    """Counts over the run: turns, acts, answers, per file."""

    turns: int = 0
    passed: int = 0
    acts: Counter[str] = field(default_factory=Counter)
    acts_passed: Counter[str] = field(default_factory=Counter)
    acts_read: Counter[str] = field(default_factory=Counter)
    answers: int = 0
    answers_correct: int = 0
    files: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, file: str, expect: dict[str, Any], result: TurnResult, ok: bool) -> None:
        self.turns += 1
        self.passed += ok
        acts = expected_acts(expect)
        key = "/".join(acts) if acts else NO_ACT
        self.acts[key] += 1
        self.acts_passed[key] += ok
        self.acts_read[key] += bool(acts) and result.act in acts
        answered = answer_ok(result.reply, expect)
        if answered is not None:
            self.answers += 1
            self.answers_correct += answered
        per = self.files.setdefault(file, Counter())
        per["turns"] += 1
        per["turns_passed"] += ok

    def per_act(self) -> dict[str, dict[str, Any]]:
        return {
            act: {
                "turns": n,
                "passed": self.acts_passed[act],
                "passed_share": round(self.acts_passed[act] / n, 4),
                "read_as_act": self.acts_read[act] if act != NO_ACT else None,
            }
            for act, n in sorted(self.acts.items(), key=lambda kv: (kv[0] == NO_ACT, kv[0]))
        }


def run_dialogues(
    path: Path | Sequence[Path],
    *,
    settings: Settings,
    llm: Any = None,
    progress: bool = False,
    limit: int | None = None,
) -> dict[str, Any]:
    """Replay every dialogue of the suite file(s) through the agent (``llm``: an open client or
    None for rules and templates only); ``limit``: only N dialogues (see ``_pick``)."""
    from tqdm import tqdm

    from assistant.grounding import GroundingChecker
    from retrieval.embedders import make_embedder

    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    suite = _pick([(p, load_suite(p)) for p in paths], limit)
    embedder = make_embedder(settings)
    tally = _Tally()
    dialogues_passed = 0
    ungrounded_products = ungrounded_prices = ungrounded_lines_shown = llm_lines_replaced = llm_lines_checked = 0
    failures: list[dict[str, Any]] = []
    per_dialogue = []
    latencies: list[float] = []
    first_products: list[float] = []
    by_act_ms: dict[str, list[float]] = {}  # full-turn latency per act the agent read (questions vs needs)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shopassist-dialogues-") as tmp:
        catalogs = _Catalogs(settings, embedder, Path(tmp), progress)
        try:
            for n, (suite_path, d) in enumerate(tqdm(suite, desc="dialogues", unit="dialogue", disable=not progress)):
                cat_file = catalog_file(suite_path, d)
                catalogs.base(cat_file)  # load (or reuse) the catalog before the dialogue starts
                stack = catalogs.dialogue_stack(cat_file, Path(tmp) / f"d{n}", llm)
                try:
                    agent, catalog = stack.agent, stack.catalog
                    checker = GroundingChecker(brands=agent.checker.brands, facet_values=agent.checker.facet_values)
                    ok_all = True
                    previous: list[str] = []
                    for i, turn in enumerate(d["turns"], 1):
                        result = agent.ask(d["id"], turn["user"])
                        latencies.append(result.timings.get("total_ms", 0.0))
                        first_products.append(result.timings.get("first_products_ms", 0.0))
                        by_act_ms.setdefault(result.act, []).append(result.timings.get("total_ms", 0.0))
                        for card in result.cards:
                            p = catalog.get(card["id"])
                            if p is None:
                                ungrounded_products += 1
                            elif card.get("price") != p.price:
                                ungrounded_prices += 1
                        records = {pid: catalog.get(pid) for pid in result.products}
                        products = [p for p in records.values() if p is not None]
                        ungrounded_products += sum(
                            1 for pid, p in records.items() if p is None and pid not in {c["id"] for c in result.cards}
                        )
                        # re-check the lines the shopper saw against the records, independently
                        for line, p in zip(result.lines, products, strict=False):
                            if checker.check_line(line, p):
                                ungrounded_lines_shown += 1
                        llm_lines_checked += result.grounding.get("checked_lines", 0)
                        llm_lines_replaced += result.grounding.get("ungrounded_replaced", 0)
                        expect = turn.get("expect", {})
                        problems = check_result(result, products, expect, previous)
                        tally.add(suite_path.name, expect, result, not problems)
                        if problems:
                            ok_all = False
                            failures.append(
                                {
                                    "dialogue": d["id"],
                                    "turn": i,
                                    "user": turn["user"],
                                    "problems": problems,
                                    "act": result.act,
                                    "intent": result.intent,
                                    "constraints": result.constraints,
                                    "shown": [f"{p.id} {p.title} {p.price} {p.currency}" for p in products[:SHOWN]],
                                    "alternatives": list(result.alternatives),
                                    "reply": result.reply[:400],
                                }
                            )
                        previous = list(result.products)
                finally:
                    catalogs.release(stack)
                dialogues_passed += ok_all
                per_dialogue.append({"id": d["id"], "file": suite_path.name, "passed": ok_all})
        finally:
            catalogs.close()
    latencies.sort()
    first_products.sort()
    per_file: dict[str, dict[str, Any]] = {}
    for entry in per_dialogue:
        f = per_file.setdefault(entry["file"], {"dialogues": 0, "dialogues_passed": 0})
        f["dialogues"] += 1
        f["dialogues_passed"] += entry["passed"]
    for name, f in per_file.items():
        counts = tally.files.get(name, Counter())
        f["turns"] = counts["turns"]
        f["turns_passed_share"] = round(counts["turns_passed"] / counts["turns"], 4) if counts["turns"] else 0.0
    return {
        "suite": str(paths[0]) if len(paths) == 1 else [str(p) for p in paths],
        "llm": getattr(llm, "info", lambda: None)() if llm is not None else None,
        "dialogues": len(suite),
        "turns": tally.turns,
        "turns_passed_share": round(tally.passed / tally.turns, 4) if tally.turns else 0.0,
        "dialogues_passed_share": round(dialogues_passed / len(suite), 4) if suite else 0.0,
        "per_act": tally.per_act(),
        "answers": {
            "turns": tally.answers,
            "correct": tally.answers_correct,
            "share": round(tally.answers_correct / tally.answers, 4) if tally.answers else None,
        },
        "per_file": per_file,
        "grounding": {
            "ungrounded_products_shown": ungrounded_products,
            "ungrounded_prices_shown": ungrounded_prices,
            "ungrounded_lines_shown": ungrounded_lines_shown,
            "llm_lines_checked": llm_lines_checked,
            "llm_lines_replaced_by_template": llm_lines_replaced,
        },
        "turn_ms_p50": round(latencies[len(latencies) // 2], 1) if latencies else None,
        "first_products_ms_p50": round(first_products[len(first_products) // 2], 1) if first_products else None,
        "turn_ms_p50_by_act": {
            act: {"turns": len(ms), "p50": round(sorted(ms)[len(ms) // 2], 1)} for act, ms in sorted(by_act_ms.items())
        },
        "seconds": round(time.perf_counter() - started, 1),
        "failures": failures,
        "per_dialogue": per_dialogue,
    }

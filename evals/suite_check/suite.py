"""Walking the suite: every dialogue line, its catalog and labels, and every turn through the checks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .catalogs import DEMO, load_catalog, resolve_catalog
from .expectations import CHECK_KEYS, PRICE_FIELDS, REPLY_KEYS, validate_expect
from .labels import (
    DialogueState,
    Turn,
    check_around_followup,
    check_cheaper_followup,
    check_previous_turn,
    check_satisfiable,
    read_tags,
    remember_shown,
)
from .matching import MODES, field_ok, ids, in_stock, inside_word_hits, pool, witness
from .report import Report, Stats, new_stats

DIALOGUE_KEYS = {"id", "catalog", "turns"}
TURN_KEYS = {"user", "expect"}
TURNS = (2, 4)  # turns per dialogue
POOL_LISTED = 40  # -v lists at most this many products of a pool (the demo catalog's can hold thousands)


@dataclass
class SuiteRun:
    """What the checks share across the whole suite."""

    suite_path: Path
    labels_path: Path | None
    verbose: bool
    rep: Report = field(default_factory=Report)
    stats: Stats = field(default_factory=new_stats)
    labels: dict = field(default_factory=dict)
    catalogs: dict[str, list[dict]] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)
    warned_needles: set[tuple[str, str]] = field(default_factory=set)  # (catalog, text) warned about once


@dataclass
class Dialogue:
    """A dialogue line that passed the structural checks, with its catalog and labels."""

    did: str
    where: str
    turns: list
    cat_rel: str
    catalog: list[dict]
    prices: set[float]
    label: dict | None


def check_suite(suite_path: Path, labels_path: Path | None, verbose: bool) -> tuple[Report, dict]:
    """Check the suite file (and its labels, if the file exists); ``verbose`` prints every turn's pool."""
    run = SuiteRun(suite_path, labels_path, verbose)
    dialogues = _read_dialogues(suite_path, run.rep)
    if labels_path and labels_path.exists():
        run.labels = json.loads(labels_path.read_text(encoding="utf-8"))
    for n, d in dialogues:
        _check_dialogue(run, n, d)
    if run.labels:
        assert labels_path is not None
        for did in set(run.labels) - run.seen_ids:
            run.rep.error(f"{labels_path.name}: labels for unknown dialogue {did}")
    return run.rep, run.stats


def _read_dialogues(suite_path: Path, rep: Report) -> list[tuple[int, object]]:
    """(line number, parsed JSON) for every non-blank line that parses."""
    dialogues = []
    with open(suite_path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                rep.error(f"{suite_path.name}:{n}: invalid JSON ({exc})")
                continue
            dialogues.append((n, d))
    return dialogues


def _open_dialogue(run: SuiteRun, n: int, d: object) -> Dialogue | None:
    """The structural checks of one dialogue line; None when its turns cannot be checked."""
    rep = run.rep
    did = d.get("id") if isinstance(d, dict) else None
    where = f"line {n} ({did})"
    if not isinstance(d, dict) or not isinstance(did, str) or not did:
        rep.error(f"line {n}: dialogue needs a string id")
        return None
    extra = set(d) - DIALOGUE_KEYS
    if extra:
        rep.error(f"{where}: unknown keys {sorted(extra)}")
    if did in run.seen_ids:
        rep.error(f"{where}: duplicate dialogue id")
    run.seen_ids.add(did)
    turns = d.get("turns")
    if not isinstance(turns, list) or not TURNS[0] <= len(turns) <= TURNS[1]:
        rep.error(f"{where}: needs {TURNS[0]}-{TURNS[1]} turns")
        return None
    cat_rel = d.get("catalog")
    if not isinstance(cat_rel, str) or Path(cat_rel).is_absolute() or ".." in Path(cat_rel).parts:
        rep.error(f'{where}: catalog must be "{DEMO}" or a path relative to the suite file, inside its folder')
        return None
    cat_path = resolve_catalog(run.suite_path, cat_rel)
    if not cat_path.exists():
        rep.error(f"{where}: catalog {cat_rel} not found ({cat_path})")
        return None
    if cat_rel not in run.catalogs:
        run.catalogs[cat_rel] = load_catalog(cat_path, rep, bundled=cat_rel == DEMO)
        run.stats["catalog_sizes"][cat_rel] = len(run.catalogs[cat_rel])
    catalog = run.catalogs[cat_rel]
    prices = {float(p["price"]) for p in catalog if isinstance(p.get("price"), (int, float))}
    return Dialogue(did, where, turns, cat_rel, catalog, prices, _dialogue_label(run, where, did, turns))


def _dialogue_label(run: SuiteRun, where: str, did: str, turns: list) -> dict | None:
    """The dialogue's labels entry, or None (reported) when missing or of the wrong length."""
    label = run.labels.get(did)
    if run.labels and label is None:
        assert run.labels_path is not None
        run.rep.error(f"{where}: no entry in {run.labels_path.name}")
    if label is not None and len(label.get("turns", [])) != len(turns):
        run.rep.error(f"{where}: labels list {len(label.get('turns', []))} turns, dialogue has {len(turns)}")
        label = None
    return label


def _check_dialogue(run: SuiteRun, n: int, d: object) -> None:
    dlg = _open_dialogue(run, n, d)
    if dlg is None:
        return
    stats = run.stats
    stats["dialogues"] += 1
    stats["catalog_use"][dlg.cat_rel] += 1
    lang = dlg.label["lang"] if dlg.label else "?"
    stats["lang_dialogues"][lang] += 1
    state = DialogueState()
    for i, turn in enumerate(dlg.turns):
        _check_turn(run, dlg, lang, state, i, turn)
    for t in state.tags:
        stats["tag_dialogues"][t] += 1


def _check_turn(run: SuiteRun, dlg: Dialogue, lang: str, state: DialogueState, i: int, turn: object) -> None:
    """Every check of turn ``i`` (0-based); a turn too broken to check breaks the chain to the next."""
    rep, stats = run.rep, run.stats
    tw = f"{dlg.where} turn {i + 1}"
    if not isinstance(turn, dict) or not isinstance(turn.get("user"), str) or not turn["user"].strip():
        rep.error(f"{tw}: needs a non-empty user message")
        state.prev = None
        return
    if set(turn) - TURN_KEYS:
        rep.error(f"{tw}: unknown keys {sorted(set(turn) - TURN_KEYS)}")
    expect = turn.get("expect")
    stats["turns"] += 1
    stats["lang_turns"][lang] += 1
    if not validate_expect(tw, expect, rep):
        state.prev = None
        return
    assert isinstance(expect, dict)
    _count_reply_keys(stats, expect)
    t = Turn(tw, expect, dlg.catalog, dlg.label["turns"][i] if dlg.label else [])
    read_tags(t, state, rep)
    for tag in t.plain:
        stats["tag_turns"][tag] += 1
    state.tags |= t.plain
    _lint_bounds(t, dlg.prices, rep, precise=dlg.cat_rel == DEMO)
    _lint_needles(run, t, dlg.cat_rel)
    t.pools = _pools(t, rep)
    check_satisfiable(t, rep)
    check_around_followup(t, state, rep)
    check_cheaper_followup(t, state, rep)
    if run.verbose:
        _print_turn(dlg.did, i, turn, t)
    check_previous_turn(t, i, state, rep)
    remember_shown(t, state)
    state.prev, state.prev_expect = t.pools, expect


def _count_reply_keys(stats: Stats, expect: dict) -> None:
    """Per-act turn counts and answer turns (the demo suites' keys)."""
    if "act" in expect:
        acts = expect["act"]
        stats["act_turns"]["/".join(acts) if isinstance(acts, list) else acts] += 1
    if "answer" in expect:
        stats["answer_turns"] += 1


def _lint_bounds(t: Turn, prices: set[float], rep: Report, precise: bool = False) -> None:
    """Price bounds never sit exactly on a catalog price ("under 200" must not hinge on 200 itself).

    ``precise`` (the 10k-product demo catalog, where every round number is somebody's price):
    only the prices of products the check's other fields allow count."""
    for key in CHECK_KEYS:
        check = t.expect.get(key) or {}
        for f in PRICE_FIELDS:
            v = check.get(f)
            if v is None:
                continue
            if precise:
                others = {g: w for g, w in check.items() if g not in PRICE_FIELDS}
                on = [
                    p["id"]
                    for p in t.catalog
                    if p.get("price") == float(v)
                    and all(field_ok(p, g, w, m) for g, w in others.items() for m in MODES)
                ]
                if on:
                    rep.error(f"{t.where}: {key}.{f}={v} equals the price of {on[:5]}; move the bound off it")
            elif float(v) in prices:
                rep.error(f"{t.where}: {key}.{f}={v} equals a catalog price; move the bound off it")


def _lint_needles(run: SuiteRun, t: Turn, cat_rel: str) -> None:
    """Warn (once per catalog and text) about text_contains strings found inside a longer word."""
    for key in CHECK_KEYS:
        for needle in (t.expect.get(key) or {}).get("text_contains", []):
            if (cat_rel, needle) in run.warned_needles:
                continue
            hits = inside_word_hits(needle, t.catalog)
            if hits:
                run.warned_needles.add((cat_rel, needle))
                run.rep.warn(f"{t.where}: {needle!r} occurs inside a longer word in {', '.join(hits)}")


def _pools(t: Turn, rep: Report) -> dict[str, list[dict]]:
    """The pool under each matching mode; they must agree, and must rule some product out."""
    pools = {m: pool(t.catalog, t.expect, m) for m in MODES}
    if ids(pools["strict"]) != ids(pools["lenient"]):
        diff = ids(pools["strict"]) ^ ids(pools["lenient"])
        rep.error(f"{t.where}: pool depends on case/brand matching rules (differs on {sorted(diff)})")
    # a turn that only checks the reply (an answer, an act, chit-chat) need not rule products out
    reply_only = not t.has_pool_checks and any(k in t.expect for k in REPLY_KEYS)
    if len(pools["strict"]) == len(t.catalog) and not reply_only:
        rep.error(f"{t.where}: expectation rules no product out (vacuous)")
    return pools


def _print_turn(did: str, i: int, turn: dict, t: Turn) -> None:
    """The -v listing: the turn, its pool by price (sold-out ones marked) and a witness set."""
    w = witness(t.catalog, t.expect, "strict")
    print(f"{did} t{i + 1} {turn['user']!r} tags={t.tags}")
    listed = sorted(t.pool, key=lambda p: p["price"])
    print(
        f"    pool ({len(t.pool)}): "
        + ", ".join(f"{p['id']}:{p['price']}{'' if in_stock(p) else '(sold out)'}" for p in listed[:POOL_LISTED])
        + (f" ... ({len(listed) - POOL_LISTED} more)" if len(listed) > POOL_LISTED else "")
    )
    print(f"    witness: {[p['id'] for p in w] if w else w}")

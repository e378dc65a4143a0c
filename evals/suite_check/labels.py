"""The behaviour-tag rules (``labels.json``): what a turn tagged ``no_result``, ``relative_price``,
``price_around:N``, ``reference:N``, a refinement or a swap must guarantee, one function per family.

``Turn`` is one validated turn with its tags and pools; ``DialogueState`` is what the rules carry
from one turn of a dialogue to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .expectations import PRODUCT_KEYS
from .matching import MODES, SHOWN, ids, in_stock, record_text, satisfies_all, witness
from .report import Report

REFINE_TAGS = {
    "negation",
    "attribute",
    "price_cap",
    "price_range",
    "price_around",
    "brand_filter",
    "brand_exclude",
    "audience_filter",
}
SWAP_TAGS = {"brand_swap", "audience_swap"}
# the demo-catalog suites' behaviours (README.md in the suite folder says what each one means)
DEMO_TAGS = {
    "real_query",  # the opening query is a real one from the Taobao query log
    "broad_category",  # the shopper's word names a product type filed under a differently named leaf
    "product_question",  # a question about a shown product whose answer is in its record (``answer``)
    "not_in_record",  # not_in_record:W: a question whose answer the record does not give (no record says W)
    "not_carried",  # the shop does not carry it: nothing shown as a match (``max_results: 0``)
    "gift",  # a vague gift request with budget and recipient
    "keeps_need",  # a follow-up that must keep the earlier need (budget, recipient, category)
    "show_more",  # "还有别的吗": new products only (``not_shown_before``)
    "compare",
    "pick",
    "missing_reference",  # missing_reference:N: points at item N, which the previous turn could not show
    "off_topic",
    "injection",  # text that tries to override the assistant's rules
    "after_off_topic",  # the turn after an off-topic one still serves the earlier need
    "affirmative",  # "有没有白色的": a wish, not an exclusion
    "filler_words",  # words that are no product property ("一个", "帮我找") must not become must-haves
    "honest_empty",  # an empty result whose reply must not give false advice
    "price_edit",
}
KNOWN_TAGS = (
    REFINE_TAGS | SWAP_TAGS | DEMO_TAGS | {"category_first", "relative_price", "no_result", "relax", "reference"}
)
AROUND_LOOSE = (0.7, 1.3)  # every product within +-30% of N that the other checks allow must be in range
AROUND_TIGHT = (0.8, 1.2)  # min_results must be reachable within +-20% of N


@dataclass
class Turn:
    where: str
    expect: dict
    catalog: list[dict]
    tags: list  # as labels.json gives them, e.g. ["reference:2"]
    plain: set[str] = field(default_factory=set)  # the tags without their ":N" argument
    ref_n: int = 0  # N of reference:N, 0 if none
    missing_n: int = 0  # N of missing_reference:N, 0 if none
    absent: list[str] = field(default_factory=list)  # the words of not_in_record:W1|W2
    pools: dict[str, list[dict]] = field(default_factory=dict)  # matching mode -> allowed products

    @property
    def pool(self) -> list[dict]:
        return self.pools["strict"]

    @property
    def no_result(self) -> bool:
        """Nothing may be shown as a match: tagged ``no_result``, or ``max_results: 0``."""
        return "no_result" in self.plain or self.expect.get("max_results") == 0

    @property
    def has_pool_checks(self) -> bool:
        """Whether the turn says which products may be shown (``all_match`` / ``none_match``)."""
        return "all_match" in self.expect or "none_match" in self.expect


@dataclass
class DialogueState:
    prev: dict[str, list[dict]] | None = None  # the previous valid turn's pools (None: no valid turn)
    prev_expect: dict | None = None
    cheap_cap: float | None = None  # cheapest price of the set a "cheaper" request started from
    around_window: tuple[float, float, float] | None = None  # (N, price_min, price_max) of "around N"
    tags: set[str] = field(default_factory=set)  # every plain tag of the dialogue so far
    shown: list[dict] | None = None  # the pool of the last turn that said which products to show
    shown_expect: dict | None = None  # that turn's expect


def read_tags(turn: Turn, state: DialogueState, rep: Report) -> None:
    """Fill ``turn.plain``/``turn.ref_n``; a ``price_around:N`` tag's range is checked and remembered."""
    if "relax" in turn.tags:
        state.around_window = None  # a relaxed turn drops the earlier "around" range
    for t in turn.tags:
        if t.startswith("reference:"):
            turn.ref_n = int(t.split(":", 1)[1])
            turn.plain.add("reference")
        elif t.startswith("price_around:"):
            turn.plain.add("price_around")
            _check_around_range(turn, float(t.split(":", 1)[1]), state, rep)
        elif t.startswith("missing_reference:"):
            turn.missing_n = int(t.split(":", 1)[1])
            turn.plain.add("missing_reference")
        elif t.startswith("not_in_record:"):
            turn.absent = [w for w in t.split(":", 1)[1].split("|") if w]
            turn.plain.add("not_in_record")
        else:
            turn.plain.add(t)
    unknown = turn.plain - KNOWN_TAGS
    if unknown:
        rep.error(f"{turn.where}: unknown behaviour tags {sorted(unknown)}")


def _check_around_range(turn: Turn, around: float, state: DialogueState, rep: Report) -> None:
    """Around N: the price range holds every product within +-30% of N the other checks allow."""
    rng = turn.expect.get("all_match") or {}
    lo, hi = rng.get("price_min"), rng.get("price_max")
    if lo is None or hi is None:
        rep.error(f"{turn.where}: price_around needs all_match.price_min and price_max")
        return
    state.around_window = (around, lo, hi)
    others = {f: v for f, v in rng.items() if f not in ("price_min", "price_max")}
    missed = [
        q["id"]
        for q in turn.catalog
        if AROUND_LOOSE[0] * around <= q["price"] <= AROUND_LOOSE[1] * around
        and satisfies_all(q, others, "strict")
        and not lo <= q["price"] <= hi
    ]
    if missed:
        rep.error(f"{turn.where}: range [{lo}, {hi}] leaves out {missed}, within +-30% of {around:g}")


def check_satisfiable(turn: Turn, rep: Report) -> None:
    """Per matching mode: a ``no_result`` turn has an empty pool and asks for nothing; any other
    turn has a witness set."""
    tw, expect = turn.where, turn.expect
    if "not_carried" in turn.plain and expect.get("max_results") != 0:
        rep.error(f"{tw}: tagged not_carried but does not ask for max_results 0")
    for m in MODES:
        if turn.no_result:
            if turn.pools[m] and ("no_result" in turn.plain or turn.has_pool_checks):
                found = sorted(ids(turn.pools[m]))
                rep.error(
                    f"{tw}: nothing may be shown but the catalog has {found[:10]}{' ...' if len(found) > 10 else ''} ({m})"
                )
            if "min_results" in expect or "any_match" in expect:
                rep.error(f"{tw}: a no_result turn cannot ask for min_results/any_match")
        else:
            w = witness(turn.catalog, expect, m)
            if w is None or not w:
                rep.error(f"{tw}: not satisfiable by the catalog ({m}): pool {sorted(ids(turn.pools[m]))}")


def check_around_followup(turn: Turn, state: DialogueState, rep: Report) -> None:
    """While a turn keeps the "around N" range, min_results is reachable within +-20% of N."""
    if state.around_window is None or turn.no_result:
        return
    n_, lo_, hi_ = state.around_window
    rng = turn.expect.get("all_match") or {}
    if rng.get("price_min") != lo_ or rng.get("price_max") != hi_:
        state.around_window = None
        return
    tight = {
        **turn.expect,
        "all_match": {**rng, "price_min": AROUND_TIGHT[0] * n_, "price_max": AROUND_TIGHT[1] * n_},
    }
    if witness(turn.catalog, tight, "strict") is None:
        rep.error(f"{turn.where}: min_results is not reachable within +-20% of {n_:g} (a tight reading of 'around')")


def check_cheaper_followup(turn: Turn, state: DialogueState, rep: Report) -> None:
    """From a ``relative_price`` turn until a ``relax`` one, min_results is reachable with products
    no dearer than the cheapest of the set the "cheaper" request started from."""
    if "relax" in turn.plain:
        state.cheap_cap = None
    if "relative_price" in turn.plain and state.prev is not None:
        state.cheap_cap = min((p["price"] for p in state.prev["strict"]), default=None)
    if state.cheap_cap is None or turn.no_result:
        return
    if witness(turn.catalog, turn.expect, "strict", state.cheap_cap) is None:
        rep.error(
            f"{turn.where}: after a 'cheaper' request, min_results must be reachable with products "
            f"priced <= {state.cheap_cap} (the cheapest one shown before it)"
        )


def check_previous_turn(turn: Turn, i: int, state: DialogueState, rep: Report) -> None:
    """The rules that compare turn ``i`` (0-based) with the previous turn."""
    if i > 0 and state.prev is not None and state.prev_expect is not None:
        prev_pool = state.prev["strict"]
        if "relative_price" in turn.plain:
            _check_relative_price(turn, state.prev_expect, prev_pool, rep)
        if turn.ref_n:
            # after a turn that only talks (a question, chit-chat), the shopper still points at
            # the products shown before it
            ref_expect, ref_pool = state.prev_expect, prev_pool
            if _talk_only(ref_expect) and state.shown is not None and state.shown_expect is not None:
                ref_expect, ref_pool = state.shown_expect, state.shown
            _check_reference(turn, ref_expect, ref_pool, rep)
        if turn.expect.get("not_shown_before"):
            _check_show_more(turn, prev_pool, rep)
        _check_refine_swap(turn, prev_pool, rep)
    elif i > 0 and ("relative_price" in turn.plain or turn.ref_n or turn.expect.get("not_shown_before")):
        rep.error(f"{turn.where}: needs a valid previous turn")
    if i == 0 and turn.expect.get("not_shown_before"):
        rep.error(f"{turn.where}: not_shown_before on a first turn")
    if "show_more" in turn.plain and not turn.expect.get("not_shown_before"):
        rep.error(f"{turn.where}: tagged show_more but does not ask for not_shown_before")
    check_shown_products(turn, state, rep)


def check_shown_products(turn: Turn, state: DialogueState, rep: Report) -> None:
    """The rules about the products the conversation has shown: the last turn that said which
    products to show (a question, comparison or chit-chat turn in between does not change them).

    ``answer``: whichever product of that pool the assistant showed, its record states the fact
    (at least one of the answer's strings); ``not_in_record:W``: no record of the pool mentions
    W, so "the record does not say" is the honest answer; ``missing_reference:N``: the pool holds
    fewer than N products, so item N cannot have been shown."""
    tw, shown = turn.where, state.shown
    needs = "answer" in turn.expect or turn.absent or turn.missing_n
    if needs and not shown:
        rep.error(f"{tw}: refers to shown products but no earlier turn shows any (its pool is empty or missing)")
        return
    if shown is None:
        return
    if "answer" in turn.expect:
        val = turn.expect["answer"]
        options = [a.casefold() for a in ([val] if isinstance(val, str) else val)]
        lacking = sorted(p["id"] for p in shown if not any(a in record_text(p) for a in options))
        if lacking:
            rep.error(
                f"{tw}: answer {options} is not in the record of {len(lacking)} of the {len(shown)} products "
                f"that may have been shown: {lacking[:8]}"
            )
    if turn.absent:
        saying = sorted(p["id"] for p in shown if any(w.casefold() in record_text(p) for w in turn.absent))
        if saying:
            rep.error(f"{tw}: not_in_record {turn.absent}, but these records say it: {saying[:8]}")
    if turn.missing_n and len(shown) >= turn.missing_n:
        rep.error(f"{tw}: missing_reference:{turn.missing_n}, but {len(shown)} products may have been shown before")


def remember_shown(turn: Turn, state: DialogueState) -> None:
    """After the turn's checks: a turn that says which products to show sets the shown pool."""
    if turn.has_pool_checks:
        state.shown, state.shown_expect = turn.pool, turn.expect


def _talk_only(expect: dict) -> bool:
    """A turn that checks nothing about the products shown (only the reply, the act, an answer)."""
    return not any(k in expect for k in PRODUCT_KEYS)


def _check_show_more(turn: Turn, prev_pool: list[dict], rep: Report) -> None:
    """``not_shown_before``: even if the previous turn showed the 5 products this turn could show
    first, ``min_results`` in-stock products are left."""
    need = int(turn.expect.get("min_results", 0))
    avail = [p for p in turn.pool if in_stock(p)]
    overlap = len(ids(avail) & ids(prev_pool))
    if len(avail) - min(SHOWN, overlap) < need:
        rep.error(
            f"{turn.where}: not_shown_before with min_results {need}: {len(avail)} in-stock products, "
            f"{min(SHOWN, overlap)} of which may have been shown before"
        )


def _check_relative_price(turn: Turn, prev_expect: dict, prev_pool: list[dict], rep: Report) -> None:
    """Cheaper: the previous shown set is forced, and the new price_max lies in
    [second-dearest, dearest) of it, so every reading of "cheaper" passes."""
    tw, cur = turn.where, turn.pool
    k = prev_expect.get("min_results")
    bound = (turn.expect.get("all_match") or {}).get("price_max")
    if k is None or len(prev_pool) != k or k > SHOWN:
        rep.error(
            f"{tw}: relative_price needs the previous turn's shown set forced (pool {len(prev_pool)}, min_results {k})"
        )
    elif bound is None:
        rep.error(f"{tw}: relative_price needs all_match.price_max")
    else:
        ps = sorted(p["price"] for p in prev_pool)
        second = ps[-2] if len(ps) > 1 else 0.0
        if not (second <= bound < ps[-1]):
            rep.error(f"{tw}: cheaper bound {bound} must be in [{second}, {ps[-1]}) (previous shown prices {ps})")
    if not ids(cur) < ids(prev_pool):
        rep.error(f"{tw}: relative_price pool should be a strict subset of the previous pool")


def _check_reference(turn: Turn, prev_expect: dict, prev_pool: list[dict], rep: Report) -> None:
    """``reference:N``: N items were shown, and whichever one the shopper means passes this turn."""
    tw, cur, ref_n = turn.where, turn.pool, turn.ref_n
    if int(prev_expect.get("min_results", 0)) < ref_n:
        rep.error(
            f"{tw}: refers to item {ref_n} but the previous turn only guarantees "
            f"{prev_expect.get('min_results', 0)} shown"
        )
    if not ids(prev_pool) <= ids(cur):
        rep.error(
            f"{tw}: some product the shopper may point at fails this turn's checks: {sorted(ids(prev_pool) - ids(cur))}"
        )
    if int(turn.expect.get("min_results", 0)) > ref_n:
        rep.error(f"{tw}: min_results exceeds the number of referenced items")


def _check_refine_swap(turn: Turn, prev_pool: list[dict], rep: Report) -> None:
    """A refinement strictly narrows the previous pool (unless it relaxes); a swap avoids it."""
    tw, cur, plain = turn.where, turn.pool, turn.plain
    narrows = plain & REFINE_TAGS and not plain & (SWAP_TAGS | {"relax", "reference"})
    if narrows and not ids(cur) < ids(prev_pool):
        rep.error(f"{tw}: refinement should strictly narrow the previous pool ({len(prev_pool)} -> {len(cur)})")
    if plain & SWAP_TAGS and ids(cur) & ids(prev_pool):
        rep.error(f"{tw}: swap pool overlaps the previous pool: {sorted(ids(cur) & ids(prev_pool))}")

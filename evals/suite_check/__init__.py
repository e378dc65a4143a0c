"""Static checker for the dialogue suites in ``evals/data/dialogues`` (stdlib only; no shopassist import).

It proves that every expectation can be met by the catalog the dialogue names, so that a
failing turn is the assistant's fault and never the suite's:

* catalogs (``catalogs``): JSONL in the catalog schema; unique ids, non-negative finite prices,
  one currency per catalog, integer stock >= 0, attributes name -> text | list of text,
  well-formed ``A > B > C`` category paths, ``language`` zh/en;
* dialogues (``suite``, ``expectations``): unique ids, 2-4 turns, only the defined ``expect``
  keys and check fields;
* every turn (``matching``), under two readings of the matching rules (``strict``:
  case-sensitive text, brand equal to the record's brand or one of its ``/`` parts -- the
  reading of ``evals/dialogues.py``; ``lenient``: case-insensitive text, brand as a
  case-insensitive substring), the set of catalog products allowed by ``all_match`` and
  ``none_match`` (the "pool") is the same, and a set of at most 5 products exists that
  satisfies the whole ``expect`` -- ``min_results`` and ``any_match`` counted with in-stock
  products only, so hiding sold-out items never makes a turn impossible;
* every turn rules at least one catalog product out (no vacuous checks), and no catalog price
  sits exactly on a ``price_max`` / ``price_min`` the dialogue uses (so "under 200" never hinges
  on whether 200 itself counts);
* with ``labels.json`` (behaviour tags per turn), the behaviour-specific rules (``labels``):
  - ``no_result``: the pool is empty (the catalog really has nothing that fits) and the turn
    asks for no results (no ``min_results``/``any_match``);
  - ``relative_price`` ("便宜点", "cheaper"): the previous turn's shown set is forced (its pool
    has exactly ``min_results`` <= 5 products, sold-out ones included), and the new
    ``price_max`` lies below the most expensive product of that set and at or above the second
    most expensive one -- so every reading of "cheaper" (below the cheapest, the median or the
    top shown price) passes, and ignoring the request fails;
  - after a ``relative_price`` turn (until a ``relax`` turn), ``min_results`` must be reachable
    with products no dearer than the cheapest product of the forced set, so a follow-up never
    depends on how far down the assistant moved the price;
  - ``price_around:N`` ("500左右", "around $120"): the turn's price range contains every product
    within +-30% of N that its other checks allow (a loose reading of "around" never fails), and
    ``min_results`` -- here and in the later turns that keep the range -- is reachable with
    products within +-20% of N (a tight reading never comes up short);
  - ``reference:N`` ("第二个", "compare 1 and 3"): the previous turn showed at least N
    products, and every product of its pool satisfies this turn's checks (whichever product
    the shopper points at, the check holds);
  - refinements (``negation``, ``attribute``, ``price_cap``, ``price_range``, ``price_around``,
    ``brand_filter``, ``brand_exclude``, ``audience_filter``) after the first turn: the pool
    strictly shrinks (unless the turn also relaxes: ``relax``);
  - ``brand_swap`` / ``audience_swap``: the new pool is disjoint from the previous one.

The demo suites (``"catalog": "demo"``: ``shopassist/resources/demo_catalog.jsonl``, validated
for what the checks read; a price bound may not sit on the price of a product the check's other
fields allow) add the keys on the rest of the turn -- ``reply_contains`` / ``reply_excludes``
(lists of text), ``act`` (one of the dialogue acts, or a list), ``answer`` (text or a list),
``max_results`` (0..5), ``not_shown_before`` (true) -- and these rules:

  - a turn with only reply keys is not vacuous; ``max_results: 0`` (and ``not_carried``): the
    turn's product checks, if any, have an empty pool;
  - ``answer``: every record of the shown pool (the last turn that said which products to show)
    contains one of the answer's strings; ``not_in_record:W``: none of them mentions W;
    ``missing_reference:N``: that pool holds fewer than N products; ``reference:N`` after a
    talk-only turn refers to that pool;
  - ``not_shown_before``: ``min_results`` in-stock products are left even if the previous turn
    showed the 5 this turn could show first.

Warnings (not failures): an ASCII ``text_contains`` string found starting inside a longer word
of some product (e.g. "tan" in "resistant"), which would make a check depend on an accident of
wording.

Modules: ``catalogs`` (catalog loading/validation), ``matching`` (check fields, pools, witness
sets), ``expectations`` (the expect keys, a table of key -> validator), ``labels`` (the
behaviour-tag rules), ``suite`` (walking dialogues and turns), ``report`` (findings, counts,
Markdown), ``cli`` (the command line of ``evals/data/dialogues/check_suite.py``: every ``*.jsonl``
of the folder, each with its labels file).
"""

from __future__ import annotations

from .cli import main
from .report import Report, markdown
from .suite import check_suite

__all__ = ["Report", "check_suite", "main", "markdown"]

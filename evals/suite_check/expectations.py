"""Validation of a turn's ``expect`` object: which keys it may carry and what each must hold.

``EXPECT_VALIDATORS`` maps every allowed expect key to its validator; a new key is one entry
there (plus, where it constrains the products shown, a rule in ``matching``). A validator gets
``(where, key, value, rep)``, reports its problems to ``rep`` and returns whether the value is
usable. The check objects (``all_match``/``any_match``/``none_match``) hold check fields, each
validated by ``FIELD_RULES``.
"""

from __future__ import annotations

from collections.abc import Callable

from .matching import CHECK_FIELDS, SHOWN
from .report import Report

Validator = Callable[[str, str, object, Report], bool]

CHECK_KEYS = ("all_match", "any_match", "none_match")  # the expect keys that hold check fields
POOL_KEYS = ("all_match", "none_match")  # the expect keys that decide which products may be shown
PRODUCT_KEYS = (*CHECK_KEYS, "min_results", "max_results")  # the expect keys on the products shown
REPLY_KEYS = ("reply_contains", "reply_excludes", "act", "answer", "not_shown_before")  # on the rest of the turn
PRICE_FIELDS = ("price_max", "price_min")
# the dialogue acts a turn can be read as: ``assistant.events.DIALOGUE_ACTS`` (this package imports
# nothing from shopassist; tests/test_dialogue_format.py keeps the two equal)
DIALOGUE_ACTS = ("new", "refine", "replace", "question", "compare", "pick", "more", "chitchat", "unsupported")


def _number(v: object) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and not v < 0


def _text_list(v: object) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, str) and x for x in v)


def _text(v: object) -> bool:
    return isinstance(v, str) and bool(v)


# check field -> (whether a value is well-formed, what the error says it must be)
FIELD_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "price_max": (_number, "a number >= 0"),
    "price_min": (_number, "a number >= 0"),
    "category_contains": (_text, "a non-empty string"),
    "text_contains": (_text_list, "a non-empty list of strings"),
    "brand_in": (_text_list, "a non-empty list of strings"),
}
assert set(FIELD_RULES) == set(CHECK_FIELDS), "every check field the matcher knows needs a validation rule"


def validate_min_results(where: str, key: str, val: object, rep: Report) -> bool:
    """An integer 1..5 (the number of products shown)."""
    if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= SHOWN:
        rep.error(f"{where}: min_results must be an integer 1..{SHOWN}")
        return False
    return True


def validate_max_results(where: str, key: str, val: object, rep: Report) -> bool:
    """An integer 0..5 (0: the shop does not carry it, nothing is shown as a match)."""
    if isinstance(val, bool) or not isinstance(val, int) or not 0 <= val <= SHOWN:
        rep.error(f"{where}: max_results must be an integer 0..{SHOWN}")
        return False
    return True


def validate_texts(where: str, key: str, val: object, rep: Report) -> bool:
    """A non-empty list of non-empty strings (reply_contains, reply_excludes)."""
    if not _text_list(val):
        rep.error(f"{where}: {key} must be a non-empty list of strings")
        return False
    return True


def validate_answer(where: str, key: str, val: object, rep: Report) -> bool:
    """A non-empty string, or a non-empty list of them (synonyms of one fact)."""
    if not (_text(val) or _text_list(val)):
        rep.error(f"{where}: answer must be a non-empty string or list of strings")
        return False
    return True


def validate_act(where: str, key: str, val: object, rep: Report) -> bool:
    """One of ``DIALOGUE_ACTS``, or a non-empty list of them (any of them is a right reading)."""
    acts = [val] if isinstance(val, str) else val
    if not isinstance(acts, list) or not acts or any(a not in DIALOGUE_ACTS for a in acts):
        rep.error(f"{where}: act must be one of {', '.join(DIALOGUE_ACTS)} (or a list of them), got {val!r}")
        return False
    return True


def validate_flag(where: str, key: str, val: object, rep: Report) -> bool:
    """``true`` (a false flag would say nothing: leave the key out)."""
    if val is not True:
        rep.error(f"{where}: {key} must be true (leave it out otherwise)")
        return False
    return True


def validate_check(where: str, key: str, val: object, rep: Report) -> bool:
    """A non-empty object of known, well-formed check fields, with price_min <= price_max."""
    if not isinstance(val, dict) or not val:
        rep.error(f"{where}: {key} must be a non-empty check object")
        return False
    ok = True
    for f, v in val.items():
        rule = FIELD_RULES.get(f)
        if rule is None:
            rep.error(f"{where}: {key} has unknown field {f!r}")
            ok = False
        elif not rule[0](v):
            rep.error(f"{where}: {key}.{f} must be {rule[1]}")
            ok = False
    lo, hi = val.get("price_min"), val.get("price_max")
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
        rep.error(f"{where}: {key} has price_min > price_max")
        ok = False
    return ok


# expect key -> validator; the allowed keys are exactly these
EXPECT_VALIDATORS: dict[str, Validator] = {
    "all_match": validate_check,
    "any_match": validate_check,
    "none_match": validate_check,
    "min_results": validate_min_results,
    "max_results": validate_max_results,
    "reply_contains": validate_texts,
    "reply_excludes": validate_texts,
    "act": validate_act,
    "answer": validate_answer,
    "not_shown_before": validate_flag,
}
EXPECT_KEYS = tuple(EXPECT_VALIDATORS)
assert set(EXPECT_KEYS) == set(PRODUCT_KEYS) | set(REPLY_KEYS), "every expect key is a product key or a reply key"


def validate_expect(where: str, expect: object, rep: Report) -> bool:
    """Whether ``expect`` is a non-empty object of known, valid keys (every problem is reported)."""
    if not isinstance(expect, dict) or not expect:
        rep.error(f"{where}: expect must be a non-empty object")
        return False
    ok = True
    for key, val in expect.items():
        validator = EXPECT_VALIDATORS.get(key)
        if validator is None:
            rep.error(f"{where}: unknown expect key {key!r}")
            ok = False
        elif not validator(where, key, val, rep):
            ok = False
    return _validate_together(where, expect, rep) and ok


def _validate_together(where: str, expect: dict, rep: Report) -> bool:
    """Keys that contradict each other: a cap below the minimum, a match required where nothing may
    be shown, a reply that must and must not say the same thing."""
    ok = True
    lo, hi = expect.get("min_results"), expect.get("max_results")
    if isinstance(lo, int) and isinstance(hi, int) and not isinstance(hi, bool) and lo > hi:
        rep.error(f"{where}: min_results > max_results")
        ok = False
    if hi == 0 and not isinstance(hi, bool) and "any_match" in expect:
        rep.error(f"{where}: max_results 0 cannot ask for any_match")
        ok = False
    banned = [s.casefold() for s in expect.get("reply_excludes") or [] if isinstance(s, str)]
    for key in ("reply_contains", "answer"):
        val = expect.get(key)
        options = [x.casefold() for x in ([val] if isinstance(val, str) else val or []) if isinstance(x, str)]
        if options and banned and all(any(b in o for b in banned) for o in options):
            rep.error(f"{where}: reply_excludes rules out every way of meeting {key}")
            ok = False
    return ok

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
PRICE_FIELDS = ("price_max", "price_min")


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
}
EXPECT_KEYS = tuple(EXPECT_VALIDATORS)


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
    return ok

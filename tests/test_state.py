"""How follow-up messages edit a session's constraints."""

import pytest

from assistant.intent import PriceChange, Relation, ShoppingIntent
from assistant.state import SessionState, SessionStore, ShownProduct, TurnRecord, apply

pytestmark = pytest.mark.unit

GROUPS = {"黑色": "颜色", "白色": "颜色", "red": "color", "black": "color", "女": "audience", "男": "audience"}


def group_of(value):
    return GROUPS.get(value)


def started(**constraints):
    state = SessionState(session_id="s")
    state.constraints = state.constraints.model_copy(update=constraints)
    state.turns.append(TurnRecord(user="first"))
    state.shown = [
        ShownProduct(id="a", title="A", price=300, currency="CNY"),
        ShownProduct(id="b", title="B", price=150, currency="CNY"),
        ShownProduct(id="c", title="C", price=90, currency="CNY"),
    ]
    return state


def test_new_need_starts_over():
    state = started(query="牛仔裤", excluded=["破洞"], max_price=200)
    c = apply(state, ShoppingIntent(query="保温杯", category="保温杯", relation=Relation.new))
    assert c.query == "保温杯" and c.excluded == [] and c.max_price is None


def test_refine_adds_exclusions_and_keeps_the_rest():
    state = started(query="牛仔裤", category="牛仔裤", required=["女"], max_price=200)
    c = apply(state, ShoppingIntent(excluded=["黑色"], relation=Relation.refine))
    assert c.query == "牛仔裤" and c.required == ["女"] and c.excluded == ["黑色"] and c.max_price == 200


def test_replace_swaps_the_value_of_the_same_facet_group():
    state = started(query="羽绒服", required=["女", "黑色"], brands=["优衣库"])
    c = apply(state, ShoppingIntent(required=["男"], relation=Relation.replace), group_of)
    assert c.required == ["黑色", "男"]
    c = apply(state, ShoppingIntent(brands=["Nike"], relation=Relation.replace), group_of)
    assert c.brands == ["Nike"]


def test_cheaper_caps_below_the_median_of_what_was_shown():
    state = started(query="牛仔裤")
    c = apply(state, ShoppingIntent(price_change=PriceChange.cheaper, relation=Relation.refine))
    assert c.max_price is not None and c.max_price < 150 and c.max_price > 140
    pricier = apply(state, ShoppingIntent(price_change=PriceChange.pricier, relation=Relation.refine))
    assert pricier.min_price is not None and pricier.min_price > 150


def test_a_value_moves_between_required_and_excluded_with_the_newest_message():
    state = started(query="boots", excluded=["brown"])
    c = apply(state, ShoppingIntent(required=["brown"], relation=Relation.refine))
    assert c.required == ["brown"] and c.excluded == []


def test_compare_and_pick_keep_the_constraints():
    state = started(query="boots", max_price=100)
    c = apply(state, ShoppingIntent(relation=Relation.compare, references=[1, 3]))
    assert c.query == "boots" and c.max_price == 100
    assert state.shown_ref(3).id == "c" and state.shown_ref(4) is None


def test_refine_without_history_is_a_new_need():
    c = apply(SessionState(session_id="s"), ShoppingIntent(query="tea", excluded=["green"], relation=Relation.refine))
    assert c.query == "tea" and c.excluded == ["green"]


def test_store_round_trip_and_damaged_files(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    state = started(query="牛仔裤")
    state.session_id = "web-1"
    store.save(state)
    assert store.load("web-1").constraints.query == "牛仔裤"
    (tmp_path / "sessions" / "web-1.json").write_text("{broken", encoding="utf-8")
    assert store.load("web-1").turns == []  # starts afresh, the damaged file is kept aside
    assert list((tmp_path / "sessions").glob("web-1.damaged-*.json"))
    with pytest.raises(Exception, match="not valid"):
        store.load("../etc/passwd")


def test_clearing_brands_and_price_and_avoiding_shown_brands():
    state = started(query="精华", brands=["兰蔻"], max_price=300)
    state.shown[0].brand = "Salomon"
    c = apply(state, ShoppingIntent(clear_brands=True, clear_price=True, relation=Relation.refine))
    assert c.brands == [] and c.max_price is None and c.query == "精华"
    c = apply(state, ShoppingIntent(avoid_shown_brands=True, relation=Relation.refine))
    assert c.exclude_brands == ["Salomon"]


def test_refine_words_join_the_query():
    state = started(query="wireless earbuds")
    c = apply(state, ShoppingIntent(query="noise cancelling", relation=Relation.refine))
    assert c.query == "wireless earbuds noise cancelling"


# -- direct edits of the parsed need (the UI's chips, `shopassist edit`) ----------------------------
def test_removing_a_chip_drops_the_value_wherever_it_is():
    from assistant.intent import Need
    from assistant.state import ConstraintEdit, edit_constraints

    c = Need(query="牛仔裤 高腰", category="牛仔裤", required=["高腰", "女"], excluded=["破洞"], brands=["Levi's"])
    e = edit_constraints(c, ConstraintEdit(remove=["高腰", "levi's", "破洞"]))
    assert e.required == ["女"] and e.excluded == [] and e.brands == [] and e.query == "牛仔裤"
    assert c.required == ["高腰", "女"]  # the old constraints are not modified


def test_toggle_moves_a_value_between_must_have_and_excluded_and_adds_an_unset_one():
    from assistant.intent import Need
    from assistant.state import ConstraintEdit, edit_constraints

    c = Need(query="羽绒服", required=["黑色"], excluded=["连帽"])
    e = edit_constraints(c, ConstraintEdit(toggle=["黑色", "连帽", "加厚"]))
    assert e.excluded == ["黑色"] and e.required == ["连帽", "加厚"]


def test_price_edits_keep_a_consistent_range():
    from assistant.intent import Need
    from assistant.state import ConstraintEdit, edit_constraints

    c = Need(query="鞋", min_price=100, max_price=300)
    assert edit_constraints(c, ConstraintEdit(max_price=80)).model_dump(include={"min_price", "max_price"}) == {
        "min_price": None,
        "max_price": 80,
    }
    cleared = edit_constraints(c, ConstraintEdit(clear_price=True))
    assert cleared.min_price is None and cleared.max_price is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_price": 300, "max_price": 100}, "above max_price"),
        ({"clear_price": True, "max_price": 100}, "contradict"),
        ({"require": ["黑色"], "exclude": ["黑色"]}, "both required and excluded"),
        ({"max_price": -1}, "greater than or equal to 0"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_an_inconsistent_edit_is_refused_with_the_reason(fields, message):
    from pydantic import ValidationError

    from assistant.state import ConstraintEdit

    with pytest.raises(ValidationError, match=message):
        ConstraintEdit(**fields)

"""Copy that claims anything not in the product's record is replaced."""

import pytest

from assistant.grounding import GroundingChecker, escape, template_line
from shopassist.models import Product

pytestmark = pytest.mark.unit

P1 = Product(
    id="1",
    title="CHANDO/自然堂 雪域精粹滋润霜50g",
    brand="CHANDO/自然堂",
    price=139,
    currency="CNY",
    stock=3,
    attributes={"容量": "50g", "功效": "保湿"},
)
P2 = Product(
    id="2",
    title="Waterproof Hiking Boots, Brown Leather",
    brand="TrailCo",
    price=89.99,
    currency="USD",
    stock=0,
    attributes={"color": "brown", "material": "leather"},
    language="en",
)
CHECKER = GroundingChecker(
    brands=["自然堂", "TrailCo", "Summit", "欧莱雅"],
    facet_values=["黑色", "brown", "black", "保湿", "美白", "suede"],
    system_prompt="You are the query parser of a shopping assistant for a Chinese and English product catalog.",
)


def test_true_lines_pass_and_false_claims_are_replaced():
    copy = "[1] 自然堂保湿面霜，50g只要139元\n[2] TrailCo brown leather boots for 89.99 dollars"
    lines, report = CHECKER.check(copy, [P1, P2], "zh")
    assert report.ungrounded == 0 and lines[0].startswith("自然堂保湿面霜")
    bad = "[1] 欧莱雅美白面霜，原价299现价99\n[2] Black suede boots by Summit"
    lines, report = CHECKER.check(bad, [P1, P2], "en")
    assert report.ungrounded == 2
    assert lines == [template_line(P1, "en"), template_line(P2, "en")]
    problems = " ".join(report.problems())
    assert "299" in problems and "欧莱雅" in problems and "summit" in problems and "black" in problems


def test_missing_lines_get_templates_and_extra_positions_count():
    lines, report = CHECKER.check("[2] Good boots.\n[7] An invented product", [P1, P2], "en")
    assert lines[0] == template_line(P1, "en") and lines[1] == "Good boots."
    assert report.missing == [1] and report.extra == 1 and report.ungrounded == 1


def test_injection_and_markup_are_refused():
    lines, report = CHECKER.check("[1] <script>alert(1)</script> see http://evil.example", [P1], "zh")
    assert report.ungrounded == 1 and "<script>" not in lines[0]
    leak = "[1] You are the query parser of a shopping assistant for a Chinese and English product catalog."
    assert CHECKER.check(leak, [P1], "en")[1].ungrounded == 1
    assert escape("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"


def test_template_lines_say_only_record_facts():
    assert template_line(P2, "en") == "TrailCo: Waterproof Hiking Boots, Brown Leather, 89.99 USD, out of stock"
    assert "139.00 CNY" in template_line(P1, "zh") and "有货" in template_line(P1, "zh")


def test_a_line_about_another_shown_product_is_replaced():
    a = Product(
        id="a", title="Columbia Newton Ridge Waterproof Hiking Boot", price=84.99, currency="USD", language="en"
    )
    b = Product(id="b", title="Columbia Granite Trail Mid Waterproof Boot", price=79.95, currency="USD", language="en")
    c = Product(id="c", title="Merrell Moab Speed Hiking Shoe", price=99.0, currency="USD", language="en")
    # the model skipped the second product and wrote the third's line as [2]
    copy = "[1] Newton Ridge keeps your feet dry.\n[2] Merrell Moab Speed is light and fast."
    lines, report = GroundingChecker().check(copy, [a, b, c], "en")
    assert lines[0] == "Newton Ridge keeps your feet dry."
    assert lines[1] == template_line(b, "en") and "describes another product (c)" in " ".join(report.problems())

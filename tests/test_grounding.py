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


# -- lines that say nothing, dump attributes, repeat, break off, claim absences, or switch language --

P3 = Product(
    id="3",
    title="小米无线蓝牙耳机 Air2",
    brand="小米",
    price=199,
    currency="CNY",
    stock=5,
    description="续航长，佩戴舒适",
)
P4 = Product(
    id="4",
    title="高腰修身牛仔裤",
    price=159,
    currency="CNY",
    stock=8,
    description="高腰修身，适合日常通勤",
    tags=["200元以内"],
)
P5 = Product(
    id="5",
    title="温和洁面乳 120ml",
    price=59,
    currency="CNY",
    description="不含酒精，paraben-free，温和清洁",
)
PLAIN = GroundingChecker()


def _problems(text: str, product: Product, language: str | None = None) -> list[str]:
    return PLAIN.check_line(text, product, language=language)


@pytest.mark.parametrize("line", ["无", "1. 无", "N/A", "none", "暂无", "-", "……", "无品牌", "Brand not specified"])
def test_content_free_lines_are_replaced(line):
    assert _problems(line, P1) == ["content-free"]
    lines, report = PLAIN.check(f"[1] {line}", [P1], "zh")
    assert lines == [template_line(P1, "zh")] and report.ungrounded == 1
    assert report.problems() == ["[1] content-free"]


def test_a_short_line_with_content_passes():
    assert _problems("保湿滋润，139元", P1) == []
    assert _problems("No fuss, no frills: waterproof brown leather", P2) == []


@pytest.mark.parametrize(
    "line",
    [
        "无品牌，无颜色分类，无适用年龄，无上市年份季节",
        "No brand, no colour listed",
        "品牌：自然堂，容量：50g，功效：保湿",
        "Brand: TrailCo | Color: brown | Material: leather",
    ],
)
def test_attribute_dumps_are_replaced(line):
    product = P2 if line.isascii() else P1
    assert "attribute dump" in _problems(line, product)


def test_lines_with_one_negative_or_two_facts_are_no_dump():
    assert _problems("[2] 无线蓝牙耳机，续航长", P3) == []
    assert _problems("小米无线蓝牙耳机，容量：无", P3) == []  # one missing item, in a sentence
    assert _problems("Color: brown, waterproof leather upper", P2) == []


def test_a_line_repeated_for_another_product_is_a_duplicate():
    copy = "[1] 好用，价格实惠！\n[2] 好用 价格实惠\n[3] 高腰修身，适合日常通勤"
    lines, report = PLAIN.check(copy, [P1, P3, P4], "zh")
    assert lines == ["好用，价格实惠！", template_line(P3, "zh"), "高腰修身，适合日常通勤"]
    assert report.problems() == ["[2] duplicate of [1]"]
    # only accepted lines count: a rejected first line does not make its twin a duplicate
    lines, report = PLAIN.check("[1] 好用，原价999\n[2] 好用，原价999", [P1, P3], "zh")
    assert all("duplicate" not in p for p in report.problems())


@pytest.mark.parametrize(
    "line",
    [
        "雪域精粹滋润霜，适用年龄18-",
        "滋润霜（50g",
        "保湿面霜，",
        "保湿面霜：",
        "保湿面霜/",
        "【限时 保湿面霜",
        "“保湿面霜",
    ],
)
def test_truncated_lines_are_replaced(line):
    assert "truncated" in _problems(line, P1)


def test_finished_lines_with_brackets_or_an_ellipsis_pass():
    assert _problems("雪域精粹滋润霜（50g），保湿…", P1) == []
    assert _problems("Waterproof Hiking Boots, Brown Leather, great for trails...", P2) == []
    assert "truncated" in _problems("Great boots for", P2)
    # the product's own (cut-off) title is not held against the line
    cut = Product(id="c", title="炫彩大馄饨组合装（盒马工坊", price=25, currency="CNY")
    assert _problems(template_line(cut, "zh"), cut) == [] and _problems("炫彩大馄饨组合装（盒马工坊", cut) == []


@pytest.mark.parametrize(
    ("line", "claim"),
    [
        ("温和洁面，无香精配方", "无香精"),
        ("滋润霜，零糖零负担", "零糖"),
        ("保湿面霜，不含硅油", "不含硅油"),
        ("A fragrance-free cream", "fragrance-free"),
        ("Gentle and free of silicones", "free of silicones"),
        ("No added sugar, great taste", "no added sugar"),
    ],
)
def test_absence_claims_the_record_does_not_state_are_replaced(line, claim):
    product = P2 if line.isascii() else P1
    assert f"claims {claim} which the record does not state" in _problems(line, product)


def test_absence_claims_the_record_states_pass_in_either_language():
    # the record says "不含酒精" and "paraben-free"
    assert _problems("无酒精配方，温和清洁", P5) == []
    assert _problems("Alcohol-free, no parabens", P5) == []
    assert _problems("不含防腐剂，洁面乳", P5) == []
    assert "claims 无硅油 which the record does not state" in _problems("无酒精，无硅油", P5)


def test_product_kinds_and_idioms_with_no_words_are_no_claims():
    assert _problems("[2] 无线蓝牙耳机，续航长", P3) == []
    assert _problems("佩戴无感，无需充电线也能用，无论通勤还是运动", P3) == []
    assert _problems("Hands-free calls, no wonder it sells; feel free to ask, free of charge", P2) == []
    assert _problems("零食一样的价格：199元", P3) == []


def test_a_chinese_line_in_an_english_conversation_is_replaced():
    lines, report = PLAIN.check("[1] 雪域精粹滋润霜，保湿滋润", [P1], "en")
    assert lines == [template_line(P1, "en")]
    assert report.problems() == ["[1] not in the conversation's language"]
    # the product's own Chinese title in an English line is fine, and so is the template
    assert _problems("CHANDO/自然堂 雪域精粹滋润霜50g, a rich moisturizing cream", P1, "en") == []
    assert _problems(template_line(P1, "en"), P1, "en") == []


def test_english_lines_in_a_chinese_conversation_only_for_english_titles():
    assert "not in the conversation's language" in _problems("A rich moisturizing cream for winter", P1, "zh")
    assert _problems("Waterproof brown leather boots for wet trails", P2, "zh") == []
    assert _problems("Rich cream", P1, "zh") == []  # 20 characters or less: a name, a slogan
    assert _problems("A rich moisturizing cream for winter", P1) == []  # no language: not checked


def test_good_lines_pass_every_check():
    lines, report = PLAIN.check(
        "[1] 高腰修身，200元以内，适合日常通勤\n[2] Waterproof leather upper, $89.99, in stock\n[3] 无线蓝牙耳机，续航长",
        [P4, P2, P3],
        "zh",
    )
    assert report.ungrounded == 0, report.problems()
    assert lines[1] == "Waterproof leather upper, $89.99, in stock"


def test_a_price_claim_must_be_the_products_price_however_small() -> None:
    """Counts like "2 colours" may be small numbers; "$1" or "1元" is a price and must be the record's."""
    boots = Product(id="b", title="Trail boots", price=89.0, currency="USD", tags=["under $100"])
    checker = GroundingChecker()
    assert any("price claim" in p for p in checker.check_line("Only $1 today!", boots))
    assert any("price claim" in p for p in checker.check_line("仅需1元", boots))
    assert checker.check_line("Trail boots, $89.00, in stock", boots) == []
    assert checker.check_line("under $100, waterproof", boots) == []  # the shopper's budget, in the record
    assert checker.check_line("comes in 2 colours", boots) == []

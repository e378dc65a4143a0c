"""Turns real shoppers write, on a small mixed catalog (real catalog, Chroma, USE, rules; no LLM):
vague gifts, who a gift is for, models the shop does not carry, out-of-stock matches, accessories,
questions by name or by price, picks by name, product swaps. Each test names the failure it guards."""

import json
from pathlib import Path

import pytest

from assistant.acts import read_act
from assistant.agent import ShoppingAgent
from assistant.answers import answer_question, named_positions
from assistant.gifts import for_recipient, gift_ideas, recipient_class
from assistant.intent import Relation
from assistant.rules import parse_rules
from assistant.rules.numbers import model_names
from assistant.state import SessionStore
from retrieval import Catalog, ingest_file
from shopassist.models import Product

ROWS = [
    ("g01", "飞科电动剃须刀 男士 三头 全身水洗", "消费电子 > 剃须刀", 169.0, "CNY", 30),
    ("g02", "奔腾剃须刀 男士 充电式 刮胡刀", "消费电子 > 剃须刀", 129.0, "CNY", 20),
    ("g03", "超人剃须刀 男士 便携 刮胡刀", "消费电子 > 剃须刀", 99.0, "CNY", 12),
    ("g04", "剃须刀充电器 适用于飞科 通用电源线", "消费电子 > 剃须刀", 29.0, "CNY", 50),
    ("g05", "雅诗兰黛 女士 保湿面霜 补水滋润 护肤品", "美妆 > 护肤品", 320.0, "CNY", 8),
    ("g06", "兰蔻 女士 护肤品 精华液 补水", "美妆 > 护肤品", 280.0, "CNY", 6),
    ("g07", "男士护肤品 控油 面霜", "美妆 > 护肤品", 260.0, "CNY", 6),
    ("g08", "香奈儿 女士淡香水 50ml", "美妆 > 香水", 300.0, "CNY", 5),
    ("g09", "迪奥 女士香水 花香调", "美妆 > 香水", 350.0, "CNY", 4),
    ("g10", "雅诗兰黛 口红 哑光 正红色", "美妆 > 彩妆 > 口红", 290.0, "CNY", 9),
    ("g11", "Apple iPhone13 128GB 手机 国行", "消费电子 > 手机", 4999.0, "CNY", 3),
    ("g12", "iPhone13 手机壳 透明 防摔", "消费电子 > 手机壳", 29.0, "CNY", 40),
    ("e01", "Volleyball", "Sports > Accessories", 11.99, "USD", 0),
    ("e02", "Basketball", "Sports > Accessories", 14.99, "USD", 20),
    ("e03", "Tennis Ball", "Sports > Accessories", 6.99, "USD", 30),
    ("e04", "Cat Food", "Groceries", 8.99, "USD", 40),
    ("e05", "Dog Food", "Groceries", 10.99, "USD", 71),
    ("e06", "Dell XPS 13 Laptop", "Electronics > Laptops", 1299.99, "USD", 5),
    ("e07", "Lenovo Yoga 920 Laptop", "Electronics > Laptops", 1099.99, "USD", 7),
]


@pytest.fixture()
def agent(settings, use_embedder, tmp_path: Path):
    path = tmp_path / "shop.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for pid, title, category, price, currency, stock in ROWS:
            row = {
                "id": pid,
                "title": title,
                "category": category,
                "price": price,
                "currency": currency,
                "stock": stock,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    catalog = Catalog(settings, embedder=use_embedder)
    ingest_file(catalog, path)
    return ShoppingAgent(catalog, SessionStore(settings.home / "sessions"))


# -- pure reading -----------------------------------------------------------------------------------
def test_a_recipient_is_context_not_search_text():
    intent = parse_rules("给我妈买个生日礼物 300左右")
    assert intent.occasion and "妈" in intent.occasion and not intent.query
    assert intent.min_price == 240 and intent.max_price == 360
    later = parse_rules("他平时爱喝咖啡", previous=parse_rules("送男朋友的生日礼物 500以内"))
    assert later.relation == Relation.refine and later.query == "咖啡"  # the gift narrows, budget kept
    assert parse_rules("他胡子硬 要三刀头的").max_price is None  # 刀 is slang for dollars, 刀头 is no price


def test_model_generations_are_read_but_sizes_and_prices_are_not():
    assert model_names("iphone 15 pro max 256g") == [("iphone", "15")]
    assert model_names("iphone13pro手机壳") == [("iphone", "13")]
    assert model_names("size 38 shoes under 500 yuan") == []


def test_gift_ideas_follow_the_recipient_and_the_language():
    assert (
        recipient_class("妈 生日 礼物") == "f" and recipient_class("dad") == "m" and recipient_class("6岁儿子") == "k"
    )
    assert gift_ideas("dad", "en")[0].isascii() and not gift_ideas("爸", "zh")[0].isascii()
    items = ["男士面霜", "女士面霜", "香水"]
    assert for_recipient(items, "妈", str) == ["女士面霜", "香水"]  # a gift for mom: no men's products


@pytest.mark.parametrize(
    ("message", "act"),
    [
        ("do they come in a travel size?", Relation.question),  # about what is shown, not a search
        ("whats the warranty on the lamp", Relation.question),
        ("ok i'll take the dell", Relation.pick),
        ("ok whatever. do you sell plant pots?", Relation.new),  # availability is a search
        ("any with heels?", Relation.refine),
    ],
)
def test_dialogue_acts_of_english_turns(message: str, act: Relation):
    previous = parse_rules("running shoes")
    rules = parse_rules(message, previous=previous, shown_count=3)
    assert read_act(message, rules, shown=3, has_need=True).relation == act


def test_a_shown_product_named_by_its_own_word():
    shown = [
        Product(id=f"p{i}", title=t, price=1.0) for i, t in enumerate(["Dell XPS 13", "Lenovo Yoga", "HP Spectre"])
    ]
    assert named_positions("ok i'll take the dell", shown) == [1]
    assert named_positions("how much is it?", shown) == []


def test_open_questions_are_answered_by_the_attribute_of_their_kind():
    p = Product(id="x", title="Desk Lamp", price=20.0, stock=57, attributes={"warranty": "3 months warranty"})
    assert answer_question(p, "whats the warranty on the lamp", "en").said
    assert "57" in answer_question(p, "how many do you have left?", "en").text
    assert not answer_question(p, "is it waterproof?", "en").said


# -- whole turns ------------------------------------------------------------------------------------
def test_a_vague_gift_gets_catalog_confirmed_groups_and_one_question(agent):
    r = agent.ask("g1", "给我妈买个生日礼物 300左右")
    products = [agent.catalog.get(i) for i in r.products]
    assert len(products) >= 3 and all(240 <= p.price <= 360 for p in products)
    assert not any("男士" in p.title for p in products)  # for mom
    groups = {c.get("group") for c in r.cards}
    assert len(groups - {None}) >= 2 and "喜欢什么" in r.reply
    follow = agent.ask("g1", "她皮肤比较干，平时喜欢护肤")
    assert follow.act == "refine" and follow.constraints["max_price"] == 360  # budget and recipient kept
    assert follow.products and all("护肤品" in agent.catalog.get(i).category for i in follow.products)


def test_a_model_the_shop_lacks_is_said_and_the_line_is_offered(agent):
    r = agent.ask("m1", "iPhone 15 Pro Max 256G")
    assert r.products == [] and ("没有" in r.reply or "don't have" in r.reply)
    assert "g11" in r.alternatives
    again = agent.ask("m1", "那iphone13有吗")
    assert again.act == "new" and "g11" in again.products


def test_shavers_not_their_chargers_and_out_of_stock_before_strangers(agent):
    shavers = agent.ask("s1", "给我爸买个剃须刀 200以内")
    assert shavers.products and "g04" not in shavers.products
    volley = agent.ask("s2", "do you have volleyballs?")
    assert volley.products == ["e01"] and "out of stock" in volley.reply


def test_what_about_swaps_the_product_and_the_cheaper_one_is_a_question(agent):
    agent.ask("c1", "cat food")
    dog = agent.ask("c1", "what about dog food?")
    assert dog.products[:1] == ["e05"]
    assert "10.99" in agent.ask("c1", "how much is it?").reply
    agent.ask("c2", "laptop")
    cheaper = agent.ask("c2", "how much is the cheaper one?")
    assert cheaper.act == "question" and "1099.99" in cheaper.reply
    pick = agent.ask("c2", "ok i'll take the dell")
    assert pick.act == "pick" and pick.focus == ["e06"]


def test_a_skin_question_is_answered_by_what_serves_that_skin():
    p = Product(id="x", title="Olay 水乳套装 补水保湿", price=250.0)
    assert answer_question(p, "第一个适合干皮吗？", "zh").said  # 干皮 is served by 补水/保湿


def test_another_product_after_a_gift_is_a_new_need_not_a_narrower_gift():
    gift = parse_rules("给我妈买个生日礼物 300左右")
    assert parse_rules("iPhone 15 Pro Max 256G", previous=gift).relation == Relation.new
    assert parse_rules("要个保温杯", previous=gift).relation == Relation.refine


def test_a_compare_of_equal_prices_still_gives_a_verdict() -> None:
    from assistant.answers import compare
    from shopassist.models import Product

    a = Product(id="a", title="A jeans", price=69.9, brand="X", attributes={"颜色": "深色"})
    b = Product(id="b", title="B jeans", price=69.9, brand="Y")
    assert compare([a, b], [1, 2], [], "zh").splitlines()[-1] == "结论：价格相同，区别在品牌、颜色。"
    assert compare([a, b], [1, 2], [], "en").splitlines()[-1].startswith("Verdict: same price; they differ in brand")

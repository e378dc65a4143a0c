#!/usr/bin/env python3
"""Build the bundled bilingual demo catalog (``shopassist/resources/demo_catalog.jsonl``).

Usage::

    python scripts/build_demo_catalog.py [--data ../shared/data] [--out shopassist/resources/demo_catalog.jsonl]
                                         [--seed 13] [--doc shopassist/resources/DEMO_CATALOG.md] [--verify-only]

Inputs (read-only) live in ``<data>/catalogs/``; the data directory defaults to ``../shared/data``
relative to the repository root, or to ``$SHOPASSIST_SHARED_DATA`` when that is set. ``--data``
wins over both.

Four public sources are merged, in this priority order (an exact duplicate title keeps the record
of the earlier source):

1. ``dummyjson``            - DummyJSON products (English, MIT). Everything but the category path is
                              taken as-is; the category path maps DummyJSON's slug to a readable path.
2. ``taobao_double11_2016`` - real Taobao beauty listings, Double-11 2016. Real title, price, sales
                              and comment counts; brand from the title's ``EN/中文`` prefix or the
                              shop; category by keyword rules on the title; stock is generated.
3. ``openbg``               - Alibaba OpenBG products as they appear in EcomGPT task rows. One
                              product per distinct title, merging every row that mentions it.
                              Attributes are only taken from rows where they belong to the title
                              (``title_attribute_matching`` rows labelled 不匹配 pair a title with
                              another product's attributes, so their attributes are dropped).
                              Price and stock are generated.
4. ``taobao_titles_ner``    - Taobao titles with brand / product-word spans (MultiDigraphNER).
                              Filtered by generic quality rules; price and stock are generated.

Every record says where it came from (``source``) and which of its fields were not in the source
(``generated_fields``). Generated values are drawn from a per-record RNG seeded by
``sha256(seed, record id, field)``, so a record's values do not depend on which other records are
in the catalog, and the output is byte-identical between runs.

Only the standard library is used, so the script runs anywhere the repository is checked out.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import html
import json
import math
import os
import random
import re
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "shopassist" / "resources" / "demo_catalog.jsonl"
MAX_OUTPUT_BYTES = 15 * 1024 * 1024
MIN_TOTAL, MAX_TOTAL = 5_000, 15_000

SOURCE_ORDER = ["dummyjson", "taobao_double11_2016", "openbg", "taobao_titles_ner"]
SOURCE_FILES = {
    "dummyjson": "dummyjson_products.json",
    "taobao_double11_2016": "taobao_beauty_double11_2016.jsonl",
    "openbg": "openbg_tasks_raw.jsonl",
    "taobao_titles_ner": "taobao_titles_ner.jsonl",
}
SOURCE_REPOS = {
    "dummyjson": "Ovi/DummyJSON",
    "taobao_double11_2016": "caichenccb/python-sklean",
    "openbg": "Alibaba-NLP/EcomGPT",
    "taobao_titles_ner": "PhantomGrapes/MultiDigraphNER",
}
ID_PREFIX = {
    "dummyjson": "dj",
    "taobao_double11_2016": "tb11",
    "openbg": "obg",
    "taobao_titles_ner": "ner",
}

# --------------------------------------------------------------------------------------------
# Small text helpers
# --------------------------------------------------------------------------------------------

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WS_RE = re.compile(r"\s+")
_INVISIBLE_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\ufeff]")


def clean_title(title: Any) -> str:
    """Drop invisible control characters and collapse whitespace; no other change."""
    if not isinstance(title, str):
        return ""
    return _WS_RE.sub(" ", _INVISIBLE_RE.sub("", title)).strip()


def title_key(title: str) -> str:
    """Key for exact-duplicate detection: NFKC, case-folded, whitespace removed."""
    return _WS_RE.sub("", unicodedata.normalize("NFKC", title)).casefold()


def stable_hash(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def cjk_count(text: str) -> int:
    return len(_CJK_RE.findall(text))


def dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for it in items:
        if it and it not in seen:
            seen.add(it)
            out.append(it)
    return out


def record_rng(seed: int, record_id: str, field: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{record_id}:{field}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# --------------------------------------------------------------------------------------------
# Generated price / stock
# --------------------------------------------------------------------------------------------

# Median price (CNY) by keyword, matched against the category leaf first, then the title
# (longest keyword wins, so 手机壳 beats 手机).
PRICE_MEDIAN_BY_KEYWORD = {
    "手机": 1500,
    "智能手机": 1500,
    "老人机": 299,
    "平板": 2000,
    "笔记本": 4500,
    "电脑": 3500,
    "显示器": 999,
    "主机": 3000,
    "相机": 2500,
    "镜头": 2000,
    "投影": 1500,
    "冰箱": 2500,
    "洗衣机": 2000,
    "空调": 2800,
    "电视": 2500,
    "热水器": 1200,
    "油烟机": 1800,
    "净水器": 899,
    "扫地": 1200,
    "微波炉": 499,
    "烤箱": 399,
    "破壁机": 399,
    "豆浆机": 299,
    "电饭煲": 299,
    "电磁炉": 199,
    "饮水机": 299,
    "吸尘器": 599,
    "空气净化": 899,
    "音箱": 299,
    "音响": 599,
    "耳机": 199,
    "麦克风": 159,
    "话筒": 159,
    "手表": 500,
    "腕表": 1500,
    "智能手环": 199,
    "剃须刀": 199,
    "吹风机": 149,
    "美容仪": 399,
    "路由器": 199,
    "键盘": 149,
    "鼠标": 79,
    "充电宝": 99,
    "手机壳": 29,
    "保护套": 29,
    "手机膜": 19,
    "钢化膜": 19,
    "贴膜": 19,
    "数据线": 19,
    "充电器": 39,
    "电池": 39,
    "灯泡": 29,
    "黄金": 2500,
    "钻戒": 3000,
    "钻石": 3000,
    "铂金": 2500,
    "翡翠": 1200,
    "玉": 599,
    "项链": 299,
    "吊坠": 299,
    "手链": 199,
    "戒指": 299,
    "耳环": 99,
    "耳钉": 99,
    "羽绒服": 499,
    "大衣": 499,
    "外套": 299,
    "西装": 399,
    "连衣裙": 199,
    "毛衣": 199,
    "裤": 129,
    "衬衫": 129,
    "t恤": 79,
    "袜": 19,
    "内衣": 99,
    "帽": 59,
    "围巾": 99,
    "鞋": 199,
    "靴": 299,
    "包": 199,
    "行李箱": 299,
    "拉杆箱": 299,
    "沙发": 1999,
    "床": 1499,
    "床垫": 1299,
    "衣柜": 1299,
    "柜": 599,
    "桌": 399,
    "椅": 199,
    "家具": 999,
    "地毯": 149,
    "窗帘": 129,
    "灯": 199,
    "垃圾桶": 39,
    "收纳": 39,
    "置物架": 79,
    "衣架": 29,
    "茶具": 129,
    "锅": 129,
    "杯": 39,
    "面膜": 79,
    "面霜": 199,
    "精华": 249,
    "口红": 199,
    "香水": 399,
    "洗发": 59,
    "唇膏": 129,
    "润唇膏": 29,
    "护唇": 29,
    "护手霜": 39,
    "沐浴": 49,
    "身体乳": 69,
    "乳液": 149,
    "爽肤水": 129,
    "洁面": 79,
    "洗面奶": 79,
    "卸妆": 99,
    "防晒": 129,
    "隔离": 159,
    "妆前": 159,
    "粉底": 199,
    "眼霜": 259,
    "化妆刷": 59,
    "纸巾": 29,
    "湿巾": 19,
    "卫生巾": 39,
    "啤酒": 69,
    "速溶咖啡": 59,
    "咖啡豆": 89,
    "米粉": 29,
    "螺蛳粉": 39,
    "方便面": 29,
    "牙膏": 19,
    "纸尿裤": 99,
    "奶粉": 259,
    "玩具": 79,
    "图书": 39,
    "书": 39,
    "咖啡": 59,
    "茶": 99,
    "酒": 199,
    "白酒": 299,
    "红酒": 199,
    "零食": 29,
    "饼干": 19,
    "坚果": 59,
    "奶酪": 39,
    "芝士": 39,
    "米": 59,
    "油": 69,
    "蜂蜜": 79,
    "鲜花": 199,
    "玫瑰": 199,
    "钢琴": 9999,
    "自行车": 899,
    "电动车": 2599,
    "轮胎": 399,
    "机油": 199,
    "导航": 699,
}
# Fallback median by top-level category (first path element).
PRICE_MEDIAN_BY_TOP = {
    "消费电子": 299,
    "大服饰": 159,
    "服饰": 159,
    "大百货": 59,
    "家居百货": 59,
    "美妆洗护": 99,
    "美妆": 99,
    "食品": 40,
    "母婴玩具": 99,
    "运动户外": 199,
    "家装建材": 199,
    "汽车用品": 99,
    "医药保健": 59,
    "图书文具": 29,
    "宠物用品": 49,
    "五金工具": 79,
    "其他": 99,
}
DEFAULT_PRICE_MEDIAN = 99
PRICE_SIGMA = 0.6


def _longest_keyword(text: str, table: dict[str, Any]) -> str | None:
    best = None
    low = text.casefold()
    for kw in table:
        if kw in low and (best is None or len(kw) > len(best)):
            best = kw
    return best


def price_median(category: str, title: str) -> float:
    leaf = category.split(" > ")[-1]
    for text in (leaf, title):
        kw = _longest_keyword(text, PRICE_MEDIAN_BY_KEYWORD)
        if kw:
            return PRICE_MEDIAN_BY_KEYWORD[kw]
    return PRICE_MEDIAN_BY_TOP.get(category.split(" > ")[0], DEFAULT_PRICE_MEDIAN)


def shop_price(value: float) -> float:
    """Round to a shop-like price: 8.9, 89.9, 159.9, 1599.0."""
    if value < 10:
        return max(1.9, math.floor(value) + 0.9)
    if value < 1000:
        return math.floor(value / 10) * 10 + 9.9
    return float(math.floor(value / 100) * 100 + 99)


def generate_price(seed: int, record_id: str, category: str, title: str) -> float:
    rng = record_rng(seed, record_id, "price")
    median = price_median(category, title)
    return shop_price(median * math.exp(rng.gauss(0.0, PRICE_SIGMA)))


def generate_stock(seed: int, record_id: str) -> int:
    """About 5% out of stock; otherwise a skewed count with median ~40, capped at 999."""
    rng = record_rng(seed, record_id, "stock")
    if rng.random() < 0.05:
        return 0
    return int(min(999, max(1, round(math.exp(rng.gauss(math.log(40), 1.0))))))


# --------------------------------------------------------------------------------------------
# Category rules
# --------------------------------------------------------------------------------------------

DUMMYJSON_CATEGORIES = {
    "beauty": "Beauty",
    "fragrances": "Beauty > Fragrances",
    "skin-care": "Beauty > Skin Care",
    "furniture": "Home > Furniture",
    "home-decoration": "Home > Decoration",
    "kitchen-accessories": "Home > Kitchen",
    "groceries": "Groceries",
    "laptops": "Electronics > Laptops",
    "smartphones": "Electronics > Smartphones",
    "tablets": "Electronics > Tablets",
    "mobile-accessories": "Electronics > Mobile Accessories",
    "mens-shirts": "Clothing > Men > Shirts",
    "mens-shoes": "Clothing > Men > Shoes",
    "mens-watches": "Accessories > Watches > Men",
    "womens-dresses": "Clothing > Women > Dresses",
    "womens-shoes": "Clothing > Women > Shoes",
    "womens-bags": "Accessories > Bags > Women",
    "womens-jewellery": "Accessories > Jewellery > Women",
    "womens-watches": "Accessories > Watches > Women",
    "tops": "Clothing > Women > Tops",
    "sunglasses": "Accessories > Sunglasses",
    "sports-accessories": "Sports > Accessories",
    "motorcycle": "Vehicles > Motorcycles",
    "vehicle": "Vehicles > Cars",
}
# DummyJSON slugs whose second tag names the product type (tags: ["beauty", "mascara"]).
DUMMYJSON_TYPE_FROM_TAG = {"beauty"}


def dummyjson_category(slug: str, tags: list[str]) -> str:
    base = (
        DUMMYJSON_CATEGORIES.get(slug)
        or " > ".join(w.capitalize() for w in slug.replace("_", "-").split("-") if w)
        or "Other"
    )
    if slug in DUMMYJSON_TYPE_FROM_TAG:
        sub = [t for t in tags if t and t.lower() != slug]
        if sub:
            base += " > " + sub[0].title()
    return base


# Taobao beauty: ordered rules, first hit wins. (keywords, category path)
BEAUTY_RULES: list[tuple[tuple[str, ...], str]] = [
    (("卸妆", "洁颜油"), "美妆 > 面部护理 > 卸妆"),
    (("洁面", "洗面奶", "洁颜", "洁肤", "洗颜"), "美妆 > 面部护理 > 洁面"),
    (("面膜", "面贴膜", "鼻贴", "鼻膜", "撕拉膜"), "美妆 > 面部护理 > 面膜"),
    (("磨砂", "去角质", "去死皮", "角质"), "美妆 > 面部护理 > 去角质"),
    (("眼霜", "眼部", "眼精华", "眼胶", "眼膜", "眼周"), "美妆 > 面部护理 > 眼部护理"),
    (("睫毛夹",), "美妆 > 美妆工具"),
    (("睫毛",), "美妆 > 彩妆 > 睫毛膏"),
    (("眼线",), "美妆 > 彩妆 > 眼线"),
    (("眉笔", "眉粉", "眉膏", "眉胶", "画眉", "眉形"), "美妆 > 彩妆 > 眉妆"),
    (("眼影", "彩妆盘", "彩妆盒"), "美妆 > 彩妆 > 眼影/彩妆盘"),
    (("润唇", "护唇"), "美妆 > 面部护理 > 润唇膏"),
    (("口红", "唇膏", "唇彩", "唇釉", "唇蜜", "唇露", "唇笔", "唇线", "唇颊"), "美妆 > 彩妆 > 唇妆"),
    (("bb霜", "cc霜", "bb ", "粉底", "气垫", "遮瑕", "隔离", "妆前", "修颜", "素颜霜"), "美妆 > 彩妆 > 底妆"),
    (("粉饼", "散粉", "蜜粉", "定妆"), "美妆 > 彩妆 > 粉饼/散粉"),
    (("腮红", "胭脂"), "美妆 > 彩妆 > 腮红"),
    (("高光", "修容"), "美妆 > 彩妆 > 修容/高光"),
    (("指甲", "甲油"), "美妆 > 彩妆 > 美甲"),
    (("防晒", "防紫外线", "晒后"), "美妆 > 面部护理 > 防晒"),
    (("祛痘", "净痘", "清痘", "痘"), "美妆 > 面部护理 > 祛痘"),
    (("香水", "香氛", "淡香", "古龙水"), "美妆 > 香水"),
    (("染发", "洗发", "护发", "发膜", "润发", "发油", "造型", "发胶", "啫喱水"), "美妆 > 美发护发"),
    (
        (
            "沐浴",
            "身体乳",
            "润肤露",
            "身体霜",
            "体乳",
            "护手",
            "手霜",
            "手膜",
            "身体",
            "足部",
            "足膜",
            "护足",
            "止汗",
            "香体",
        ),
        "美妆 > 身体护理",
    ),
    (("化妆刷", "粉扑", "化妆棉", "美妆蛋", "化妆海绵", "化妆包", "刷具", "工具"), "美妆 > 美妆工具"),
    (("剃须", "须后"), "美妆 > 男士护理 > 剃须"),
    (
        (
            "精华水",
            "爽肤水",
            "化妆水",
            "柔肤水",
            "紧肤水",
            "收敛水",
            "健肤水",
            "精粹水",
            "冰肌水",
            "肌活水",
            "菁华水",
            "保湿水",
            "美白水",
            "精萃水",
            "喷雾",
            "柔肤液",
            "活泉水",
            "嫩肤水",
            "肌底水",
            "机能水",
            "亮肤水",
            "水 ",
            "露 ",
        ),
        "美妆 > 面部护理 > 爽肤水",
    ),
    (
        (
            "精华",
            "菁华",
            "美容液",
            "精油",
            "原液",
            "肌底液",
            "安瓶",
            "安瓿",
            "小棕瓶",
            "小黑瓶",
            "小红瓶",
            "精粹液",
            "精萃",
        ),
        "美妆 > 面部护理 > 精华",
    ),
    (
        ("乳液", "柔肤乳", "保湿乳", "润肤乳", "精华乳", "修护乳", "美白乳", "滋养乳", "活肤乳", "乳 "),
        "美妆 > 面部护理 > 乳液",
    ),
    (("面霜", "日霜", "晚霜", "霜", "凝露", "凝霜", "凝胶", "啫喱"), "美妆 > 面部护理 > 面霜"),
]
# Fallbacks on the bare product noun at the end of a phrase ("细肤水120ml", "亮肤乳 清爽型").
BEAUTY_SUFFIX_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[\u4e00-\u9fff](水|喷雾)(?=[\sA-Za-z\d(（【\[]|$)"), "美妆 > 面部护理 > 爽肤水"),
    (re.compile(r"[\u4e00-\u9fff]乳(?=[\sA-Za-z\d(（【\[]|$)"), "美妆 > 面部护理 > 乳液"),
    (re.compile(r"[\u4e00-\u9fff](液|露)(?=[\sA-Za-z\d(（【\[]|$)"), "美妆 > 面部护理 > 爽肤水"),
]
BEAUTY_SET_WORDS = ("套装", "套组", "礼盒", "件套", "礼装", "组合", "套盒", "旅行装套", "三步曲", "三部曲", "五部曲")


def _beauty_hits(text: str) -> list[str]:
    hits = []
    for keywords, path in BEAUTY_RULES:
        if any(k in text for k in keywords):
            hits.append(path)
    return hits


def beauty_category(title: str) -> str:
    text = title.casefold() + " "
    hits = _beauty_hits(text)
    # A set that spans several product types is a set, not its first type.
    is_set = any(w in text for w in BEAUTY_SET_WORDS)
    if is_set and (len(set(hits)) >= 2 or "水乳" in text):
        return "美妆 > 护肤/彩妆套装"
    if hits:
        return hits[0]
    for pattern, path in BEAUTY_SUFFIX_RULES:
        if pattern.search(title):
            return path
    if any(w in text for w in BEAUTY_SET_WORDS):
        return "美妆 > 护肤/彩妆套装"
    return "美妆 > 其他"


# Chinese product keyword -> top-level category, for titles without a source label. Top levels
# reuse OpenBG's coarse names (大服饰, 消费电子, 大百货, 美妆洗护, 食品) plus a few more.
ZH_TOP_KEYWORDS: dict[str, str] = {}
for _top, _words in {
    "消费电子": "手机 平板 笔记本 电脑 显示器 主机 键盘 鼠标 耳机 音箱 音响 麦克风 话筒 相机 镜头 投影 路由器 "
    "充电器 充电宝 数据线 移动电源 电池 冰箱 洗衣机 空调 电视 热水器 油烟机 燃气灶 净水器 饮水机 微波炉 "
    "烤箱 电饭煲 电压力锅 电磁炉 破壁机 豆浆机 榨汁机 料理机 咖啡机 吸尘器 扫地机 空气净化器 加湿器 "
    "电风扇 风扇 取暖器 剃须刀 理发器 吹风机 电吹风 美容仪 电动牙刷 手环 智能手表 机顶盒 遥控器 "
    "u盘 硬盘 内存 显卡 cpu 主板 打印机 硒鼓 墨盒 摄像头 监控 对讲机 收音机 播放器 mp3 游戏机 "
    "声卡 效果器 导航仪 行车记录仪 电子秤 体重秤 体脂秤 插座 插排 手机壳 保护套 钢化膜 手机膜 贴膜 "
    "机 除湿机 浴霸 电话机 复印机 交换机 一体机 转换器 放大器 点读机 学习机 手柄 电子烟 呼叫器 打印头 "
    "无人机 平衡车 电动牙刷 充电线 耳麦 读卡器 网卡 光猫 手写板",
    "大服饰": "连衣裙 裙 t恤 衬衫 衬衣 卫衣 毛衣 针织衫 外套 夹克 风衣 大衣 羽绒服 棉衣 棉服 棉袄 西装 "
    "马甲 背心 吊带 打底衫 上衣 裤 牛仔裤 短裤 内衣 内裤 文胸 睡衣 家居服 袜 丝袜 运动服 童装 "
    "女装 男装 旗袍 婚纱 礼服 汉服 校服 工作服 鞋 靴 凉鞋 拖鞋 帆布鞋 运动鞋 皮鞋 高跟鞋 "
    "包 背包 双肩包 手提包 钱包 挎包 行李箱 拉杆箱 旅行箱 帽 围巾 披肩 手套 腰带 皮带 领带 眼镜 "
    "太阳镜 墨镜 手表 腕表 怀表 表带 项链 吊坠 手链 手镯 戒指 耳环 耳钉 发夹 发饰 饰品 首饰 黄金 翡翠 珍珠 "
    "和田玉 玉石 钻石 假发 衣服 服装 服饰 裙子 裤子 鞋子 口水巾 围兜 雨衣 休闲鞋 男鞋 女鞋 单鞋 板鞋 "
    "小白鞋 老爹鞋 童鞋 靴子 短靴 休闲裤 西裤 长裤 阔腿裤 打底裤 针织衫 羊毛衫 羊绒衫",
    "美妆洗护": "面膜 面霜 乳液 爽肤水 化妆水 精华 洗面奶 洁面 卸妆 防晒 口红 唇膏 粉底 bb霜 眼影 睫毛膏 "
    "眼线 眉笔 香水 洗发水 护发素 发膜 染发 沐浴露 身体乳 护手霜 牙膏 牙刷 漱口水 化妆品 护肤品 "
    "美甲 指甲油 化妆刷 卫生巾 洗衣液 洗洁精 纸巾 湿巾 粉饼 妆前乳 洗发露 洗衣皂 香皂 肥皂 洗手液 "
    "护肤 彩妆 化妆 眼霜 隔离霜 精油 唇膜 假睫毛 睫毛",
    "食品": "茶 茶叶 咖啡 奶粉 牛奶 酸奶 饮料 果汁 矿泉水 酒 白酒 红酒 啤酒 葡萄酒 零食 饼干 糖果 巧克力 "
    "坚果 瓜子 果干 蜜饯 肉干 牛肉干 面包 蛋糕 月饼 粽子 大米 米 面粉 面条 挂面 粉丝 食用油 调味 "
    "酱油 醋 辣椒酱 火锅底料 蜂蜜 红枣 枸杞 燕窝 海参 水果 蔬菜 鸡蛋 鸭蛋 咸鸭蛋 猪肉 牛肉 羊肉 "
    "海鲜 虾 蟹 鱼 麦片 芝麻糊 代餐 奶酪 芝士 罐头 速食 方便面 腊肠 香肠 月饼 花草茶 普洱 特产 饮品 "
    "糕点 小吃 熟食 肉松 辣条 果冻 冰淇淋 豆浆 奶茶 茶饮 冲饮 红糖 白糖 食盐 味精 鸡精 米粉 螺蛳粉 "
    "香油 芝麻油 干货 茯砖 砖茶 黑茶 绿茶 红茶 白茶 乌龙茶",
    "大百货": "杯 水杯 保温杯 碗 盘 筷 勺 锅 炒锅 刀具 菜板 茶具 茶盘 收纳 收纳盒 收纳箱 置物架 衣架 "
    "晾衣架 垃圾桶 拖把 扫把 抹布 毛巾 浴巾 床单 被套 四件套 被子 枕头 枕 凉席 蚊帐 窗帘 地毯 地垫 "
    "脚垫 桌布 靠垫 抱枕 沙发 床 床垫 衣柜 柜 书架 桌 椅 凳 茶几 家具 镜子 花瓶 摆件 装饰画 相框 "
    "挂钟 闹钟 台灯 灯 吊灯 灯泡 led 雨伞 伞 保鲜盒 饭盒 便当盒 水壶 热水瓶 对联 红包 蜡烛 香薰 "
    "鲜花 花束 绿植 花盆 假花 仿真花 睡袋 帐篷 种子 花篮 手捧花 花卉 多肉 盆栽 气球 彩带 装饰 装饰品 "
    "挂件 雕塑 油画 扇子 存钱罐 储钱罐 货架 护栏 床帘 密封条 防撞条 支架 用品 家居 厨具 餐具 洁具 "
    "保温壶 暖手宝 热水袋 衣帽架 屏风 紫砂壶 茶壶 电熨斗 挂烫机 磁铁 镊子",
    "母婴玩具": "纸尿裤 尿不湿 尿布 奶瓶 奶嘴 婴儿 宝宝 儿童 玩具 积木 拼图 童车 婴儿车 推车 安全座椅 魔方 跳舞毯 "
    "学步车 辅食 孕妇 哺乳 吸奶器 毛绒 公仔 娃娃 模型 遥控车",
    "运动户外": "跑步机 哑铃 瑜伽 健身 球拍 羽毛球 乒乓球 篮球 足球 网球 高尔夫 泳衣 泳镜 泳裤 自行车 骑行 "
    "滑板 轮滑 鱼竿 渔具 钓鱼 登山 户外 帐篷 睡袋 冲锋衣 护膝 护腕 跳绳 排球 起跳板 健身器",
    "家装建材": "地板 瓷砖 墙纸 壁纸 墙壁纸 涂料 油漆 石膏板 吊顶 门 窗 水龙头 花洒 马桶 浴室柜 洗手盆 "
    "水槽 开关 插座面板 灯具 护墙板 背景墙 装饰板 五金 合页 门锁 指纹锁 锁 管件 阀门 电线 水管 "
    "电缆 坐便器 卫浴",
    "汽车用品": "汽车 车载 座垫 坐垫 脚垫 方向盘套 轮胎 机油 雨刮 车衣 车膜 行车 导航 后视镜 头盔 "
    "摩托车 电动车 电瓶车 车灯 洗车",
    "医药保健": "药 药片 胶囊 颗粒 口服液 保健 维生素 钙片 蛋白粉 鱼油 血压计 血糖仪 血糖试纸 体温计 "
    "口罩 创可贴 护腰 护颈 矫正带 矫正器 按摩 按摩器 艾灸 膏药 拐杖 轮椅 助听器 成人纸尿裤 纸尿片 "
    "避孕套 安全套 计生 中药 西药 药材 滋补 人参 阿胶 营养品 血压 理疗 拔罐 乳膏 药膏 软膏",
    "图书文具": "图书 书 书籍 教材 杂志 字典 词典 期刊 绘本 漫画 小说 笔 钢笔 铅笔 圆珠笔 笔记本子 本子 文件夹 文件盒 书包 文具 "
    "画笔 颜料 纸 打印纸 胶带 计算器 印章 书法 字帖 光盘 唱片 cd dvd 乐器 吉他 钢琴 电子琴 古筝 二胡 小提琴 鼓",
    "宠物用品": "宠物 猫 狗 犬 猫粮 狗粮 猫砂 猫抓板 狗窝 猫窝 鸟笼 鱼缸 水族 饲料",
    "五金工具": "工具 扳手 螺丝刀 电钻 电锤 角磨机 切割机 焊机 焊 钳 锯 刀片 砂轮 轴承 电机 马达 "
    "传感器 继电器 变频器 接触器 断路器 电容 电阻 芯片 模块 pcb 编码器 开关电源 泵 水泵 气泵 "
    "阀 齿轮 链条 皮带轮 螺丝 螺母 螺栓 弹簧",
}.items():
    for _w in _words.split():
        ZH_TOP_KEYWORDS.setdefault(_w, _top)


def zh_keyword_top(text: str, whole_word: bool = False) -> tuple[str, str] | None:
    """(top, keyword) for a keyword found in ``text``, or None.

    Free text (a title): the longest keyword wins, the earliest on a tie (on OpenBG's labelled
    titles "earliest" agrees with the labels more often than "latest"); single-character
    keywords are ignored. A product word (``whole_word=True``): Chinese compounds are head-final,
    so the longest keyword the word *ends* with wins (红酒柜 -> 柜, not 红酒), single characters
    included; failing that, the longest multi-character keyword it contains.
    """
    low = text.casefold()
    if whole_word:
        suffix = [kw for kw in ZH_TOP_KEYWORDS if low.endswith(kw)]
        if suffix:
            kw = max(suffix, key=len)
            return ZH_TOP_KEYWORDS[kw], kw
    best: tuple[int, int, str] | None = None
    for kw in ZH_TOP_KEYWORDS:
        if len(kw) == 1:
            continue
        pos = low.find(kw)
        if pos < 0:
            continue
        cand = (len(kw), -pos, kw)
        if best is None or cand > best:
            best = cand
    if best is None:
        return None
    return ZH_TOP_KEYWORDS[best[2]], best[2]


# --------------------------------------------------------------------------------------------
# Quality filters (generic rules only)
# --------------------------------------------------------------------------------------------

MIN_LEN = {"en": 3, "zh": 5}
MIN_CJK = 5
# A long digit run (part, model or phone numbers) with little Chinese text around it is a code
# dump, not a title; a book title with its ISBN keeps enough text to pass.
MAX_DIGIT_RUN = 9
PART_NUMBER_MIN_CJK = 8
_DIGIT_RUN_RE = re.compile(rf"\d{{{MAX_DIGIT_RUN + 1},}}")
_LABEL_LEAK_RE = re.compile(r"\[\d+_\d+\]:")  # NER annotation leaked into the title text
# Services, virtual goods and logistics: not products a shopping assistant should recommend.
SERVICE_WORDS = (
    "租赁",
    "出租",
    "租车",
    "代练",
    "代写",
    "代办",
    "代发",
    "代理注册",
    "服务",
    "制作",
    "装修",
    "维修",
    "安装",
    "培训",
    "课程",
    "咨询",
    "点卡",
    "点券",
    "q币",
    "充值",
    "话费",
    "流量",
    "会员",
    "彩铃",
    "出版",
    "快递",
    "物流",
    "托运",
    "海运",
    "空运",
    "寄送",
    "摄影",
    "写真",
    "旅游",
    "门票",
    "机票",
    "酒店",
    "签证",
    "注册商标",
    "商标",
    "设计",
    "定制服务",
    "婚庆",
    "跑腿",
    "家政",
    "保洁",
)
# A product word in the title is "service-like" only if it *is* a service noun; title-level
# phrases are checked separately.
SERVICE_TITLE_PHRASES = (
    "补运费",
    "补邮费",
    "运费专用",
    "邮费专用",
    "补差价",
    "差价专用",
    "运费补拍",
    "邮费补拍",
    "彩铃",
    "代练",
    "充值",
    "点卡",
    "租赁",
    "上门服务",
    "包年",
    "代写",
    "注册商标",
    "商标转让",
    "签证",
    "快递到",
    "寄送到",
    "海运",
    "空运",
    "专拍链接",
    "补拍链接",
    "差价链接",
)
_RENTAL_RE = re.compile(r"出租(?![屋房车])")  # 出租 = for rent; 出租屋 is a rented flat


def zh_quality_reject(title: str, lang: str = "zh") -> str | None:
    """Generic title checks; returns a reject reason or None."""
    if not title:
        return "empty_title"
    if "\ufffd" in title or _LABEL_LEAK_RE.search(title):
        return "garbled_text"
    if len(title) < MIN_LEN[lang]:
        return "too_short"
    if lang == "zh":
        if cjk_count(title) < MIN_CJK:
            return "too_few_chinese_chars"
        if _DIGIT_RUN_RE.search(title) and cjk_count(title) < PART_NUMBER_MIN_CJK:
            return "part_number_heavy"
    return None


# Virtual goods, matched as the head (end) of a product word: 电影票, 优惠券, 素材 (not 资料册).
VIRTUAL_HEADS = (
    "优惠券",
    "代金券",
    "券",
    "电影票",
    "门票",
    "车票",
    "软件",
    "视频",
    "资料",
    "素材",
    "报告",
    "教程",
    "模板",
    "激活码",
    "兑换码",
    "账号",
    "帐号",
    "课程",
    "网课",
    "会员卡",
    "源码",
    "论文",
)


def is_service(title: str, product_words: list[str]) -> bool:
    low = title.casefold()
    if any(p in low for p in SERVICE_TITLE_PHRASES) or _RENTAL_RE.search(low):
        return True
    if any(any(s in w for s in SERVICE_WORDS) for w in product_words):
        return True
    return any(w.endswith(VIRTUAL_HEADS) for w in product_words)


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


class Rejects:
    def __init__(self) -> None:
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

        self.examples: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        self.raw: dict[str, str] = {}  # source -> what was read, for the notes

    def add(self, source: str, reason: str, example: str = "") -> None:
        self.counts[source][reason] += 1
        if example and len(self.examples[source, reason]) < 8:
            self.examples[source, reason].append(example)


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if line:
                rows.append((lineno, json.loads(line)))
    return rows


def _num_str(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def base_record(**kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": None,
        "title": "",
        "description": "",
        "brand": None,
        "category": "其他",
        "price": 0.0,
        "currency": "CNY",
        "stock": 0,
        "attributes": {},
        "tags": [],
        "image_url": None,
        "rating": None,
        "sale_count": None,
        "comment_count": None,
        "language": "zh",
        "source": {},
        "generated_fields": [],
    }
    rec.update(kw)
    return rec


def source_info(dataset: str, record: Any, commits: dict[str, str], **extra: Any) -> dict[str, Any]:
    repo = SOURCE_REPOS[dataset]
    info = {"dataset": dataset, "repo": repo, "commit": commits.get(repo), "record": record}
    info.update(extra)
    return info


def load_dummyjson(path: Path, commits: dict[str, str], rejects: Rejects) -> list[dict[str, Any]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    products = raw["products"] if isinstance(raw, dict) else raw
    rejects.raw["dummyjson"] = f"{len(products):,} products"
    out = []
    for p in sorted(products, key=lambda p: int(p["id"])):
        title = clean_title(p.get("title"))
        reason = zh_quality_reject(title, "en") if title else "empty_title"
        if reason in ("empty_title", "too_short", "garbled_text"):
            rejects.add("dummyjson", reason, title)
            continue
        tags = [str(t) for t in p.get("tags") or []]
        attrs: dict[str, Any] = {}
        if p.get("sku"):
            attrs["sku"] = str(p["sku"])
        if p.get("discountPercentage") is not None:
            attrs["discount_percentage"] = _num_str(p["discountPercentage"])
        if p.get("weight") is not None:
            attrs["weight"] = _num_str(p["weight"])
        dims = p.get("dimensions") or {}
        if all(k in dims for k in ("width", "height", "depth")):
            attrs["dimensions"] = " x ".join(_num_str(dims[k]) for k in ("width", "height", "depth"))
        for src, dst in (
            ("warrantyInformation", "warranty"),
            ("shippingInformation", "shipping"),
            ("returnPolicy", "return_policy"),
            ("minimumOrderQuantity", "minimum_order_quantity"),
        ):
            if p.get(src) not in (None, ""):
                attrs[dst] = _num_str(p[src])
        out.append(
            base_record(
                id=f"dj-{p['id']}",
                title=title,
                description=clean_title(p.get("description")),
                brand=(p.get("brand") or None),
                category=dummyjson_category(p.get("category", ""), tags),
                price=float(p["price"]),
                currency="USD",
                stock=int(p.get("stock") or 0),
                attributes=attrs,
                tags=tags,
                image_url=p.get("thumbnail") or ((p.get("images") or [None])[0]),
                rating=float(p["rating"]) if p.get("rating") is not None else None,
                language="en",
                source=source_info("dummyjson", int(p["id"]), commits, category_from="source_slug_map"),
                generated_fields=[],
            )
        )
    return out


_BRAND_PREFIX_RE = re.compile(
    r"^(?:【[^】]*】|\[[^\]]*\]|\s)*([A-Za-z][A-Za-z0-9'’&.\- ]{0,30}?)\s*/\s*([\u4e00-\u9fff]{1,10})"
)
_VOLUME_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ml|毫升|g|克|kg|l)(?:\s*[*×xX]\s*(\d+))?(?![a-z])", re.I)
_SPF_RE = re.compile(r"spf\s*(\d+)\s*(\+?)", re.I)
_PA_RE = re.compile(r"\bpa\s*(\+{1,4})", re.I)
BEAUTY_EFFECT_TAGS = (
    "补水",
    "保湿",
    "美白",
    "提亮",
    "控油",
    "抗皱",
    "紧致",
    "淡化细纹",
    "祛痘",
    "修护",
    "滋润",
    "清洁",
    "防水",
    "持久",
    "遮瑕",
    "淡斑",
    "舒缓",
    "去角质",
    "去黑头",
    "收缩毛孔",
    "抗氧化",
    "防晒",
    "哑光",
    "敏感肌",
)


def beauty_attributes(title: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    vols = []
    for m in _VOLUME_RE.finditer(title):
        unit = m.group(2).lower()
        unit = {"毫升": "ml", "克": "g"}.get(unit, unit)
        v = f"{m.group(1)}{unit}" + (f"*{m.group(3)}" if m.group(3) else "")
        vols.append(v)
    vols = dedupe(vols)
    if vols:
        attrs["容量"] = vols[0] if len(vols) == 1 else vols
    spf = _SPF_RE.search(title)
    if spf:
        attrs["SPF"] = f"SPF{spf.group(1)}{spf.group(2)}"
    pa = _PA_RE.search(title)
    if pa:
        attrs["PA"] = f"PA{pa.group(1)}"
    if "男士" in title or "男用" in title:
        attrs["适用对象"] = "男士"
    return attrs


def load_taobao_beauty(path: Path, commits: dict[str, str], rejects: Rejects, seed: int) -> list[dict[str, Any]]:
    rows = _read_jsonl(path)
    rejects.raw["taobao_double11_2016"] = f"{len(rows):,} rows"
    # Canonical brand per shop: the most common "EN/中文" title prefix whose Chinese part is the shop.
    prefixes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for _, r in rows:
        m = _BRAND_PREFIX_RE.match(r.get("title") or "")
        shop = (r.get("shop") or "").strip()
        if m and shop and m.group(2).startswith(shop):
            prefixes[shop][f"{m.group(1).strip()}/{shop}"] += 1
    shop_brand = {shop: c.most_common(1)[0][0] for shop, c in prefixes.items()}

    out = []
    for lineno, r in sorted(rows, key=lambda x: str(x[1].get("id"))):
        title = clean_title(r.get("title"))
        reason = zh_quality_reject(title) or ("service_or_virtual" if is_service(title, []) else None)
        if reason:
            rejects.add("taobao_double11_2016", reason, title)
            continue
        price = r.get("price_cny")
        if price is None or not isinstance(price, (int, float)) or price < 0:
            rejects.add("taobao_double11_2016", "no_price")
            continue
        shop = (r.get("shop") or "").strip() or None
        brand = shop_brand.get(shop or "") or shop
        rid = f"tb11-{r['id']}"
        attrs = beauty_attributes(title)
        low = title.casefold()
        tags = [t for t in BEAUTY_EFFECT_TAGS if t in low]
        desc = "；".join(f"{k}：{'、'.join(v) if isinstance(v, list) else v}" for k, v in attrs.items())
        out.append(
            base_record(
                id=rid,
                title=title,
                description=desc,
                brand=brand,
                category=beauty_category(title),
                price=float(price),
                currency="CNY",
                stock=generate_stock(seed, rid),
                attributes=attrs,
                tags=tags,
                sale_count=r.get("sale_count"),
                comment_count=r.get("comment_count"),
                language="zh",
                source=source_info(
                    "taobao_double11_2016",
                    str(r["id"]),
                    commits,
                    line=lineno,
                    shop=shop,
                    snapshot_date=r.get("snapshot_date"),
                    category_from="keyword_rule",
                ),
                generated_fields=["stock"],
            )
        )
    return out


# OpenBG ----------------------------------------------------------------------------------------

OPENBG_NOISE_KEYS = {
    "货号",
    "主图来源",
    "型号",
    "批准文号",
    "配送安装地区",
    "省份",
    "地市",
    "区县",
    "城市",
    "是否为特殊用途化妆品",
    "销售渠道类型",
    "是否商场同款",
    "商品条形码",
    "能效备案号",
    "电信设备进网许可证编号",
    "涉水批件批准文号",
    "限期使用日期范围",
    "出租车是否可运输",
    "同城服务",
    "增值服务",
    "是否可预售",
    "安装说明详情",
    "是否手工",
    "包装体积",
    "毛重",
    "生产许可证编号",
    "厂名",
    "厂址",
    "厂家联系方式",
    "产品标准号",
    "食品添加剂",
    "配料表",
    "储藏方法",
    "生产企业",
    "售后服务",
    "规格类型",
    "套餐类型",
    "采购地",
    "款式品名",
    "品名",
    "系列",
    "包装方式",
    "保修期",
    "是否可定制",
    "成色",
    "产品名称",
    "CCC证书编号",
    "证书编号",
    "3C规格型号",
    "医疗器械注册证编号",
    "注册证号",
    "备案号",
}
OPENBG_PLACEHOLDERS = {
    "",
    "其他",
    "other/其他",
    "其他/other",
    "other其他",
    "other",
    "其他品牌",
    "见描述",
    "详见描述",
    "123",
    "无品牌",
    "不详",
    "见详情",
    "详见详情",
    "暂无",
    "/",
    "-",
    "0x0x0cm",
}
OPENBG_TAG_KEYS = ("功效", "功能", "风格", "流行元素", "适用场景", "适用季节", "适用对象", "适用人群")


def parse_attr_string(s: str) -> list[tuple[str, str]]:
    pairs = []
    for part in s.split("#;#"):
        if "#:#" not in part:
            continue
        k, v = part.split("#:#", 1)
        k, v = k.strip(), v.strip()
        if k:
            pairs.append((k, v))
    return pairs


def _split_item(text: str) -> tuple[str, str]:
    """``"TITLE, a#:#b#;#..."`` -> (title, attr string). Titles may contain ', '."""
    text = text.strip().rstrip(",").strip()
    i = text.find("#:#")
    if i < 0:
        return text, ""
    j = text.rfind(", ", 0, i)
    if j < 0:
        return "", text
    return text[:j].strip(), text[j + 2 :].strip()


_MATCH_RE = re.compile(r"^Title:\s*(.*?), Attritute:\s*(.*)$", re.S)
_ALIGN_RE = re.compile(r"^Item 1:\s*(.*?),?\nItem 2:\s*(.*)$", re.S)


def parse_openbg_row(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Return [{title, attrs, coarse, fine, task}] for every product in one EcomGPT task row."""
    task = str(row.get("task", ""))
    kind = task.rsplit("-", 1)[-1]
    s = row.get("sentences") or ""
    labels = row.get("labels") or {}
    items: list[dict[str, Any]] = []
    if kind in ("item_coarse_classify", "item_fine_classify"):
        title, _, attr = s.partition("\t")
        coarse = (labels.get("coarse") or [None])[0]
        fine = (labels.get("fine") or [None])[0]
        items.append({"title": title, "attrs": parse_attr_string(attr), "coarse": coarse, "fine": fine})
    elif kind == "title_attribute_matching":
        m = _MATCH_RE.match(s)
        if m:
            matched = (labels.get("en") or [""])[0] == "match" or (labels.get("zh") or [""])[0] == "匹配"
            # A 不匹配 row pairs the title with another product's attributes: keep the title only.
            items.append({"title": m.group(1), "attrs": parse_attr_string(m.group(2)) if matched else []})
    elif kind == "item_align":
        m = _ALIGN_RE.match(s)
        if m:
            # Each item carries its own attributes, whether or not the pair is the same product.
            for part in m.groups():
                t, a = _split_item(part)
                items.append({"title": t, "attrs": parse_attr_string(a)})
    elif kind == "title_generate":
        # Input: the product's attributes; target: its real title.
        for span in row.get("spans") or []:
            term = (span or {}).get("term")
            if term:
                items.append({"title": term, "attrs": parse_attr_string(s)})
    else:
        # Unknown task type: take the text before a tab as a title if it looks like one.
        title, _, attr = s.partition("\t")
        if title and "#:#" not in title:
            items.append({"title": title, "attrs": parse_attr_string(attr)})
    for it in items:
        it["task"] = kind
        it["title"] = clean_title(it["title"])
    return items


LABEL_TOKEN_MIN_PRECISION = 0.5


def learn_label_tokens(labelled: list[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    """Fine-label names as title keywords: token -> (coarse, fine).

    ``labelled`` is [(title, coarse, fine)]. A fine label such as ``麦克风/话筒`` gives the tokens
    麦克风 and 话筒. A token is kept only if, among the labelled titles that contain it, at least
    ``LABEL_TOKEN_MIN_PRECISION`` carry that label (so 内存, which mostly occurs in phone titles,
    does not turn phones into memory sticks).
    """
    counts = collections.Counter((c, f) for _, c, f in labelled)
    tokens: dict[str, tuple[str, str]] = {}
    for (coarse, fine), _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        for tok in re.split(r"[/（）()、]", fine):
            tok = tok.strip().casefold()
            if len(tok) >= 2 and tok not in tokens:
                tokens[tok] = (coarse, fine)
    lowered = [(t.casefold(), f) for t, _, f in labelled]
    kept = {}
    for tok, (coarse, fine) in tokens.items():
        occ = [f for t, f in lowered if tok in t]
        if occ and sum(f == fine for f in occ) / len(occ) >= LABEL_TOKEN_MIN_PRECISION:
            kept[tok] = (coarse, fine)
    return kept


def match_label_tokens(tokens: dict[str, tuple[str, str]], title: str) -> tuple[str, str] | None:
    """The label whose token occurs first in the title (longer token on a tie)."""
    low = title.casefold()
    best = None
    for tok in tokens:
        pos = low.find(tok)
        if pos >= 0:
            cand = (-pos, len(tok), tok)
            if best is None or cand > best:
                best = cand
    return tokens[best[2]] if best else None


def rule_agreement(labelled: list[tuple[str, str, str]], folds: int = 5) -> dict[str, Any]:
    """How often the fallback rules agree with OpenBG's own labels (k-fold for the learned rule)."""
    out: dict[str, Any] = {"labelled": len(labelled)}
    order = sorted(labelled, key=lambda x: stable_hash(x[0]))
    cov = coarse_ok = fine_ok = 0
    for k in range(folds):
        test = order[k::folds]
        train = [x for i, x in enumerate(order) if i % folds != k]
        toks = learn_label_tokens(train)
        for t, c, f in test:
            hit = match_label_tokens(toks, t)
            if hit:
                cov += 1
                coarse_ok += hit[0] == c
                fine_ok += hit[1] == f
    out["label_name"] = (cov, coarse_ok, fine_ok)
    cov = ok = 0
    for t, c, _f in labelled:
        kw = zh_keyword_top(t)
        if kw:
            cov += 1
            ok += kw[0] == c
    out["keyword"] = (cov, ok)
    return out


OPENBG_RULE_CHECK: dict[str, Any] = {}


def load_openbg(path: Path, commits: dict[str, str], rejects: Rejects, seed: int) -> list[dict[str, Any]]:
    rows = _read_jsonl(path)
    merged: dict[str, dict[str, Any]] = {}
    for lineno, row in rows:
        for it in parse_openbg_row(row):
            title = it["title"]
            if not title:
                rejects.add("openbg", "empty_title")
                continue
            key = title_key(title)
            m = merged.get(key)
            if m is None:
                m = merged[key] = {
                    "title": title,
                    "attrs": collections.OrderedDict(),
                    "coarse": None,
                    "fine": None,
                    "lines": [],
                    "tasks": [],
                }
            else:
                rejects.add("openbg", "merged_same_title_row")
            if lineno not in m["lines"]:
                m["lines"].append(lineno)
            if it["task"] not in m["tasks"]:
                m["tasks"].append(it["task"])
            for k, v in it["attrs"]:
                vals = m["attrs"].setdefault(k, [])
                if v not in vals:
                    vals.append(v)
            if it.get("fine") and not m["fine"]:
                m["coarse"], m["fine"] = it.get("coarse"), it["fine"]

    rejects.raw["openbg"] = f"{len(rows):,} task rows, {len(merged):,} distinct titles"
    labelled = [(m["title"], m["coarse"], m["fine"]) for m in merged.values() if m["fine"] and m["coarse"]]
    fine_tokens = learn_label_tokens(labelled)
    OPENBG_RULE_CHECK.clear()
    OPENBG_RULE_CHECK.update(rule_agreement(labelled))

    out = []
    for m in sorted(merged.values(), key=lambda m: m["lines"][0]):
        title = m["title"]
        reason = zh_quality_reject(title) or ("service_or_virtual" if is_service(title, []) else None)
        if reason:
            rejects.add("openbg", reason, title)
            continue
        attrs: dict[str, Any] = {}
        brand = None
        for k, vals in m["attrs"].items():
            vals = [v for v in vals if v.casefold() not in OPENBG_PLACEHOLDERS and v.strip()]
            if not vals:
                continue
            if k == "品牌":
                brand = vals[0]
            if k in OPENBG_NOISE_KEYS:
                continue
            attrs[k] = vals[0] if len(vals) == 1 else vals
        if m["fine"]:
            category = f"{m['coarse']} > {m['fine']}" if m["coarse"] else m["fine"]
            category_from = "source_label"
        else:
            hit = match_label_tokens(fine_tokens, title)
            kw = zh_keyword_top(title)
            if hit:
                category, category_from = f"{hit[0]} > {hit[1]}", "label_name_in_title"
            elif kw:
                category, category_from = f"{kw[0]} > {kw[1]}", "keyword_rule"
            else:
                category, category_from = "其他", "keyword_rule"
        tags = []
        for k in OPENBG_TAG_KEYS:
            v = attrs.get(k)
            if v:
                tags.extend(v if isinstance(v, list) else [v])
        tags = dedupe([t for t in tags if len(t) <= 12])[:8]
        desc_keys = [
            k
            for k in (
                "品牌",
                "颜色分类",
                "颜色",
                "材质",
                "面料",
                "风格",
                "适用对象",
                "功效",
                "净含量",
                "尺码",
                "尺寸",
                "产地",
            )
            if k in attrs
        ]
        desc = "；".join(
            f"{k}：{'、'.join(attrs[k][:4]) if isinstance(attrs[k], list) else attrs[k]}" for k in desc_keys[:6]
        )
        rid = f"obg-{stable_hash(title)}"
        out.append(
            base_record(
                id=rid,
                title=title,
                description=desc,
                brand=brand,
                category=category,
                price=generate_price(seed, rid, category, title),
                currency="CNY",
                stock=generate_stock(seed, rid),
                attributes=attrs,
                tags=tags,
                language="zh",
                source=source_info(
                    "openbg",
                    m["lines"][0],
                    commits,
                    lines=m["lines"],
                    tasks=m["tasks"],
                    category_from=category_from,
                ),
                generated_fields=["price", "stock"],
            )
        )
    return out


# NER titles --------------------------------------------------------------------------------------

_TRAILING_ENTITY_RE = re.compile(r"&[A-Za-z]{2,8}$")
_PUNCT_STRIP = " .,;:!?、，。；：！？·-_/\\|()（）【】[]{}\"'“”‘’"


def load_ner(path: Path, commits: dict[str, str], rejects: Rejects, seed: int) -> list[dict[str, Any]]:
    out = []
    rows = _read_jsonl(path)
    rejects.raw["taobao_titles_ner"] = f"{len(rows):,} rows"
    for lineno, r in rows:
        title = clean_title(r.get("title"))
        # Upstream titles were cut at ';', leaving a dangling HTML entity ("...&middot").
        title = html.unescape(_TRAILING_ENTITY_RE.sub("", title)).strip()
        title = clean_title(title)
        reason = zh_quality_reject(title)
        if reason:
            rejects.add("taobao_titles_ner", reason, title)
            continue
        low = title.casefold()
        products = dedupe(w.strip(_PUNCT_STRIP) for w in (r.get("products") or []) if isinstance(w, str))
        products = [w for w in products if len(w) >= 2 and w.casefold() in low]
        if not products:
            rejects.add("taobao_titles_ner", "no_product_word", title)
            continue
        if is_service(title, products):
            rejects.add("taobao_titles_ner", "service_or_virtual", title)
            continue
        brands = [b.strip(_PUNCT_STRIP) for b in (r.get("brands") or []) if isinstance(b, str)]
        brands = [b for b in brands if b]
        category = None
        for w in products:
            hit = zh_keyword_top(w, whole_word=True)
            if hit:
                category = f"{hit[0]} > {w}"
                break
        if category is None:
            hit = zh_keyword_top(title)
            category = f"{hit[0]} > {hit[1]}" if hit else f"其他 > {products[0]}"
        rid = f"ner-{stable_hash(title)}"
        out.append(
            base_record(
                id=rid,
                title=title,
                description="",
                brand=brands[0] if brands else None,
                category=category,
                price=generate_price(seed, rid, category, title),
                currency="CNY",
                stock=generate_stock(seed, rid),
                attributes={"产品词": products},
                tags=products[:8],
                language="zh",
                source=source_info(
                    "taobao_titles_ner",
                    lineno,
                    commits,
                    split=r.get("split"),
                    category_from="keyword_rule",
                ),
                generated_fields=["price", "stock"],
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# Build, write, verify
# --------------------------------------------------------------------------------------------


def resolve_data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg).expanduser().resolve()
    env = os.environ.get("SHOPASSIST_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def build(data_dir: Path, seed: int) -> tuple[list[dict[str, Any]], Rejects, dict[str, int]]:
    cat_dir = data_dir / "catalogs"
    missing = [f for f in SOURCE_FILES.values() if not (cat_dir / f).is_file()]
    if missing:
        raise SystemExit(
            f"error: missing input files in {cat_dir}: {', '.join(missing)}. "
            "Pass --data DIR or set SHOPASSIST_SHARED_DATA to the shared data folder."
        )
    commits: dict[str, str] = {}
    sources_json = data_dir / "SOURCES.json"
    if sources_json.is_file():
        commits = json.loads(sources_json.read_text(encoding="utf-8"))

    rejects = Rejects()
    per_source = {
        "dummyjson": load_dummyjson(cat_dir / SOURCE_FILES["dummyjson"], commits, rejects),
        "taobao_double11_2016": load_taobao_beauty(
            cat_dir / SOURCE_FILES["taobao_double11_2016"], commits, rejects, seed
        ),
        "openbg": load_openbg(cat_dir / SOURCE_FILES["openbg"], commits, rejects, seed),
        "taobao_titles_ner": load_ner(cat_dir / SOURCE_FILES["taobao_titles_ner"], commits, rejects, seed),
    }
    candidates = {s: len(v) for s, v in per_source.items()}

    seen_titles: set[str] = set()
    seen_ids: set[str] = set()
    records: list[dict[str, Any]] = []
    for src in SOURCE_ORDER:
        for rec in per_source[src]:
            key = title_key(rec["title"])
            if key in seen_titles:
                rejects.add(src, "duplicate_title", rec["title"])
                continue
            if rec["id"] in seen_ids:  # hash collision on different titles: keep the first
                rejects.add(src, "duplicate_id")
                continue
            seen_titles.add(key)
            seen_ids.add(rec["id"])
            records.append(rec)

    def sort_key(rec: dict[str, Any]) -> tuple[int, str, int]:
        src = SOURCE_ORDER.index(rec["source"]["dataset"])
        suffix = rec["id"].split("-", 1)[1]
        return (src, "" if suffix.isdigit() else suffix, int(suffix) if suffix.isdigit() else 0)

    records.sort(key=sort_key)
    return records, rejects, candidates


def write_jsonl(records: list[dict[str, Any]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=False) + "\n")
    tmp.replace(out)


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    counts = collections.Counter(r["source"]["dataset"] for r in records)
    cat_from = collections.Counter((r["source"]["dataset"], r["source"].get("category_from")) for r in records)
    tops = collections.Counter(r["category"].split(" > ")[0] for r in records)
    return {"counts": counts, "category_from": cat_from, "tops": tops}


def write_doc(
    doc: Path, records: list[dict[str, Any]], rejects: Rejects, candidates: dict[str, int], seed: int, out: Path
) -> None:
    s = summarize(records)
    size = out.stat().st_size if out.exists() else 0

    def rows(src: str) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(rejects.counts[src].items())) or "none"

    lines = [
        "# Demo catalog: provenance, licences, counts",
        "",
        f"`shopassist/resources/demo_catalog.jsonl` is generated by `python scripts/build_demo_catalog.py --seed {seed}`"
        " from the shared data folder (`../shared/data/catalogs/`). Do not edit it by hand; rerun the"
        " script. The output is deterministic (same inputs and seed, same bytes).",
        "",
        f"Total: **{len(records):,} products** ({size / 1_048_576:.1f} MiB), one JSON object per line.",
        "",
        "| source (`source.dataset`) | upstream repo | licence | products | language | generated fields |",
        "|---|---|---|---:|---|---|",
        f"| `dummyjson` | [Ovi/DummyJSON](https://github.com/Ovi/DummyJSON) | MIT | {s['counts']['dummyjson']:,} | en | none |",
        f"| `taobao_double11_2016` | [caichenccb/python-sklean](https://github.com/caichenccb/python-sklean) | no licence file (research/teaching data) | {s['counts']['taobao_double11_2016']:,} | zh | `stock` |",
        f"| `openbg` | [Alibaba-NLP/EcomGPT](https://github.com/Alibaba-NLP/EcomGPT) (OpenBG product data) | no licence file (research dataset) | {s['counts']['openbg']:,} | zh | `price`, `stock` |",
        f"| `taobao_titles_ner` | [PhantomGrapes/MultiDigraphNER](https://github.com/PhantomGrapes/MultiDigraphNER) (ACL 2019) | no licence file (research dataset) | {s['counts']['taobao_titles_ner']:,} | zh | `price`, `stock` |",
        "",
        "Commits are in `../shared/data/SOURCES.json` and in each record's `source.commit`.",
        "ChineseEcomQA (CC BY-NC-SA) is **not** used in the catalog; it is an evaluation set only.",
        "Only DummyJSON carries an open licence. The Taobao/OpenBG records come from research datasets",
        "published without a licence file; they are used here for a clearly attributed, non-commercial",
        "demo. Every record names its source dataset, upstream repo, commit and record id/line",
        "(`source`), so any of them can be traced or removed.",
        "",
        "## What is real and what is not",
        "",
        "- `generated_fields` lists, per record, the fields whose value is **not** in the source. Those",
        "  values are plausible but invented: prices come from a seeded log-normal whose median depends on",
        "  the category (e.g. 手机 ~1500, 服饰 ~159, 食品 ~40, default 99 CNY), rounded to shop-like",
        "  endings (89.9, 159.9, 1599); stock from a seeded skewed distribution with ~5% at zero. Each",
        "  value depends only on the seed and the record id.",
        "- DummyJSON price, stock, rating, tags, brand and thumbnail are real (from DummyJSON, itself a",
        "  fake-store fixture). Taobao Double-11 price, sale_count and comment_count are real 2016 values.",
        "- `rating` is null outside DummyJSON; `sale_count`/`comment_count` are null outside Taobao Double-11.",
        "- `category` is a **derived label**, recorded in `source.category_from`:",
        "  `source_slug_map` (DummyJSON slug mapped to an English path), `source_label` (OpenBG coarse >",
        "  fine labels from the task rows), `label_name_in_title` (an OpenBG fine-label name found in the",
        "  title), `keyword_rule` (hand-written keyword table on the title / product words). Rule-derived",
        "  paths can be wrong; OpenBG's own labels are also occasionally wrong.",
        "- `description`: DummyJSON's own text; for OpenBG and Taobao Double-11 a short `键：值` string",
        "  built only from the record's attributes; empty for the NER titles.",
        "- Taobao Double-11 `brand`: the shop's `EN/中文` title prefix (e.g. `CHANDO/自然堂`), else the",
        "  shop name; `attributes` (容量, SPF, PA, 适用对象) and `tags` (effect words) are read from the title.",
        "- OpenBG: one product per distinct title, merging every task row that mentions it (`source.lines`,",
        "  `source.tasks`). Attributes from `title_attribute_matching` rows labelled 不匹配 belong to",
        "  another product and are dropped. Noise keys (货号, 主图来源, 型号, 批准文号, 配送安装地区 ...) and",
        "  placeholder values (other/其他, 见描述 ...) are removed.",
        "- NER titles: a dangling HTML entity cut off by the upstream tokenizer is removed; `brand` is",
        "  the first brand span, `attributes.产品词` the product-word spans found in the title.",
        "",
        "## Counts",
        "",
        "| source | read | kept | rejected or merged (reason count) |",
        "|---|---|---:|---|",
    ]
    for src in SOURCE_ORDER:
        lines.append(f"| `{src}` | {rejects.raw.get(src, '?')} | {s['counts'][src]:,} | {rows(src)} |")
    lines += [
        "",
        "Reject reasons (generic rules, no per-record exceptions): `too_short` (< 5 characters for",
        "Chinese titles, < 3 for English), `too_few_chinese_chars` (< 5 CJK characters: English run-ons,",
        "model-number lists), `part_number_heavy` (a 10+ digit run with < 8 CJK characters),",
        "`garbled_text` (U+FFFD mojibake or leaked NER annotations), `no_product_word` (NER: no",
        "product-word span of 2+ characters occurs in the title), `service_or_virtual` (rentals,",
        "repairs, ringtones, game cards/top-ups, tickets, postage/price-difference links, shipping;",
        "title phrases for every Chinese source, product-word heads for NER), `duplicate_title` (same",
        "title ignoring case/width/whitespace already kept from a higher-priority source: dummyjson >",
        "taobao_double11_2016 > openbg > taobao_titles_ner; within a source the first record wins),",
        "`merged_same_title_row` (an OpenBG task row folded into the product with the same title).",
        "",
        "Category provenance (`source.category_from`):",
        "",
    ]
    for (src, cf), n in sorted(
        s["category_from"].items(), key=lambda kv: (SOURCE_ORDER.index(kv[0][0]), kv[0][1] or "")
    ):
        lines.append(f"- `{src}` / `{cf}`: {n:,}")
    chk = OPENBG_RULE_CHECK
    if chk:
        cov, c_ok, f_ok = chk["label_name"]
        kcov, k_ok = chk["keyword"]
        lines += [
            "",
            f"How good are the rules? On the {chk['labelled']:,} OpenBG titles that carry a source label,",
            f"the `label_name_in_title` rule (5-fold, learned without the held-out titles) covers {cov:,} and",
            f"agrees on the coarse label for {c_ok / max(cov, 1):.0%} and the fine label for {f_ok / max(cov, 1):.0%};",
            f"the `keyword_rule` table covers {kcov:,} and agrees on the top level for {k_ok / max(kcov, 1):.0%}.",
            "Titles without labels (other task types, NER titles) are harder, so expect lower agreement there.",
        ]
    lines += [
        "",
        "## Caveats",
        "",
        "- A few Taobao Double-11 titles contain upstream mojibake (e.g. a stray `ㄠ` inside a word); they are kept",
        "  as published because the rest of the title is intact.",
        "- DummyJSON reviews (reviewer names/e-mails), barcodes and QR codes are not copied.",
        "- The Taobao Double-11 and NER titles also occur as distractors in",
        "  `../shared/data/eval/multicpr_ecom_pool/corpus.jsonl` (none of the relevant documents in its",
        "  qrels is in the catalog). Do not report retrieval numbers on the demo catalog as a benchmark.",
        "",
    ]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines), encoding="utf-8")


def verify(out: Path, samples_per_source: int = 3) -> int:
    """Reload the output and check it; print sample records. Returns a process exit code."""
    errors = []
    ids: set[str] = set()
    counts: collections.Counter[str] = collections.Counter()
    by_source: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    required = {
        "id",
        "title",
        "description",
        "brand",
        "category",
        "price",
        "currency",
        "stock",
        "attributes",
        "tags",
        "image_url",
        "rating",
        "language",
        "source",
        "generated_fields",
    }
    with out.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"line {n}: invalid JSON ({exc})")
                continue
            missing = required - rec.keys()
            if missing:
                errors.append(f"line {n}: missing {sorted(missing)}")
            if rec.get("id") in ids:
                errors.append(f"line {n}: duplicate id {rec.get('id')}")
            ids.add(rec.get("id"))
            if not isinstance(rec.get("price"), (int, float)) or rec["price"] < 0:
                errors.append(f"line {n}: bad price {rec.get('price')!r}")
            if not isinstance(rec.get("stock"), int) or rec["stock"] < 0:
                errors.append(f"line {n}: bad stock {rec.get('stock')!r}")
            if not rec.get("title"):
                errors.append(f"line {n}: empty title")
            for k, v in (rec.get("attributes") or {}).items():
                if not (isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))):
                    errors.append(f"line {n}: attribute {k} is not str/list[str]")
            src = str((rec.get("source") or {}).get("dataset"))
            if src not in SOURCE_ORDER or not str(rec.get("id", "")).startswith(ID_PREFIX.get(src, "?") + "-"):
                errors.append(f"line {n}: bad source/id prefix {src} {rec.get('id')}")
            counts[src] += 1
            by_source[src].append(rec)
    size = out.stat().st_size
    total = sum(counts.values())
    if size >= MAX_OUTPUT_BYTES:
        errors.append(f"output is {size} bytes (limit {MAX_OUTPUT_BYTES})")
    if not MIN_TOTAL <= total <= MAX_TOTAL:
        errors.append(f"total {total} outside [{MIN_TOTAL}, {MAX_TOTAL}]")
    print(f"\nverify {out}: {total} records, {size:,} bytes, {len(ids)} unique ids")
    for src in SOURCE_ORDER:
        print(f"  {src:22s} {counts[src]:6d}")
        recs = by_source[src]
        if recs:
            rng = random.Random(f"samples:{src}")
            for rec in rng.sample(recs, min(samples_per_source, len(recs))):
                print("    " + json.dumps(rec, ensure_ascii=False)[:600])
    for e in errors[:20]:
        print("  ERROR", e, file=sys.stderr)
    print("verify:", "OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", help="shared data dir (default: $SHOPASSIST_SHARED_DATA or ../shared/data from the repo root)"
    )
    ap.add_argument(
        "--out", default=str(DEFAULT_OUT), help="output JSONL (default: shopassist/resources/demo_catalog.jsonl)"
    )
    ap.add_argument("--doc", default=None, help="provenance notes (default: DEMO_CATALOG.md next to --out)")
    ap.add_argument("--seed", type=int, default=13, help="seed for generated price/stock (default: 13)")
    ap.add_argument("--verify-only", action="store_true", help="only check an existing --out file")
    ap.add_argument("--show-rejects", action="store_true", help="print example titles per reject reason")
    args = ap.parse_args(argv)

    out = Path(args.out)
    if not out.is_absolute():
        out = (Path.cwd() / out).resolve()
    if args.verify_only:
        return verify(out)

    data_dir = resolve_data_dir(args.data)
    records, rejects, candidates = build(data_dir, args.seed)
    write_jsonl(records, out)
    doc = Path(args.doc) if args.doc else out.parent / "DEMO_CATALOG.md"
    write_doc(doc, records, rejects, candidates, args.seed, out)

    s = summarize(records)
    print(f"data: {data_dir}")
    print(f"wrote {len(records)} products to {out} ({out.stat().st_size:,} bytes); notes in {doc}")
    print("per source (kept / candidates):")
    for src in SOURCE_ORDER:
        print(f"  {src:22s} {s['counts'][src]:6d} / {candidates[src]}")
    print("rejects per source and reason:")
    for src in SOURCE_ORDER:
        for reason, n in sorted(rejects.counts[src].items()):
            print(f"  {src:22s} {reason:24s} {n:6d}")
            if args.show_rejects:
                for ex in rejects.examples.get((src, reason), []):
                    print(f"      e.g. {ex[:70]}")
    print("top-level categories:", ", ".join(f"{k} {v}" for k, v in s["tops"].most_common()))
    return verify(out)


if __name__ == "__main__":
    sys.exit(main())

"""The built-in word groups: what a shopper says even when the catalog's attributes do not.

Colours, audiences, materials and sizes, in Chinese and English, with the group each belongs to
(``GROUP_*``, the names a "replace" compares: 红色 swaps out 黑色 because both are 颜色). These
complement the catalog's own vocabulary for catalogs whose attributes are sparse. The tables are
data; the functions tell the group of a value or an attribute name.
"""

from __future__ import annotations

import re

from assistant.facets.phrases import PhraseMatcher, normalise_text, phrase_key
from shopassist.text import CJK_CLASS, word_set

__all__ = [
    "AUDIENCE_WORDS",
    "BUILTIN_GROUPS",
    "BUILTIN_MATCHER",
    "COLOUR_WORDS",
    "GROUP_AUDIENCE",
    "GROUP_BRAND",
    "GROUP_COLOUR",
    "GROUP_MATERIAL",
    "GROUP_SIZE",
    "LEVEL_GENDER",
    "MATERIAL_WORDS",
    "SIZE_PATTERN",
    "SIZE_WORDS",
    "audience_class",
    "builtin_group",
    "canonical_group",
]

GROUP_COLOUR = "颜色"
GROUP_AUDIENCE = "适用对象"
GROUP_MATERIAL = "材质"
GROUP_SIZE = "尺码"
GROUP_BRAND = "品牌"

# Single-character colours (黑, 红) are left out on purpose: 黑头, 红米, 白酒, 绿茶 are not colours.
COLOUR_WORDS: frozenset[str] = word_set(
    """黑色 白色 红色 蓝色 绿色 黄色 紫色 粉色 灰色 棕色 橙色 咖色 咖啡色 褐色 卡其色 卡其 米色 米白 米白色
    杏色 驼色 藏青 藏青色 藏蓝 藏蓝色 深蓝 深蓝色 浅蓝 浅蓝色 天蓝色 宝蓝色 酒红 酒红色 玫红 玫红色 粉红
    粉红色 银色 金色 香槟色 裸色 军绿 军绿色 墨绿 墨绿色 奶白 奶白色 象牙白 透明 彩色 迷彩 焦糖色 深灰 浅灰
    深色 浅色 纯黑 纯白 黑白 姜黄色 牛油果绿 雾霾蓝 燕麦色 奶茶色 玫瑰金 深棕 浅棕 枣红 大红 正红 black
    white red blue green yellow purple pink grey gray brown orange beige navy khaki silver gold ivory cream
    tan maroon burgundy teal turquoise olive charcoal multicolor multicolour camel lavender"""
)

# Audience words; 女/男 alone are included because "牛仔裤女" is how Taobao shoppers write it.
AUDIENCE_WORDS: dict[str, str] = {
    **dict.fromkeys(word_set("女 女士 女款 女式 女生 女性 女人 女孩 女童 少女 孕妇 妈妈"), "f"),
    **dict.fromkeys(word_set("男 男士 男款 男式 男生 男性 男人 男孩 男童 爸爸"), "m"),
    **dict.fromkeys(word_set("儿童 童装 宝宝 婴儿 婴幼儿 孩子 小孩 学生 大童 小童 青少年"), "k"),
    **dict.fromkeys(word_set("中老年 老人 情侣 成人"), "o"),
    **dict.fromkeys(word_set("women woman womens lady ladies girl girls female"), "f"),
    **dict.fromkeys(word_set("men man mens boy boys male gentleman"), "m"),
    **dict.fromkeys(word_set("kid kids child children baby babies toddler toddlers teen teens junior"), "k"),
    **dict.fromkeys(word_set("unisex adult adults couple"), "o"),
}

# Single-character materials (棉, 麻, 竹) are left out: they sit inside too many other words.
MATERIAL_WORDS: frozenset[str] = word_set(
    """真皮 牛皮 羊皮 猪皮 皮革 羊毛 羊绒 纯棉 全棉 亚麻 棉麻 丝绸 真丝 涤纶 尼龙 聚酯纤维 莫代尔 羽绒 鹅绒
    鸭绒 牛仔布 帆布 灯芯绒 雪纺 蕾丝 针织 不锈钢 实木 玻璃 陶瓷 塑料 硅胶 合金 纯钛 铝合金 竹制 麂皮 绒面
    leather wool cashmere cotton linen silk polyester nylon denim canvas suede fleece velvet corduroy
    stainless steel wood wooden bamboo glass ceramic plastic silicone titanium aluminum aluminium metal
    rubber satin chiffon lace knit mesh"""
)

SIZE_WORDS = word_set("xs xl xxl xxxl 2xl 3xl 4xl 5xl 大码 小码 加大码 加肥 加大 petite plus-size")
SIZE_PATTERN = re.compile(r"^(?:\d{2,3}(?:码|号)|[sml]码|[sml]号|size\s*\d+|(?:\d)?x{1,3}l)$")
_COLOUR_SUFFIX = re.compile(rf"^[{CJK_CLASS}]{{1,4}}色$")
_GROUP_NAME_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"颜色|色系|colou?r", re.I), GROUP_COLOUR),
    (re.compile(r"材质|面料|材料|material|fabric", re.I), GROUP_MATERIAL),
    (re.compile(r"适用对象|性别|适用人群|gender|audience", re.I), GROUP_AUDIENCE),
    (re.compile(r"尺码|尺寸|码数|^size$", re.I), GROUP_SIZE),
)

# phrase key of every built-in word -> (mention kind, group); one matcher finds them all
BUILTIN_GROUPS: dict[tuple[str, ...], tuple[str, str]] = {}
for _w in COLOUR_WORDS:
    BUILTIN_GROUPS[phrase_key(_w)] = ("colour", GROUP_COLOUR)
for _w in MATERIAL_WORDS:
    BUILTIN_GROUPS[phrase_key(_w)] = ("material", GROUP_MATERIAL)
for _w in SIZE_WORDS:
    BUILTIN_GROUPS[phrase_key(_w)] = ("size", GROUP_SIZE)
for _w in AUDIENCE_WORDS:
    BUILTIN_GROUPS[phrase_key(_w)] = ("audience", GROUP_AUDIENCE)
BUILTIN_MATCHER = PhraseMatcher(BUILTIN_GROUPS)
_AUDIENCE_CLASS: dict[tuple[str, ...], str] = {phrase_key(w): c for w, c in AUDIENCE_WORDS.items()}
# Gendered category levels: 女装, 男鞋, 童装, "Women", "Men", "Kids".
LEVEL_GENDER = (
    (re.compile(r"女|^women$|^woman$|^lady$|^girl$"), "f"),
    (re.compile(r"男|^men$|^man$|^boy$"), "m"),
    (re.compile(r"童|婴|^kid$|^child|^baby$"), "k"),
)


def canonical_group(attribute_name: str) -> str:
    """Attribute names that mean the same constraint share one group (颜色分类, color -> 颜色),
    so a "replace" can tell that 红色 swaps out 黑色 whatever the catalog called the field."""
    for pattern, group in _GROUP_NAME_RULES:
        if pattern.search(attribute_name):
            return group
    return attribute_name


def builtin_group(value: str) -> str | None:
    """The built-in group of a value (colours, audience, materials, sizes), or None."""
    key = phrase_key(value)
    hit = BUILTIN_GROUPS.get(key)
    if hit:
        return hit[1]
    norm = normalise_text(value).strip()
    if SIZE_PATTERN.match(norm):
        return GROUP_SIZE
    if _COLOUR_SUFFIX.match(norm) and norm not in ("特色", "出色", "本色", "角色", "好色", "特别色"):
        return GROUP_COLOUR
    return None


def audience_class(value: str) -> str | None:
    """'f', 'm', 'k' (children) or 'o' for an audience word, else None."""
    return _AUDIENCE_CLASS.get(phrase_key(value))

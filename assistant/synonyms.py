"""Bilingual equivalents of common facet words, so a constraint said in one language holds on
a catalog written in the other ("不要brown的" on a Chinese catalog excludes 棕色; "waterproof的登山鞋"
requires 防水). General shop vocabulary only: colours, materials, properties, audiences.
"""

from __future__ import annotations

_GROUPS: list[tuple[str, ...]] = [
    # colours
    ("黑色", "black"),
    ("白色", "white"),
    ("红色", "red"),
    ("蓝色", "blue"),
    ("绿色", "green"),
    ("黄色", "yellow"),
    ("紫色", "purple"),
    ("粉色", "粉红色", "pink"),
    ("灰色", "grey", "gray"),
    ("棕色", "咖啡色", "褐色", "brown"),
    ("卡其色", "khaki"),
    ("米色", "米白色", "beige"),
    ("藏青色", "藏青", "navy"),
    ("橙色", "orange"),
    ("银色", "silver"),
    ("金色", "gold"),
    # materials
    ("真皮", "皮革", "牛皮", "leather"),
    ("纯棉", "棉", "cotton"),
    ("羊毛", "wool"),
    ("真丝", "丝绸", "silk"),
    ("羊绒", "cashmere"),
    ("涤纶", "polyester"),
    ("不锈钢", "stainless steel", "stainless"),
    ("亚麻", "linen"),
    ("羽绒", "down"),
    ("麂皮", "suede"),
    ("竹", "bamboo"),
    ("玻璃", "glass"),
    ("陶瓷", "ceramic"),
    # properties
    ("防水", "waterproof"),
    ("保暖", "warm", "insulated"),
    ("轻便", "轻量", "lightweight"),
    ("透气", "breathable"),
    ("无线", "wireless"),
    ("降噪", "noise cancelling", "noise-cancelling"),
    ("防滑", "non-slip"),
    ("不粘", "non-stick", "nonstick"),
    ("有机", "organic"),
    ("便携", "portable"),
    ("手写笔", "触控笔", "stylus", "s pen", "apple pencil"),
    # skin types and finishes (a skin type is served by what its products promise)
    ("干皮", "干性", "保湿", "补水", "滋润", "dry skin"),
    ("油皮", "油性", "控油", "oily skin"),
    ("敏感肌", "敏感", "sensitive skin"),
    ("哑光", "雾面", "雾感", "matte"),
    ("套装", "套盒", "件套", "套组", "set"),
    ("香水", "淡香水", "perfume", "fragrance", "cologne"),
    # audiences (the short forms titles and category paths use)
    ("女", "women", "woman", "ladies"),
    ("男", "men", "man"),
    ("童", "儿童", "kids", "children"),
]

_INDEX: dict[str, tuple[str, ...]] = {}
for _group in _GROUPS:
    for _word in _group:
        _INDEX.setdefault(_word.casefold(), _group)


def alternatives(term: str) -> list[str]:
    """The term and its equivalents (the term first); just the term when none are known."""
    group = _INDEX.get(term.strip().casefold())
    if not group:
        return [term]
    return [term, *(w for w in group if w.casefold() != term.strip().casefold())]


def vocabulary() -> list[str]:
    """Every word of the table: facet words a product's copy may only claim if its record has them."""
    return [w for group in _GROUPS for w in group if len(w) >= 2]

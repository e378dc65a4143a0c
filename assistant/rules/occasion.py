"""Who a purchase is for and what they like: "给我妈买个生日礼物", "gift for my dad, he likes
watches", "他平时爱喝咖啡", "she's into makeup".

The recipient and the occasion are context, never a filter: no product says "for my mom". They
are taken out of the search text into ``Need.occasion`` (kept across follow-ups, used to pick gift
ideas and to word the reply). An interest ("he likes watches", "她喜欢香水") names what to
search: its frame ("he likes", "她平时喜欢") is talk and leaves the text, the interest stays, and
hobbies that are no product ("cooking", "喝茶") become the product types that serve them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.rules.message import MessageState
from assistant.rules.patterns import BLANK

RECIPIENTS_ZH = (
    "妈妈|老妈|我妈|母亲|婆婆|岳母|丈母娘|爸爸|老爸|我爸|父亲|公公|岳父|老丈人|老公|老婆|媳妇|男朋友|女朋友|男友|女友|"
    "对象|闺蜜|姐妹|兄弟|哥们|朋友|同事|同学|老师|领导|上司|客户|长辈|老人|爷爷|奶奶|外婆|外公|姥姥|姥爷|儿子|女儿|"
    "孩子|小孩|宝宝|小朋友|男孩|女孩|女生|男生|姐姐|妹妹|哥哥|弟弟|妈|爸"
)
_AGE_ZH = r"(?:\d{1,2}|[一二三四五六七八九十]{1,3})(?:岁|个月)(?:的)?"
OCCASIONS_ZH = "生日|过生日|教师节|母亲节|父亲节|情人节|七夕|圣诞节?|新年|春节|中秋|结婚|婚礼|周年|纪念日|乔迁|满月|毕业|开学|送礼|伴手礼"
GIFT_ZH = re.compile(r"(?:生日|节日)?(?:礼物|礼品|小礼物)")
# 给我妈买 / 送男朋友的 / 想送老师个 / 给6岁儿子买个 / 送给闺蜜
RECIPIENT_ZH = re.compile(
    rf"(?:想|要|打算)?(?:买来)?(?:给|送给|送|帮)(?:我|我的|我家)?(?P<who>(?:{_AGE_ZH})?(?:{RECIPIENTS_ZH}))"
    r"(?:的)?(?:买(?:个|一个|一份|点|些|支|件|套|双|束)?|送(?:个|一个|一份|支|件|套|双|束)?|挑(?:个|一个)?|选(?:个|一个)?|个|一个|一份|一支|支)?"
)
# 闺蜜过生日 / 老师过教师节: a recipient named with the occasion, before it
RECIPIENT_OCCASION_ZH = re.compile(rf"(?P<who>{RECIPIENTS_ZH})(?:要)?(?:过)?(?P<what>{OCCASIONS_ZH})")
OCCASION_ZH = re.compile(rf"(?P<what>{OCCASIONS_ZH})(?:想|要)?(?:送|买)?(?:个|一个|一份|点)?")
# 想送支口红 / 送一束花: the gift frame around a named product
GIFT_FRAME_ZH = re.compile(r"(?:想|要|打算)送(?:给)?(?:一|两)?(?:个|支|件|瓶|束|份|套|双|条|盒|枝)?")
# 他平时爱喝咖啡 / 她喜欢护肤 / 老师平时喜欢喝茶 / 他喜欢积木
INTEREST_ZH = re.compile(
    rf"(?:他|她|TA|ta|{RECIPIENTS_ZH})?(?:平时|平常|一直|特别|很|比较|最|超|也)*(?:喜欢|爱|热爱|迷上了|迷|在玩|爱玩|常玩)"
    r"(?P<verb>喝|吃|玩|用|看|穿|戴|听|做|搞)?"
)
# 她皮肤比较干 / 油皮 / 敏感肌: a skin type, the must-have skincare is chosen by
_DEGREE = rf"[{BLANK}\s]*(?:比较|很|有点|偏|特别|超|太)?[{BLANK}\s]*"
SKIN_ZH = (
    (re.compile(rf"(?:皮肤|肤质|脸){_DEGREE}干|干皮|干性皮肤"), "干皮"),
    (re.compile(rf"(?:皮肤|肤质|脸){_DEGREE}油|油皮|油性皮肤"), "油皮"),
    (re.compile(rf"(?:皮肤|肤质){_DEGREE}敏感|敏感肌"), "敏感肌"),
)

RECIPIENTS_EN = (
    r"mom|mum|mother|mommy|dad|father|daddy|wife|husband|girlfriend|boyfriend|partner|fiancee?|son|daughter|"
    r"(?:(?<=my )|(?<=our ))(?:kids?|child|children|baby)|brother|sister|friend|best friend|bestie|boss|coworker|colleague|teacher|"
    r"grandma|grandmother|grandpa|grandfather|grandparents|parents|nephew|niece|aunt|uncle|him|her|them"
)
_AGE_EN = r"(?:(?:teenage|teen|little|baby|older|younger|elderly|new|\d{1,2}[- ]?(?:year|yr)s?[- ]?old)\s+)?"
RECIPIENT_EN = re.compile(
    rf"\b(?:a |some )?(?:(?:birthday|christmas|anniversary|wedding|housewarming|graduation)\s+)?"
    rf"(?:gift|present|something)?\s*\bfor\s+(?:my|our|a|the|his|her)?\s*(?P<who>{_AGE_EN}(?:{RECIPIENTS_EN}))\b"
    r"(?:'s\s+(?:birthday|anniversary|wedding))?",
    re.IGNORECASE,
)
OCCASION_EN = re.compile(
    r"\bfor\s+(?:a|an|the|my|our|his|her)?\s*(?P<what>(?:summer |winter |beach |outdoor |church |office )?"
    r"(?:wedding|party|birthday|anniversary|christmas|graduation|housewarming|baby shower|date night|date|"
    r"living room|bedroom|kitchen|bathroom|office|home office|trip|holiday|vacation|camping trip|funeral|interview))\b",
    re.IGNORECASE,
)
GIFT_EN = re.compile(r"\b(?:birthday |christmas |anniversary |wedding )?(?:gifts?|presents?)\b(?:\s+ideas?)?", re.I)
INTEREST_EN = re.compile(
    r"\b(?:he|she|they|he's|she's|they're|who|my (?P<who>\w+))\s*(?:is|are|'s|'re)?\s*(?:really|very|super|totally|big|huge|"
    r"also|just)?\s*(?:into|loves?|likes?|enjoys?|adores?|plays?|collects?|(?:is|'s) a (?:big |huge )?fan of|fan of|"
    r"is crazy about|crazy about|obsessed with)\b",
    re.IGNORECASE,
)
SKIN_EN = (
    (re.compile(r"\bdry skin\b", re.I), "dry skin"),
    (re.compile(r"\boily skin\b", re.I), "oily skin"),
    (re.compile(r"\bsensitive skin\b", re.I), "sensitive skin"),
)

# hobbies that are no product: what a shop sells for them (general shop knowledge, both languages)
HOBBY_PRODUCTS: dict[str, str] = {
    "cooking": "kitchen",
    "baking": "kitchen",
    "cook": "kitchen",
    "makeup": "beauty",
    "make-up": "beauty",
    "sport": "sports",
    "sports": "sports",
    "fitness": "sports",
    "working out": "sports",
    "gym": "sports",
    "music": "headphones",
    "reading": "books",
    "gaming": "games",
    "gardening": "plant",
    "travel": "luggage",
    "traveling": "luggage",
    "travelling": "luggage",
    "护肤": "护肤品",
    "化妆": "彩妆",
    "喝茶": "茶叶",
    "品茶": "茶叶",
    "喝咖啡": "咖啡",
    "做饭": "厨具",
    "烹饪": "厨具",
    "下厨": "厨具",
    "运动": "运动",
    "健身": "健身",
    "跑步": "跑步鞋",
    "钓鱼": "渔具",
    "读书": "书",
    "看书": "书",
    "听歌": "耳机",
    "听音乐": "耳机",
    "打游戏": "游戏",
    "拍照": "相机",
    "旅行": "旅行箱",
    "旅游": "旅行箱",
}


@dataclass
class Occasion:
    """What a message says about who the purchase is for."""

    who: str = ""  # the recipient, in the shopper's words (妈妈, dad)
    what: str = ""  # the occasion (生日, wedding, living room)
    gift: bool = False  # the message asks for a gift
    interest: bool = False  # the message states what the recipient likes
    skin: list[str] = field(default_factory=list)

    def text(self) -> str:
        parts = [self.who, self.what]
        if self.gift and not any(w in " ".join(parts) for w in ("礼", "gift", "present")):
            parts.append("礼物" if any("\u4e00" <= c <= "\u9fff" for c in "".join(parts)) or not parts else "gift")
        return " ".join(p for p in parts if p)


def read_occasion(st: MessageState) -> Occasion:
    """Take recipient, occasion, gift and interest frames out of the message (blanked), return them."""
    occ = Occasion()
    text = st.text()
    for pattern in (RECIPIENT_OCCASION_ZH, RECIPIENT_ZH, RECIPIENT_EN):
        for m in pattern.finditer(text):
            if not occ.who or occ.who.casefold() in _PRONOUNS:  # "my mom ... a gift for her": mom
                occ.who = m.group("who").strip()
            if re.search(r"gift|present", m.group(0), re.IGNORECASE):
                occ.gift = True
            if "what" in pattern.groupindex and m.group("what") and not occ.what:
                occ.what = m.group("what")
            st.blank(m.start(), m.end())
        text = st.text()
    for pattern in (OCCASION_ZH, OCCASION_EN):
        for m in pattern.finditer(text):
            occ.what = occ.what or m.group("what").strip()
            st.blank(m.start(), m.end())
        text = st.text()
    for pattern in (GIFT_ZH, GIFT_EN, GIFT_FRAME_ZH):
        for m in pattern.finditer(text):
            occ.gift = True
            st.blank(m.start(), m.end())
        text = st.text()
    for m in INTEREST_ZH.finditer(text):
        if m.group(0) in ("爱", "迷"):  # too short alone: 可爱, 迷你
            continue
        occ.interest = True
        st.blank(m.start(), m.end() - (len(m.group("verb")) if m.group("verb") in ("喝",) else 0))
    for m in INTEREST_EN.finditer(st.text()):
        occ.interest = True
        who = m.group("who")
        if who and re.fullmatch(RECIPIENTS_EN, who, re.IGNORECASE) and (not occ.who or occ.who.casefold() in _PRONOUNS):
            occ.who = who
        st.blank(m.start(), m.end())
    text = st.text()
    for pattern, word in (*SKIN_ZH, *SKIN_EN):
        for m in pattern.finditer(text):
            if word not in occ.skin:
                occ.skin.append(word)
            st.blank(m.start(), m.end())
        text = st.text()
    return occ


_PRONOUNS = frozenset({"him", "her", "them"})
_HOBBY = re.compile("|".join(sorted((re.escape(k) for k in HOBBY_PRODUCTS), key=len, reverse=True)), re.IGNORECASE)


def hobby_products(text: str) -> str:
    """ "my mom loves cooking" -> "kitchen": hobbies replaced by what a shop sells for them."""
    return _HOBBY.sub(lambda m: HOBBY_PRODUCTS[m.group(0).casefold()], text)

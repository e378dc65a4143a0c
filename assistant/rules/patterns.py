"""The rule parser's pattern tables: every regex and word list it reads a message with, compiled
once at import. Data only; how they are applied is in ``assistant.rules.parser`` and
``assistant.rules.negations``.

All patterns run on the NFKC, case-folded message in which spans already used are replaced by
``BLANK``.
"""

from __future__ import annotations

import re

from shopassist.models import Sort
from shopassist.text import word_set

BLANK = "\x00"  # what a used span is replaced with: a token no pattern or vocabulary matches

_ZH_NUM = "[零〇一二两三四五六七八九十百千万]+"
# A number: digits (1.5, 2k, 3千, 2万) or Chinese numerals (两百, 三百五). ``(?![\d.])`` stops the
# engine from backtracking into the digits ("100ml" must not become "10" + "0ml").
_NUM = rf"(?:\d+(?:\.\d+)?(?!\d|\.\d)(?:\s*(?:k|千|万)(?![a-z]))?|{_ZH_NUM})"

_CUR_PRE = r"(?:us\$|[¥$€£]|rmb|usd|cny)"
_CUR_POST = r"(?:块钱|块|元|rmb|人民币|美元|美金|刀(?![头片架具网锋口])|dollars?|bucks?|usd|cny|euros?|eur|gbp)"
_UNITS_EN = (
    r"kg|g|cm|mm|m|ml|l|w|v|mah|gb|tb|inch|inches|in|lbs?|pounds?|oz|ft|feet|foot|hours?|days?|years?|"
    r"months?|weeks?|people|pcs|pieces?|items?|mins?|minutes?|percent|stars?|pack|packs|ones?"
)
_UNITS_ZH = (
    r"个|件|条|双|只|天|年|月|周|岁|小时|分钟|斤|公斤|克|千克|米|厘米|毫米|码|号|寸|英寸|毫升|升|瓦|伏|度|人|层|张|本|瓶|"
    r"包|盒|片|支|粒|袋|次|倍|寸|星|款|套|台|部|位"
)
# what may not follow a price number: a unit turns "3天以内" or "under 5 kg" into something else
_NOT_UNIT = rf"(?!\s*(?:{_UNITS_EN})\b)(?!\s*(?:{_UNITS_ZH}))(?![a-z0-9%])"
_AMOUNT = rf"(?:{_CUR_PRE}\s*)?(?P<{{n}}>{_NUM})\s*(?:{_CUR_POST})?"


def _amount(name: str) -> str:
    return _AMOUNT.replace("{n}", name)


PRICE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "range",
        re.compile(
            rf"(?:between|从|在|介于)\s*{_amount('a')}\s*(?:and|到|至|和|-|–|~)\s*{_amount('b')}{_NOT_UNIT}"
            r"\s*(?:之间|以内|范围)?"
        ),
    ),
    (
        "range",
        re.compile(
            rf"(?<![a-z\d.])(?:from\s+)?{_amount('a')}\s*(?:-|–|~|to|到|至)\s*{_amount('b')}{_NOT_UNIT}"
            r"\s*(?:之间|以内|范围)?"
        ),
    ),
    (
        "approx",
        re.compile(
            rf"(?:(?:大概|大约|差不多|预算|价格|价位|价钱)\s*(?:是|在|为)?\s*)?{_amount('a')}{_NOT_UNIT}\s*(?:左右|上下|ish)"
        ),
    ),
    (
        "max",
        re.compile(
            r"(?:under|below|less than|lower than|cheaper than|no more than|not more than|not over|not above|"
            r"at most|up to|max(?:imum)?(?: of)?|within|budget(?: is| of)?|<=?|≤|不超过|不高于|不大于|不多于|"
            r"(?<!不)低于|少于|小于|不到|最多|最高|顶多|控制在|预算(?:是|在|为|只有|有)?|价格在|价位在|价钱在)"
            rf"\s*{_amount('a')}{_NOT_UNIT}\s*(?:以内|以下|之内|内)?"
        ),
    ),
    (
        "min",
        re.compile(
            r"(?:over|above|more than|greater than|higher than|at least|min(?:imum)?(?: of)?|starting at|from|"
            r">=?|≥|(?<!不)超过|(?<!不)高于|(?<!不)大于|(?<!不)多于|至少|最低|起码|不低于|不少于|不小于)"
            rf"\s*{_amount('a')}{_NOT_UNIT}\s*(?:以上)?"
        ),
    ),
    (
        "approx",
        re.compile(
            rf"(?:around|about|approximately|approx\.?|roughly|circa|near|~|大概|大约|差不多)\s*{_amount('a')}{_NOT_UNIT}"
        ),
    ),
    (
        "max",
        re.compile(
            rf"(?<![a-z\d.]){_amount('a')}{_NOT_UNIT}\s*"
            r"(?:以内|以下|之内|封顶|or less|or under|or below|and under|and below|max|tops)"
        ),
    ),
    (
        "min",
        re.compile(
            rf"(?<![a-z\d.]){_amount('a')}{_NOT_UNIT}\s*(?:以上|起步|起|往上|\+|or more|and up|and above|or above|plus)"
        ),
    ),
    # a bare amount with a currency reads as a budget: "200块的耳机", "$50 headphones"
    ("max", re.compile(rf"(?<![a-z\d.]){_CUR_PRE}\s*(?P<a>{_NUM}){_NOT_UNIT}")),
    ("max", re.compile(rf"(?<![a-z\d.])(?P<a>{_NUM})\s*{_CUR_POST}(?![a-z])")),
)
CURRENCIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"us\$|\$|usd|dollar|buck|美元|美金|刀(?![头片架具网锋口])"), "USD"),
    (re.compile(r"¥|元|块|rmb|cny|人民币"), "CNY"),
    (re.compile(r"€|eur"), "EUR"),
    (re.compile(r"£|gbp"), "GBP"),
)
# "any brand" drops the brand constraint; "another brand" avoids the brands shown so far
BRAND_FREE = re.compile(
    r"不限品牌|品牌不限|品牌无所谓|什么(?:牌子|品牌)都(?:行|可以)|哪个(?:牌子|品牌)都(?:行|可以)|any brand|"
    r"brand (?:does(?: not|n't|nt)|do(?: not|n't|nt)) matter|whatever brand"
)
OTHER_BRAND = re.compile(
    r"换个(?:牌子|品牌)|换(?:一个|一)?(?:别的|其他)?(?:牌子|品牌)|(?:别的|其他)(?:牌子|品牌)|another brand|other brands?|different brand"
)
# "预算放宽到2000" / "budget up to 150": a new ceiling said without 以内/under
BUDGET_TO = re.compile(
    rf"(?:预算|budget)\s*(?:放宽|提高|增加|调整|调高|加|改|放|升)?\s*(?:到|至|为|是|成|of|is|to|up to|now)?\s*{_amount('n')}"
    r"(?!\s*(?:左右|上下|以上|以内|以下|之内|起|多|-|~|到|至|around|or so|ish|and|to\b))"
)
# "with noise cancelling", "要防水的": a follow-up that only adds a property
NON_PREFIX = re.compile(r"\bnon-\s*(?=[a-z])")
ADDON = re.compile(r"^\s*(?:and\s+)?(?:with|in|only|just|also|made of|要|带|只要|最好是?)(?:\b|(?=[\u4e00-\u9fff]))")
# "budget doesn't matter": recognised so it is not read as a negation or a product word
BUDGET_FREE = re.compile(
    r"(?:budget|price|cost)\s*(?:does(?: not|n't|nt)|do(?: not|n't|nt))\s*matter|(?:any|whatever)\s*(?:price|budget)|"
    r"no budget|money is no object|价格无所谓|价钱无所谓|预算无所谓|价格不限|预算不限|不限价格|不限预算|多少钱都行|钱不是问题|不差钱"
)

SORT_PATTERNS: tuple[tuple[Sort, re.Pattern[str]], ...] = (
    (
        Sort.price_asc,
        re.compile(
            r"最便宜|价格最低|最低价|价格从低到高|从低到高|由低到高|低到高|价格升序|按价格排序|cheapest|lowest[- ]price[d]?|"
            r"least expensive|price:? low to high|low to high|sort(?:ed)? by price|price ascending"
        ),
    ),
    (
        Sort.price_desc,
        re.compile(
            r"最贵|价格最高|最高价|价格从高到低|从高到低|由高到低|高到低|价格降序|most expensive|highest[- ]price[d]?|"
            r"priciest|price:? high to low|high to low|price descending"
        ),
    ),
    (
        Sort.rating,
        re.compile(
            r"好评|评分高|评分最高|评价最好|评价好|评价高|口碑好|口碑最好|高分|best[- ]rated|highest[- ]rated|top[- ]rated|"
            r"best[- ]reviewed|best reviews|highest rating|well[- ]reviewed"
        ),
    ),
    (
        Sort.sales,
        re.compile(
            r"销量|最畅销|畅销|卖得最好|卖得好|最火|最热门|热销|最受欢迎|best[- ]?sell(?:ing|ers?)|most popular|top[- ]selling|popular"
        ),
    ),
)
CHEAPER = re.compile(
    r"(?:再|更)?便宜(?:一)?(?:点|些)|(?:再|更)便宜|便宜的|便宜|实惠|性价比|划算|平价|不贵|不太贵|别太贵|不要太贵|太贵了|低价|"
    r"价格低一?点?|价格低|cheaper|less expensive|more affordable|affordable|inexpensive|lower[- ]price[d]?|"
    r"too expensive|too pricey|not too expensive|not expensive|budget[- ]friendly|on a budget|low[- ]cost|cheap"
)
PRICIER = re.compile(
    r"贵一?点|贵一?些|更贵|(?:质量|品质|档次)?好一?点的?|(?:质量|品质)?好一?些的?|更好的?|高端|高档|档次高一?点?|品质好|"
    r"太便宜了|不要太便宜|别太便宜|more premium|premium|higher[- ]end|high[- ]end|better quality|higher quality|"
    r"more expensive|pricier|fancier|upscale|luxury|luxurious|too cheap|not too cheap"
)

# -- references to shown products ----------------------------------------------------------------
COMPARE = re.compile(
    r"比较(?![干油敏大小贵便宜好厚薄软硬长短高低多少轻重暖冷适合喜欢爱])|对比|比一比|比一下|比比|哪个好|哪个更好|哪款好|哪款更好|哪个更|哪款更|区别|差别|有什么不同|\bvs\.?|\bpk\b|"
    r"\bcompare\b|\bcomparison\b|\bversus\b|which (?:one )?is (?:better|cheaper|best)|which (?:one )?should i|"
    r"difference between|differences|better,"
)
# 第N needs a measure word or the end of a phrase after it: 第二个 / 第二和第三 yes, 第9代 (a model) no
ZH_ORDINAL = re.compile(
    r"(?P<back>倒数)?第\s*(?P<n>\d{1,2}|[一二两三四五六七八九十]{1,3})\s*"
    r"(?:(?:个|款|件|条|种|双|台|部|只|本|瓶|套|项|家|位|张|支|把)|"
    r"(?=$|[\s和跟与及、,，。?？!！呢吗吧]|详细|怎么|如何|介绍|说说|讲讲|哪|比|对比|好|不错))"
)
ZH_FIRST_N = re.compile(r"前\s*(?P<n>[两二三四五六\d])\s*(?:个|款|件|条|种|双|台|部|只|套)")
ZH_LAST = re.compile(r"最后(?:一|那|这)?\s*(?:个|款|件|条|种|双|台|部|只|套|项)")
EN_ORDINAL = re.compile(
    r"\b(?P<the>the\s+|and\s+(?:the\s+)?|vs\.?\s+(?:the\s+)?)?(?P<n>first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|"
    r"tenth|1st|2nd|3rd|[4-9]th|10th)\b(?P<noun>\s+(?:one|item|product|option|result|choice|pick|listed))?"
)
EN_FIRST_N = re.compile(r"\b(?:the\s+)?first\s+(?P<n>two|three|four|2|3|4)\b(?:\s+(?:ones|items|products|options))?")
EN_LAST = re.compile(r"\b(?:the\s+)?last\s+(?:one|item|product|option)\b|\bthe\s+last\b")
NUMBERED = re.compile(r"(?:#\s*|\b(?:number|no\.|item|option|product|result|choice)\s*#?\s*)(?P<n>\d{1,2})\b")
# bare digits count as references only in a comparison: "compare 1 and 3", "1 vs 3", "1和3哪个好"
BARE_REF = re.compile(r"(?<![\d.$¥€£a-z])(?P<n>\d{1,2})(?![\d.%a-z])(?!\s*(?:元|块|刀|号码|岁|天))")
BARE_RANGE = re.compile(r"(?<![\d.$¥a-z])(?P<a>\d{1,2})\s*(?:-|~|到|至|to)\s*(?P<b>\d{1,2})(?![\d.%a-z])")
PICK_DETAIL = re.compile(
    r"详细说说|详细介绍|详细讲讲|详细|介绍一下|介绍|说说|讲讲|具体说说|具体|怎么样|如何|参数|细节|规格|就要|买这个|要这个|加入购物车|"
    r"tell me more(?: about)?|more about|more info(?:rmation)?|more details?|details?|specs?|how is|"
    r"i'?ll take|i will take|add (?:it )?to (?:my )?cart"
)
DEICTIC = re.compile(
    r"这个|那个|这款|那款|这件|那件|这双|那双|这条|那条|它|该款|\bthis one\b|\bthat one\b|\bit\b|\bthis\b|\bthat\b"
)
# what a pick/compare message says besides its references: not a search query
REFERENCE_TALK = re.compile(
    f"{PICK_DETAIL.pattern}|{DEICTIC.pattern}|"
    r"和|跟|与|\band\b|\bor\b|\bvs\b|\bversus\b|\bwith\b|哪个|哪款|\bwhich\b|\bbetter\b|更好|好"
)

# -- relation triggers ----------------------------------------------------------------------------
REPLACE = re.compile(
    r"换成|换为|改成|改为|换一?(?:个|款|件|双|种|条)|换回|变成|要换|\binstead\b|\bswitch (?:it |that )?to\b|"
    r"\bchange (?:it |that |the \w+ )?to\b|\bswap (?:it |that )?(?:for|to)\b|\breplace (?:it |that )?with\b|\bmake it\b|\bsame (?:thing|one|ones|kind)? ?(?:but )?(?:for|in)\b|同样的?给|一样的?给"
)
SOFT_REPLACE = re.compile(r"\bhow about\b|\bwhat about\b|那.{0,4}?的呢")

# -- negations ------------------------------------------------------------------------------------
NEG_ZH = re.compile(
    r"不想要|不喜欢|不需要|不能有|不能是|不可以有|不要有|(?<!要)不要|不含|不带|不用|别给我推荐|别推荐|别给我|别要|别买|别选|"
    r"(?<![区特级性类识个分告派差])别(?![的人墅针处致扭具称名])|除了|而不是|(?<![是])非(?![常得凡洲法要但])|讨厌"
)
NEG_ZH_HAVE = re.compile(rf"(?<![有还])没有(?P<x>[^{BLANK}\s,，。.!！?？;；]{{1,8}}?)的")
NEG_EN = re.compile(
    r"\b(?:anything but|everything but|except for|except|excluding|exclude|other than|instead of|rather than|"
    r"do not want|don't want|dont want|do not like|don't like|dont like|without|avoid|not|no|never)\b"
)
ZH_X = re.compile(rf"(?:(?!{BLANK})[^\s,，。.!！?？;；:：~])+")
ZH_X_STOP = re.compile(
    r"但是|但|而且|并且|还要|还有|还|都|以外|之外|其他|其它|别的|只要|最好|可以|就行|就好|也行|也|吗|呢|吧|想要|要|价格|预算|而是"
)
EN_X = re.compile(rf"[^{BLANK},.;!?]+")
EN_X_STOP = re.compile(
    r"\b(?:but|and|under|below|over|above|with|in|for|that|which|please|thanks|thank|only|instead|because|so|if|to|"
    r"from|at|between|less|more|than|i|we|you|it|is|are|just|though|cheaper|pricier|too expensive)\b"
)
SPLIT_ZH = re.compile(r"和|或者|或是|或|、|跟|及|与|/|也不要|还有")
SPLIT_EN = re.compile(r"\bor\b|\bnor\b|/|&")
STRIP_ZH = re.compile(r"^(?:太|那么|这么|这种|那种|任何|有|带|含|是|要)+|(?:的|那种|这种|之类的?|系列|一类)+$")
STRIP_EN = re.compile(
    r"^(?:(?:a|an|the|any|anything|too|so|very|more|in|made of|with)\s+)+|"
    r"(?:\s+(?:ones?|stuff|items?|products?|please|colou?r(?:ed)?|brand|thanks|at all|either|too|as well|anymore))+$"
)
NEG_PRICE_CHEAPER = re.compile(r"^(?:太|很|那么)?贵$|^(?:too |very |so )?(?:expensive|pricey|costly)$")
NEG_PRICE_PRICIER = re.compile(r"^(?:太|很)?便宜$|^(?:too |very |so )?cheap$")
EN_JUNK = word_set(
    "sure really necessarily bad idea worry problem thanks thank sorry matter okay ok one ones that this it them "
    "much many lot quite yet sure what"
)

# -- query clean-up -------------------------------------------------------------------------------
FILLER_ZH = re.compile(
    r"我想要|我想买|我想找|我要买|我要找|我需要|我想|我要|想要|想买|想找|需要|帮我找找|帮我找一下|帮我找|帮我推荐|帮我看看|帮我|"
    r"给我找|给我推荐|给我看看|给我来|给我|有没有|有木有|有什么|有哪些|推荐一下|推荐几款|推荐个|推荐|一下|请问|请|麻烦|"
    r"看看|看一下|找一下|找找|来一个|来个|来点|谢谢|你好|您好|那种|这种|之类的?|类似的?|的话|可以|一款|一个|一件|一条|一双|一点|一点儿|"
    r"一些|几款|哪些|什么|怎么样|如何|适合|我的|我们|我|他|她|算了|那就|那再|那么|那|再|挑一个|挑个|挑一下|挑|选一个|选个|个|支|送给|购买|买|吗|呢|吧|啊|呀|哦|嘛|哈|呗|只要|就行|就好|也行|还有|别的|其他的?|其它的?|的"
)
FILLER_EN = re.compile(
    r"\b(?:please|pls|plz|show me|i'?d like|i would like|i'?m looking for|i am looking for|looking for|look for|"
    r"find me|can you|could you|would you|recommend|suggest|get me|give me|do you have|have you got|are there|"
    r"is there|i want|i need|i'm|im|want|need|show|find|some|any|something|anything|a|an|the|for me|ones|one|"
    r"options?|thanks|thank you|hi|hello|hey|buy|purchase|like|only|just|also|maybe|really|good|nice|"
    r"that are|that is|which are|got|me|my|i|for|of|with|in|and|or|to|on|it|this|that|these|those|them|"
    r"no|yes|yeah|ok|okay|hmm|well|cool|great|awesome|alright|whatever|actually|anyway|then|too|as well|"
    r"at least|instead|i'?ll|let'?s|do you sell|you sell|do you carry|you have|you've got|you got|stuff|things|"
    r"everything|anything|tho|though|even|(?:a )?bit out of (?:my |the )?budget|out of (?:my |the )?budget|"
    r"over (?:my |the )?budget|what'?s|what is|which|what)\b"
)
PUNCT = re.compile(
    rf"[{BLANK}\s,，。.!！?？;；:：、~\"“”()（）\[\]【】<>《》|/\\+*=#@&^`-]+|(?<![a-z])['‘’]|['‘’](?![a-z])"
)
EN_COMPARATIVES = word_set(
    "bigger smaller larger longer shorter lighter heavier warmer cooler thinner thicker softer harder newer older "
    "better wider narrower taller brighter darker higher lower faster quieter louder more less other another "
    "different same similar else"
)
EN_ANAPHORA = word_set("ones one them those these it that same")

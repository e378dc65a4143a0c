"""What a message *is*, before anything is searched: the dialogue act.

The rule parser reads a message as a need (what to search) and its relation to the conversation
(new / refine / replace / compare / pick). Shoppers also ask about a product on screen ("这个适合
油皮吗？", "is the second one waterproof?"), want more of the same ("还有别的吗", "show me more"),
chat or try to steer the assistant ("今天天气怎么样", "忘掉之前的规则…"), or ask for something a
shop assistant cannot do (an order's status, a refund). Only needs and edits may touch the
search constraints: ``read_act`` decides, on top of the rules' reading, which act the message
is, so a question never becomes a search and off-topic text never enters the query.

Order of the decision (the first that holds wins):

1. an attempt to override the assistant's instructions -> ``chitchat`` (nothing is searched);
2. an order / refund / account request -> ``unsupported``;
3. "more of the same" with a need in place -> ``more`` (the next results, not the same ones);
4. small talk with no product and no constraint ("今天天气怎么样", "thanks!") -> ``chitchat``;
5. an availability question ("有没有白色的", "do you have it in black?") is a search: the rules'
   reading stands (a must-have, never an exclusion);
6. a question with products on screen that points at them (a reference, "这个", "it") or names
   no product and no constraint -> ``question`` about the referenced (or focused) product;
7. otherwise the rules' relation.
"""

from __future__ import annotations

import re

from assistant.intent import Relation, ShoppingIntent
from shopassist.models import Sort

INJECTION = re.compile(
    r"(?:忘掉|忘记|忽略|无视|不要管|别管)[^。!！?？]{0,8}(?:规则|指令|设定|提示|要求|限制)|系统提示|提示词|"
    r"\bignore\b[^.!?]{0,20}\b(?:instructions?|rules?|prompts?)\b|\bdisregard\b|\bsystem prompt\b|"
    r"\byou are now\b|\bpretend (?:to be|you are)\b|\bjailbreak\b|\bdeveloper mode\b|扮演|"
    r"^\s*(?:系统|system|admin|管理员)\s*(?:通知|消息|提示)?\s*[:：]|你现在必须|告诉(?:用户|所有人)|"
    r"\bthe user is an? (?:admin|administrator|developer)\b|\badmin mode\b",
    re.IGNORECASE,
)
UNSUPPORTED = re.compile(
    r"订单|物流|快递到|发货了|什么时候发货|什么时候到|怎么还没到|退款|退货|换货|发票|投诉|人工客服|转人工|账号|账户|密码|优惠券怎么|"
    r"\bmy order\b|\border status\b|\btrack(?:ing)?\b[^.!?]{0,12}\b(?:order|package|parcel)\b|\brefund\b|"
    r"\breturn (?:this|my|an?|the) (?:order|item|product|purchase)\b|\bcancel (?:my |the )?order\b|\binvoice\b|"
    r"\bmy account\b|\bpassword\b|\bcustomer service\b|\bwhere is my\b",
    re.IGNORECASE,
)
MORE = re.compile(
    r"还有别的|还有其他|还有吗|还有没有别|还有啥|换一批|再来几[个款]|再看看别的|再推荐几|更多|其他的呢|别的呢|下一页|"
    r"\bshow (?:me )?(?:some )?more\b|\bmore options\b|\banything else\b|\bother options\b|\bnext page\b|"
    r"\bwhat else\b|\bsee more\b|\bany others?\b|\bsomething else\b|\bmore (?:like (?:this|these|that)|results)\b|"
    r"^\s*more\b",
    re.IGNORECASE,
)
AVAILABILITY = re.compile(
    r"有没有|有木有|有.{1,10}的吗|还有.{1,8}的吗|有吗\s*[?？]?\s*$|有卖.{0,10}吗|^\s*(?:那|那么)?(?:你们|店里)?(?:有|卖)[^?？]{1,12}吗|"
    r"(?:^|[.!?,]\s*)\s*(?:ok,?\s*|so,?\s*|and\s+)?(?:do|does) (?:you|the shop|your shop) (?:have|sell|carry|stock)\b|"
    r"(?:^|[.!?,]\s*)\s*(?:have you got|got any|any)\b|\b(?:what|which) (?:\w+ ){0,2}(?:do|does) (?:you|the shop) (?:have|sell|carry|stock)\b|"
    r"\bwhat (?:\w+ ){0,2}(?:have you got|are there|is there)\b|(?:你们|店里)?(?:都)?有(?:哪些|什么)",
    re.IGNORECASE,
)
# "any with heels?", "ones without a hood": a constraint on the current need, not a new product
WITH_MORE = re.compile(
    r"^\s*(?:any|anything|something|ones?|the ones?|got any|do you have any|do you have ones?)\s+(?:with|without|in|that)\b",
    re.IGNORECASE,
)
WHAT_DO_YOU_HAVE = re.compile(
    r"\b(?:what|which) (?:\w+ ){0,2}(?:do|does) (?:you|the shop) (?:have|sell|carry|stock)\b|(?:你们|店里)(?:都)?有(?:哪些|什么)",
    re.IGNORECASE,
)
QUESTION_MARK = re.compile(
    r"[?？]\s*$|[吗么嘛呢啊]\s*[?？。!！]*\s*$|多少|多久|几[年个岁度天月]|还是.+[吗呢啊?？]?$|是不是|是否"
)
# "那洗碗布呢", "what about dog food?": a new need put as a question, not a question about a product
ASKS_FOR_OTHER = re.compile(r"^\s*那.{1,12}呢\s*[?？]?\s*$|^\s*(?:what|how) about\b", re.IGNORECASE)
QUESTION_ZH = re.compile(
    r"适合|适用|能不能|可不可以|能否|是不是|是否|多大|多重|多少|多长|多宽|多高|什么|哪里|哪国|怎么样|怎么用|好用|保质期|"
    r"几[个岁码天年]|尺码|有货|防水|含不含|含有|成分|材质|面料|产地|质量"
)
QUESTION_EN = re.compile(
    r"^\s*(?:(?:ok|okay|so|and|then|hmm|cool|great|nice)\b[,.!]?\s*)*(?:then\s+)?"
    r"(?:is|are|does|do|did|can|will|would|could|should|has|have|how|hows|how's|what|whats|what's|which|who|"
    r"where|when|tell me (?:more )?about)\b",
    re.IGNORECASE,
)
# "ok i'll take the dell", "add the first one to my cart", "就要第二个": choosing a shown product
PICK = re.compile(
    r"\bi'?ll (?:take|get|buy|go (?:for|with))\b|\bi (?:will|want to|wanna) (?:take|get|buy|go (?:for|with))\b|"
    r"\b(?:go|going) with the\b|\badd (?:the |this |that |it )?[\w' ]{0,20}?(?:to|into) (?:my |the )?(?:cart|basket|bag)\b|"
    r"\bi'?ll have the\b|\bthat one please\b|就要|就买|就选|就它|选这个|买这个|要这个|下单|加购|加入购物车",
    re.IGNORECASE,
)
DEICTIC = re.compile(
    r"这个|那个|这款|那款|这件|那件|这双|那双|这条|那条|这瓶|这台|它|该款|\bthis\b|\bthat\b|\bit\b|\bthese\b|"
    r"\bthose\b|\bthey\b|\bthe \w+ one\b",
    re.IGNORECASE,
)
SMALL_TALK = re.compile(
    r"你好|您好|在吗|谢谢|多谢|再见|拜拜|哈哈|天气|你是谁|你叫什么|笑话|写一?首诗|唱首歌|聊聊天|无聊|"
    r"\b(?:hi|hello|hey|thanks|thank you|bye|goodbye|good (?:morning|evening|night)|weather|who are you|"
    r"your name|a joke|a poem|how are you)\b",
    re.IGNORECASE,
)


def _has_need(intent: ShoppingIntent) -> bool:
    """The message states something to search for: a product or a constraint."""
    return bool(
        intent.category
        or intent.required
        or intent.excluded
        or intent.brands
        or intent.exclude_brands
        or intent.min_price is not None
        or intent.max_price is not None
        or intent.price_change
        or intent.sort != Sort.relevance
        or intent.clear_price
        or intent.clear_brands
        or intent.avoid_shown_brands
    )


def is_question(message: str) -> bool:
    text = message.strip()
    return bool(QUESTION_MARK.search(text) or QUESTION_EN.search(text))


def read_act(message: str, intent: ShoppingIntent, shown: int, has_need: bool) -> ShoppingIntent:
    """The rules' reading with its relation set to the message's dialogue act. ``shown`` is how
    many products are on screen; ``has_need`` whether the session has a need to refine."""
    text = message.strip()
    relation = intent.relation
    if INJECTION.search(text):
        return _only(intent, Relation.chitchat)
    if UNSUPPORTED.search(text):
        return _only(intent, Relation.unsupported)
    if has_need and MORE.search(text) and not _has_need(intent):
        return _only(intent, Relation.more)
    if SMALL_TALK.search(text) and not _has_need(intent) and not intent.references:
        return _only(intent, Relation.chitchat)  # "今天天气怎么样" is no question about a product
    if (
        intent.sort in (Sort.price_asc, Sort.price_desc)
        and (intent.brands or intent.category)
        and is_question(text)
        and not intent.references
        and intent.min_price is None
        and intent.max_price is None
    ):
        # "what's the cheapest rolex you've got then?": the whole range of that product, no old cap
        return intent.model_copy(update={"relation": Relation.new})
    if shown and PICK.search(text) and not (intent.min_price is not None or intent.max_price is not None):
        return intent.model_copy(update={"relation": Relation.pick})
    if has_need and WITH_MORE.search(text):
        return intent.model_copy(update={"relation": Relation.refine})  # "any with heels?"
    if AVAILABILITY.search(text):
        if WHAT_DO_YOU_HAVE.search(text) and intent.category and intent.relation == Relation.refine:
            return intent.model_copy(update={"relation": Relation.new})  # "what iphones do you have then?"
        return intent  # "有没有白色的", "iphone13有吗": a search, never a question about what is shown
    if shown and relation != Relation.compare and is_question(text) and not ASKS_FOR_OTHER.search(text):
        points = bool(intent.references) or bool(DEICTIC.search(text))
        priced = intent.min_price is not None or intent.max_price is not None or intent.price_change
        # "鞋跟是粗跟吗", "是机械表还是石英表啊": words the rules read as a need, asked as a question
        # about what is on screen (a price or a brand named in it is a search)
        # "which of those is under $30?" filters the list: a price asked of no one product is a search
        points = bool(intent.references) or (points and not priced)
        if points or not _has_need(intent) or not (priced or intent.brands or intent.exclude_brands):
            return intent.model_copy(update={"relation": Relation.question})
    if relation == Relation.pick and is_question(text) and QUESTION_ZH.search(text):
        return intent.model_copy(update={"relation": Relation.question})
    return intent


def _only(intent: ShoppingIntent, relation: Relation) -> ShoppingIntent:
    """An act that leaves the need alone: nothing of the message is kept as a constraint."""
    return ShoppingIntent(language=intent.language, relation=relation, references=intent.references)

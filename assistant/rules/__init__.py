"""The deterministic intent parser: rules over the catalog's own vocabulary.

Why rules when there is an LLM: the rules answer in well under a millisecond, so the first results can
be on screen before the LLM has finished, and they are the fallback whenever the LLM's JSON is
invalid. They are written to be *safe* more than clever: a constraint is only extracted when a
pattern or the catalog vocabulary (``FacetIndex``) says so, and anything unrecognised stays in the
free-text ``query`` where retrieval can still use it. ``parse_rules`` never raises.

What comes out: ``category`` is a catalog path ("服饰 > 女装 > 牛仔裤") when one path fits best, a
catalog level name ("牛仔裤") when several fit equally, or, when the catalog names none, the
product word of the shipped lexicon ("羽绒服"), which the caller should treat as a soft hint.
``required`` holds catalog attribute values and built-in colour/audience/material/size words;
``query`` is what is left of the message without prices, negated phrases and fillers.

How a message is read (all on the NFKC, case-folded text; each step blanks what it used, so
later steps cannot read the same words twice):

1. references to shown products (第二个, the second one, #2, 最后一个, compare 1 and 3);
2. prices (200以内, 100-200元, under $100, between 20 and 50, 200左右 = ±20%), then sort phrases
   (最便宜, best rated) and relative price (便宜点, cheaper);
3. negations (不要X, 别X, 不含X, 非X, 除了X, 没有X的, not/no/without/except X): X is cut at
   punctuation or a clause word, split on 和/或/、/or, and each piece is classified with the
   catalog vocabulary (a brand goes to ``exclude_brands``; a product word at its end stays
   positive, so "不要破洞牛仔裤" excludes 破洞 and still searches 牛仔裤);
4. what is left is scanned: category levels, then brands, catalog product words, and attribute
   values competing with built-in colour / audience / material / size words (the longer phrase,
   on jieba word boundaries, wins), then (with jieba) the shipped product and brand lexicons;
5. the relation to the conversation (pick / compare / replace / new / refine) and the query.

Deliberate limits: the shipped NER brand lexicon is full of ordinary words (加绒, 纯皮, this,
find), so only its CJK entries of three or more characters that are rare in general Chinese and
are not product words are used; two-character and Latin brands come from the catalog only.

The package, by concept: ``parser`` (``parse_rules`` and steps 1, 2, 4 and 5), ``negations``
(step 3), ``patterns`` (the regex and word tables), ``numbers`` (numerals and ordinals),
``lexicon`` (the shipped lexicons as the parser reads them) and ``message`` (the message being
read, with the spans already used).
"""

from assistant.rules.lexicon import lexicon_brands
from assistant.rules.parser import parse_rules

__all__ = ["lexicon_brands", "parse_rules"]

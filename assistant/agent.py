"""The shopping agent: one turn from a shopper's message to products and grounded copy.

A turn (``turn``) or a direct edit of the need (``edit``) yields typed events
(``assistant.events``), so a UI shows products long before the LLM has finished:

1. the rules read the message in a few ms (``assistant.rules``); the state applies the reading
   to the session's need (``assistant.state.apply``);
2. the planner turns the need into searches (``assistant.planner``, pure); the agent runs them
   and the ranker re-orders what matched: the *fast first answer*;
3. the LLM reads the message (``assistant.reading``: schema-constrained, repaired once,
   reconciled with the rules); if that changes the need, the products are refreshed;
4. the LLM writes one line per top product; each line is grounded as soon as it completes
   (``assistant.grounding``), failing lines are replaced by template lines from the record;
5. the session is saved and the ``TurnResult`` closes the stream.

Without an LLM (``llm=None``, or the server failing) every step still happens, from the rules
and templates: a turn never fails because of the model. Everything a turn writes lives in its
own ``Turn`` object, never on the agent, so turns of different sessions can run side by side.

With the embedded 1.5B model the planner picks the tool from the parsed need (one LLM call
fewer per turn, which is what keeps a CPU turn under 8 s); ``run_tool_loop`` lets a capable
server choose tools itself, bounded to ``max_steps``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from assistant.acts import ASKS_FOR_OTHER, AVAILABILITY, WITH_MORE, is_question, read_act
from assistant.answers import answer_question, compare, details, named_positions, question_reply
from assistant.events import (
    DoneEvent,
    ExpansionsEvent,
    IntentEvent,
    ProductsEvent,
    ReplyDeltaEvent,
    ReplyEvent,
    ReplyLineEvent,
    StreamedLineEvent,
    TurnEvent,
    TurnResult,
    final_result,
)
from assistant.facets import FacetIndex
from assistant.gifts import GIFT_WORDS, IdeaGroup, for_recipient, gift_ideas, ideas_reply
from assistant.grounding import GroundingChecker, GroundingReport, clean_text, template_line, written_positions
from assistant.intent import KEEPS_NEED, Facet, Need, Relation, ShoppingIntent
from assistant.planner import Attempt, SearchPlan, Vocabulary, advice, plan_search
from assistant.prompts import COPY_SYSTEM, COPY_TOKENS, INTENT_SYSTEM, conversation_context, copy_messages
from assistant.reading import read_with_llm, reconcile
from assistant.replies import budget_text, canned_reply, header, is_a, level_sizes, missing_header, related
from assistant.rules import lexicon_brands, parse_rules
from assistant.state import (
    ConstraintEdit,
    SessionState,
    SessionStore,
    ShownProduct,
    TurnRecord,
    apply,
    edit_constraints,
)
from assistant.synonyms import vocabulary
from assistant.toolloop import run_tool_loop
from assistant.tools import ToolRegistry, product_card
from ranking.events import AppendResult, validate_events
from ranking.experiments import FUSION, Experiment, configured_experiment, tag, uses_behaviour
from ranking.ranker import Ranker
from ranking.session import SessionTracker
from retrieval import Catalog, HybridRetriever
from shopassist.errors import ShopAssistError, UsageError
from shopassist.models import Candidate, Product, SearchFilters, Sort

__all__ = [
    "COPY_FOR",
    "SHOW",
    "SearchOutcome",
    "ShoppingAgent",
    "Turn",
    "TurnResult",
    "final_result",
]

SHOW = 5  # products shown per turn (the dialogue suite checks the top 5)
COPY_FOR = 2  # products the LLM writes copy for; the rest get template lines (CPU latency)
MAX_MESSAGE = 500


@dataclass
class Turn:
    """What one turn (or edit) reads and writes: its own timings and LLM errors, never shared."""

    session_id: str
    message: str
    state: SessionState
    t0: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    llm_errors: list[str] = field(default_factory=list)
    earlier: Product | None = None  # a product of an earlier list the message asks about by name

    def mark(self, name: str, since: float | None = None) -> float:
        now = time.perf_counter()
        self.timings[name] = (now - (self.t0 if since is None else since)) * 1000
        return now


ACCESSORY = re.compile(
    r"充电器|充电线|电源线|数据线|替换|刀片|刀网|配件|适用于|适配|保护套|保护膜|钢化膜|贴膜|"
    r"\b(?:chargers?|cases?|covers?|cables?) for\b|\breplacement\b|\bscreen protector\b|\bcompatible with\b",
    re.IGNORECASE,
)


def not_accessories(found: list[Candidate], need: Need) -> list[Candidate]:
    """A shaver search shows shavers, not shaver chargers: listings that name an accessory word
    the shopper did not ask for leave, while at least three others remain."""
    asked = " ".join([need.query, need.category or "", *need.required]).casefold()

    def accessory(c: Candidate) -> bool:
        return any(m.group(0).casefold() not in asked for m in ACCESSORY.finditer(c.product.title))

    kept = [c for c in found if not accessory(c)]
    return kept if len(kept) >= min(3, len(found)) else found


WHICH = re.compile(
    r"\bwhich (?:one|ones|of (?:them|these|those|the \w+))\b|哪[个款件一](?!个好|款好|个更|款更)", re.IGNORECASE
)


MARKET_CURRENCY = {"zh": "CNY", "en": "USD"}


def rules_sure(rules: ShoppingIntent) -> bool:
    """The rules understood the message: they found who it is for, the product's category, or
    the message only edits the need (a price, an exclusion, a brand) without new product words."""
    if rules.occasion or rules.category:
        return True
    edits = bool(
        rules.min_price is not None
        or rules.max_price is not None
        or rules.excluded
        or rules.exclude_brands
        or rules.brands
        or rules.price_change
        or rules.required
    )
    return rules.relation in (Relation.refine, Relation.replace) and edits and not rules.query.strip()


def in_market(found: list[Candidate], need: Need) -> list[Candidate]:
    """Listings of the shopper's market when the shop has any that match: "coffee" in an English
    chat shows the coffee priced in dollars, not the yuan listings beside it (a price the shopper
    names sets the market: "under 500 yuan"). A shop with one currency is left as it is."""
    currency = need.currency or MARKET_CURRENCY.get(need.language)
    same = [c for c in found if c.product.currency == currency]
    return same or found


CHEAPEST = re.compile(
    r"\bthe (?:cheaper|cheapest|less expensive|least expensive|lower priced) (?:one|of (?:them|the two|those))\b|"
    r"最便宜的那?[个款件]?|便宜的那[个款件]|便宜点的那[个款件]",
    re.IGNORECASE,
)
PRICIEST = re.compile(
    r"\bthe (?:pricier|priciest|more expensive|most expensive) (?:one|of (?:them|the two|those))\b|最贵的那?[个款件]?|贵的那[个款件]",
    re.IGNORECASE,
)


@dataclass
class SearchOutcome:
    candidates: list[Candidate]
    relaxed: list[str] = field(default_factory=list)
    suggestion: str | None = None
    missing: str | None = None  # the product type asked for that none of the results is
    nearby: list[Candidate] = field(default_factory=list)  # what the suggestion's relaxation finds
    head: str | None = None  # the head of the missing product type: what alternatives are
    unknown: tuple[str, ...] = ()  # names in the query no product has
    wrong_type: bool = False  # the results are not of the asked product type (its category was wrong)
    models: tuple[str, ...] = ()  # model names the shop does not carry ("iphone 15")


@dataclass
class _Answer:
    need: Need
    products: list[Product]
    outcome: SearchOutcome | None
    text: str | None = None  # the reply, when the turn answers rather than lists (question, pick, chat)
    focus: list[Product] = field(default_factory=list)
    alternatives: list[Product] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)  # product id -> its group's label (gift ideas)


class ShoppingAgent:
    def __init__(
        self,
        catalog: Catalog,
        sessions: SessionStore,
        *,
        llm: Any = None,
        facets: FacetIndex | None = None,
        feedback: Any = None,
        ranker: Ranker | None = None,
        retriever: HybridRetriever | None = None,
        experiment: Experiment | None = None,
    ) -> None:
        self.catalog = catalog
        self.sessions = sessions
        self.llm = llm
        self.ranker = ranker
        # an online A/B experiment on the ranking (``ranking.experiments``): given, or configured
        # by SHOPASSIST_EXPERIMENT; None (the default) changes nothing
        self.experiment = experiment if experiment is not None else configured_experiment()
        for name in self.experiment.names if self.experiment is not None else []:
            uses_behaviour(name)  # a variant the agent cannot serve is refused here, not mid-turn
        # what shoppers did (dislikes above all) has one home: the ranker's session profiles,
        # kept from the event log; without a ranker, an in-memory tracker with the same rules
        self.behaviour: SessionTracker = ranker.sessions if ranker is not None else SessionTracker()
        self.facets = facets if facets is not None else FacetIndex.from_products(catalog.products())
        self.tools = ToolRegistry(catalog, retriever, feedback=feedback or self._record_feedback)
        # what copy could claim wrongly: the catalog's brands and facet values, the shipped brand
        # lexicon, and common colour/material/property words in both languages
        self.checker = GroundingChecker(
            brands=[*self.facets.brand_names(), *lexicon_brands()],
            facet_values=[*self.facets.attribute_values(), *vocabulary()],
            system_prompt=INTENT_SYSTEM + COPY_SYSTEM,
        )
        self.vocab = Vocabulary(
            levels=frozenset(lv.casefold() for lv in self.facets.category_levels()),
            best_category=self.facets.best_category,
            audience_words=self.facets.audience_words(),
            tokenize=catalog.tokenizer,
            level_size=level_sizes(self.facets.category_paths()),
            term_count=catalog.term_count,
        )

    # -- behaviour -------------------------------------------------------------------------------
    def variant(self, session_id: str | None) -> str | None:
        """The ranking variant this session is assigned in the experiment (None without one),
        from its pseudonym: the same in every process and after a restart."""
        if self.experiment is None or not session_id:
            return None
        try:
            key = self.sessions.key(session_id)
        except UsageError:
            return None  # not a valid session id: its events are refused anyway
        return self.experiment.assign(key)

    def _record(self, events: list[dict[str, Any]]) -> AppendResult:
        if self.experiment is not None:  # every event says which variant its session is in
            name = self.experiment.name
            events = [{**e, "variant": tag(name, v)} if (v := self.variant(e.get("session_id"))) else e for e in events]
        if self.ranker is not None:
            return self.ranker.record(events)
        result = validate_events(events)
        for event in result.accepted:
            self.behaviour.observe(event)
        return result

    def _record_feedback(self, session_id: str, product_id: str, event: str) -> None:
        result = self._record([{"session_id": session_id, "type": event, "product_id": product_id}])
        if result.rejected:
            raise UsageError(f"feedback not recorded: {result.rejected[0][1]}")

    def disliked(self, session_id: str | None) -> list[str]:
        """The products this session said "not this" to (and did not take back)."""
        return list(self.behaviour.profile(session_id).disliked) if session_id else []

    # -- search ------------------------------------------------------------------------------------
    def search(
        self, need: Need, session_id: str | None = None, exclude: list[str] | None = None, fresh: bool = False
    ) -> SearchOutcome:
        """Run the plan for ``need``: the first attempt that finds something wins; nothing left
        gives an honest empty answer with the nearest relaxation as advice. ``exclude``: ids
        already shown for this need (show more)."""
        plan = plan_search(need, self.vocab, [*(exclude or []), *self.disliked(session_id)], SHOW, fresh=fresh)
        if fresh and not plan.unknown:
            absent = self._absent_words(need)
            if absent:
                plan = dataclasses.replace(plan, unknown=absent)
        seen = set()
        held_back: tuple[Attempt, list[Candidate]] | None = None  # in-stock results without the words
        for attempt in plan.attempts:
            key = attempt.args.model_dump_json()
            if key in seen:
                continue
            seen.add(key)
            found = self.tools.search(attempt.args)
            if need.occasion:  # a gift for mom: no men's products
                found = for_recipient(found, need.occasion, lambda c: f"{c.product.title} {c.product.category}")
            found = in_market(found, need)
            found = not_accessories(found, need)
            if held_back is not None and plan.words and not self._hold_words(found, plan.words):
                attempt, found = held_back  # the sold-out search found no better: the in-stock ones
            if not found:
                continue
            missing = None
            if plan.words:
                # the products that have the most of the query's words come first, alone:
                # a partial match is shown only when nothing matches better
                cover = [len(plan.words & self.catalog.doc_terms(x.product.id).keys()) for x in found]
                best = max(cover)
                if (
                    not best
                    and held_back is None
                    and "in_stock" not in attempt.relaxed
                    and any(self.catalog.term_count(w) for w in plan.words)
                ):
                    # none of these hold the words, yet a product does: maybe sold out (the next
                    # attempt shows it, marked so) - better than in-stock strangers
                    held_back = (attempt, found)
                    continue
                if best:
                    found = [x for x, n in zip(found, cover, strict=True) if n == best]
                elif not attempt.args.category:
                    # no result holds the words (motorbike vs "Motorcycle"): the meaning matched;
                    # keep the results of the first one's department, not a tail of unrelated items
                    head = found[0].product.category.split(" > ")[0]
                    found = [x for x in found if x.product.category.split(" > ")[0] == head] or found
                if not attempt.args.category and len(plan.words) >= 2 and best > 0 and best * 3 <= len(plan.words):
                    # the results share a word with the query but lack most of it (tpe草坪颗粒 -> 退热颗粒);
                    # no shared word at all is left alone: a cross-language match has none
                    missing = need.query or " ".join(sorted(plan.words))
            kind = plan.product_type
            wrong_type = kind is not None and not any(is_a(x.product, kind) for x in found[:SHOW])
            if wrong_type:
                missing = plan.product_type
            if plan.unknown:  # a name no product has: "没有 gucci 连衣裙", then the other dresses
                missing = need.query
            behaviour = self.experiment is None or uses_behaviour(self.variant(session_id) or FUSION)
            if self.ranker is not None and need.sort == Sort.relevance and behaviour:
                # what this shopper and all shoppers did re-orders what matched (and explains why)
                found = self.ranker.rank(session_id, found, query=attempt.args.query, k=SHOW)
            return SearchOutcome(
                found[:SHOW],
                relaxed=list(attempt.relaxed),
                missing=missing,
                head=plan.head,
                unknown=plan.unknown,
                wrong_type=wrong_type,
            )
        if plan.without_models is not None:
            # "iPhone 15 Pro Max": no product of that generation; the other ones are the alternatives
            others = self.tools.search(plan.without_models)
            if others:
                return SearchOutcome(others[:SHOW], missing=" ".join(plan.models), head=plan.head, models=plan.models)
        suggestion, nearby = self._advice(plan, need)
        return SearchOutcome([], suggestion=suggestion, nearby=nearby)

    def _advice(self, plan: SearchPlan, need: Need) -> tuple[str | None, list[Candidate]]:
        """The first single relaxation that finds products: what to say, and what it finds
        (shown as labelled alternatives, so the advice never announces products it hides)."""
        for probe in plan.probes:
            found = self.tools.search(probe.args)
            if need.occasion:
                found = for_recipient(found, need.occasion, lambda c: f"{c.product.title} {c.product.category}")
            if found:
                prices = [x.product.price for x in found if x.product.price is not None]
                text = advice(probe, need, len(found), prices)
                if text:
                    return text, found
        return None, []

    def _answer(self, turn: Turn, intent: ShoppingIntent) -> _Answer:
        need = apply(turn.state, intent, self.facets.facet_group)
        relation = intent.relation
        if relation in (Relation.chitchat, Relation.unsupported):
            # nothing to search: what is on screen stays on screen
            shown = [p for p in (self.catalog.get(s.id) for s in turn.state.shown) if p is not None]
            return _Answer(need, shown, None, text=canned_reply(relation, need.language))
        if relation in (Relation.compare, Relation.pick, Relation.question) and turn.state.shown:
            return self._about_shown(turn, intent, need)
        if relation != Relation.more and self._vague_gift(need):
            ideas = self._gift_ideas(turn, need)
            if ideas is not None:
                return ideas
        exclude = list(turn.state.seen) if relation == Relation.more else []
        outcome = self.search(need, turn.session_id, exclude=exclude, fresh=relation == Relation.new)
        found = [c.product for c in outcome.candidates]
        if relation == Relation.more and not found:
            zh = need.language == "zh"
            return _Answer(
                need, [], outcome, text="没有更多符合条件的商品了。" if zh else "That is everything that matches."
            )
        if outcome.missing:
            if outcome.wrong_type:  # 蛋糕鞋 is no 蛋糕: that category is not what was asked for
                need = need.model_copy(update={"category": None})
            if outcome.head:  # 没有蛋糕鞋: the alternatives are shoes, not cakes
                near = Need(query=outcome.head, min_price=need.min_price, max_price=need.max_price)
                found = [c.product for c in self.search(near, turn.session_id).candidates] or found
            return _Answer(need, [], outcome, alternatives=related(found))
        if not found and outcome.nearby:
            return _Answer(need, [], outcome, alternatives=[c.product for c in outcome.nearby[:SHOW]])
        return _Answer(need, found, outcome)

    def _hold_words(self, found: list[Candidate], words: frozenset[str]) -> bool:
        return any(words & self.catalog.doc_terms(x.product.id).keys() for x in found)

    def _absent_words(self, need: Need) -> tuple[str, ...]:
        """Chinese words of a new need that no product holds while the rest of it is known:
        猫砂活性炭 in a shop with 活性炭 and no 猫砂 (what the shop does not carry). A word
        whose parts are known (卧室 of 台女卧室) is no such word."""
        category = (need.category or "").split(" > ")[-1]
        if not category:
            return ()
        # only words joined to the product word (猫砂活性炭), not talk around it (算了 口红)
        text = " ".join(t.replace(category, " ") for t in need.query.split() if category in t)
        chunks = re.findall(r"[\u4e00-\u9fff]{2,}", text)
        if not chunks:
            return ()

        def held(word: str) -> bool:
            # does any product hold the word? The lexical leg alone answers it exactly (a product
            # that holds a Chinese word holds its characters, which are indexed) without the dense
            # leg's exact scan of every product under a selective filter (~100 ms at 10k)
            return bool(self.tools.retriever.lexical(word, SearchFilters(require_terms=[word]), 1))

        absent = []
        for chunk in chunks:
            if held(chunk):
                continue
            parts = [w for w in self.vocab.tokenize(chunk) if len(w) >= 2 and not w.startswith("#")]
            if parts and any(held(w) for w in parts):
                continue
            absent.append(chunk)
        return tuple(absent)

    def _which(self, turn: Turn, need: Need, shown: list[Product]) -> _Answer:
        """ "which one works with a stylus?": every shown record asked, the ones that say so named
        with the fact they state; none saying so is said plainly."""
        zh = need.language == "zh"
        said = [
            (i, p, a) for i, p in enumerate(shown, 1) if (a := answer_question(p, turn.message, need.language)).said
        ]
        if not said:
            topic = answer_question(shown[0], turn.message, need.language).topic or turn.message
            text = (
                f"这几款的商品信息都没有提到“{topic}”，我不能确定。"
                if zh
                else f"None of these products' records mention '{topic}', so I can't tell which one."
            )
            return _Answer(need, shown, None, text=text)
        lines = [f"{i}. {p.title[:40]}：{a.text}" if zh else f"#{i} ({p.title[:40]}): {a.text}" for i, p, a in said]
        head = "按商品信息：" if zh else "Going by the product records:"
        return _Answer(need, shown, None, text="\n".join([head, *lines]), focus=[p for _, p, _ in said])

    def _vague_gift(self, need: Need) -> bool:
        """A gift with no product named ("给我妈买个生日礼物", "a gift for my dad under $50")."""
        if not need.occasion or need.category or need.brands or need.required:
            return False
        if not GIFT_WORDS.search(need.occasion):
            return False
        words = [w for w in self.vocab.tokenize(need.query or "") if not w.startswith("#")]
        return not [w for w in words if (len(w) >= 2 if not w.isascii() else len(w) >= 3)]

    def _gift_ideas(self, turn: Turn, need: Need) -> _Answer | None:
        """Gift ideas the catalog confirms: up to three product types with products in the
        budget, a few of each (labelled), and one question about what the recipient likes."""
        groups: list[IdeaGroup] = []
        per_group: list[list[Product]] = []
        taken: set[str] = set()
        for idea in gift_ideas(need.occasion, need.language):
            probe = need.model_copy(update={"query": idea, "occasion": ""})
            plan = plan_search(probe, self.vocab, self.disliked(turn.session_id), SHOW)
            hits = self.tools.search(plan.attempts[0].args.model_copy(update={"top_k": 100}))
            found = [c.product for c in hits if is_a(c.product, idea) and c.product.id not in taken]
            # 香水 the gift, not a 香水套餐 for an air freshener: the department most of them are in
            tops = Counter(p.category.split(" > ")[0] for p in found)
            if tops:
                main = tops.most_common(1)[0][0]
                found = [p for p in found if p.category.split(" > ")[0] == main]
            found = for_recipient(found, need.occasion, lambda p: f"{p.title} {p.category}")
            if not found:
                continue
            groups.append(IdeaGroup(idea, len(found)))
            per_group.append(found[:SHOW])
            taken.update(p.id for p in found[:SHOW])
            if len(groups) == 3:
                break
        if not groups:
            return None
        products: list[Product] = []
        labels: dict[str, str] = {}
        for i in range(SHOW):
            for group, found in zip(groups, per_group, strict=True):
                if i < len(found) and len(products) < SHOW + 1:
                    products.append(found[i])
                    labels[found[i].id] = group.label
        products = products[: max(SHOW, len(groups) * 2)]
        text = ideas_reply(need.occasion, groups, budget_text(need), need.language)
        lines = [f"{i}. [{labels[p.id]}] {template_line(p, need.language)}" for i, p in enumerate(products, 1)]
        return _Answer(need, products, None, text="\n".join([text, *lines]), groups=labels)

    def _about_shown(self, turn: Turn, intent: ShoppingIntent, need: Need) -> _Answer:
        """A question, a pick or a comparison: answered from the records of the products on
        screen; the list stays as it was, the products the turn is about are its focus."""
        state, zh = turn.state, need.language == "zh"
        shown = [p for p in (self.catalog.get(s.id) for s in state.shown) if p is not None]
        positions = [n for n in intent.references if 1 <= n <= len(shown)]
        missing = [n for n in intent.references if n > len(shown)]
        if turn.earlier is not None and intent.relation == Relation.question:
            ans = answer_question(turn.earlier, turn.message, need.language)
            return _Answer(need, shown, None, text=question_reply(turn.earlier, None, ans, need.language))
        if (
            intent.relation == Relation.question
            and not intent.references
            and len(shown) > 1
            and WHICH.search(turn.message)
        ):
            return self._which(turn, need, shown)
        if not positions and intent.relation != Relation.compare:
            positions = [state.focus if state.focus and state.focus <= len(shown) else 1]
        if intent.relation == Relation.compare and len(positions) < 2:
            positions = list(range(1, min(len(shown), 3) + 1)) if not intent.references else positions
        note = ""
        if missing:
            n = len(shown)
            wanted = "、".join(map(str, missing)) if zh else ", ".join(map(str, missing))
            note = (
                f"（只展示了 {n} 款，没有第 {wanted} 款）\n"
                if zh
                else f"(Only {n} products were shown; there is no #{wanted}.)\n"
            )
        focus = [shown[n - 1] for n in positions]
        if intent.relation == Relation.compare and len(focus) >= 2:
            text = note + compare(focus, positions, need.required, need.language)
            return _Answer(need, shown, None, text=text, focus=focus)
        if not focus:
            return _Answer(need, shown, None, text=note.strip() or None)
        product, pos = focus[0], positions[0]
        state.focus = pos
        # asking about a shown product is interest in it: a click for the ranker
        self._record([{"session_id": turn.session_id, "type": "click", "product_id": product.id}])
        if intent.relation == Relation.question:
            ans = answer_question(product, turn.message, need.language)
            text = note + question_reply(product, pos, ans, need.language)
            alternatives: list[Product] = []
            if not ans.said and ans.topic:
                # the record does not say: offer the closest products whose records do
                probe = need.model_copy(update={"required": [*need.required, *ans.topic.split()[:2]]})
                outcome = self.search(probe, turn.session_id, exclude=[p.id for p in shown])
                alternatives = [c.product for c in outcome.candidates[:3]]
                if alternatives:
                    text += "\n这些商品的信息里写到了：" if zh else "\nThese products' records do mention it:"
            return _Answer(need, shown, None, text=text, focus=focus, alternatives=alternatives)
        return _Answer(need, shown, None, text=note + details(product, pos, need.language), focus=focus)

    def _named(self, turn: Turn, rules: ShoppingIntent) -> ShoppingIntent:
        """A shown product named by a word of its own ("i'll take the dell", "how much is the
        basketball?"): the reference a pick, question or comparison is about; a question that
        names one (and asks for no other constraint) is a question about it, not a search."""
        message, state = turn.message, turn.state
        if not state.shown or rules.references:
            return rules
        shown = [p for p in (self.catalog.get(s.id) for s in state.shown) if p is not None]
        priced = [(p.price, i) for i, p in enumerate(shown, 1) if p.price is not None]
        by_price = CHEAPEST.search(message) or PRICIEST.search(message)
        if by_price and priced and is_question(message) and rules.min_price is None and rules.max_price is None:
            # "how much is the cheaper one?": the shown product it picks out, not a new cap
            pos = (min if CHEAPEST.search(message) else max)(priced)[1]
            return rules.model_copy(update={"relation": Relation.question, "references": [pos], "price_change": None})
        named = named_positions(message, shown)
        if not named:
            return rules
        if rules.relation in (Relation.question, Relation.pick):
            return rules.model_copy(update={"references": named[:1]})
        if rules.relation == Relation.compare:
            return rules.model_copy(update={"references": named}) if len(named) >= 2 else rules
        shown_text = " ".join(f"{p.brand or ''} {p.title}" for p in shown).casefold()
        plain = not (rules.required or rules.excluded or rules.exclude_brands or rules.price_change)
        unpriced = rules.min_price is None and rules.max_price is None
        brands_shown = all(b.casefold() in shown_text for b in rules.brands)
        # "how many of the kawasaki do you have in stock?" asks about a shown one; "do you have
        # volleyballs?" and "any with heels?" search
        asks = is_question(message) and not ASKS_FOR_OTHER.search(message)
        asks = asks and not (AVAILABILITY.search(message) and not rules.brands) and not WITH_MORE.search(message)
        superlative = rules.sort != Sort.relevance  # "what's the cheapest rolex you've got?" searches
        if asks and plain and unpriced and brands_shown and not superlative and rules.relation != Relation.replace:
            return rules.model_copy(update={"relation": Relation.question, "references": named[:1]})
        return rules

    def _named_earlier(self, turn: Turn, rules: ShoppingIntent) -> ShoppingIntent:
        """ "ok then how much is the basketball?" when the basketball was in a list before this one:
        a question about that product (answered from its record), not a search."""
        state = turn.state
        if not is_question(turn.message) or rules.references or rules.relation in (Relation.compare, Relation.pick):
            return rules
        if rules.min_price is not None or rules.max_price is not None or rules.required or rules.excluded:
            return rules
        if AVAILABILITY.search(turn.message) or ASKS_FOR_OTHER.search(turn.message):
            return rules
        on_screen = {s.id for s in state.shown}
        ids = list(dict.fromkeys(i for t in state.turns[-4:] for i in t.shown if i not in on_screen))
        earlier = [p for p in (self.catalog.get(i) for i in ids) if p is not None]
        named = named_positions(turn.message, [*earlier, *(p for p in (self.catalog.get(i) for i in on_screen) if p)])
        if len(named) == 1 and named[0] <= len(earlier):
            turn.earlier = earlier[named[0] - 1]
            return rules.model_copy(update={"relation": Relation.question, "references": []})
        return rules

    def _expansions(self, need: Need) -> list[Facet]:
        """Catalog facet values for the intended category that the need does not name yet."""
        return self.facets.expansions(
            need.category or need.query or None, need.query, set(need.required) | set(need.excluded)
        )

    # -- the turn ----------------------------------------------------------------------------------
    def turn(self, session_id: str, message: str) -> Iterator[TurnEvent]:
        message = clean_text(message)[:MAX_MESSAGE]
        turn = Turn(session_id, message, self.sessions.load(session_id))
        state = turn.state
        # the query joins the session's behaviour (query -> item knowledge)
        self._record([{"session_id": session_id, "type": "search", "query": message}])
        previous = ShoppingIntent.from_need(state.constraints) if state.turns else None
        rules = parse_rules(message, self.facets, previous=previous, shown_count=len(state.shown))
        rules = read_act(message, rules, len(state.shown), has_need=bool(state.turns))
        if state.shown:
            # references past the end of the list ("第5个" with 3 shown) get a plain note, so read
            # them as if the list were long, and keep those the rules dropped
            wide = parse_rules(message, self.facets, previous=previous, shown_count=50)
            beyond = [n for n in wide.references if n > len(state.shown)]
            if beyond and wide.relation in (Relation.pick, Relation.compare):
                relation = rules.relation if rules.relation == Relation.question else wide.relation
                rules = rules.model_copy(update={"references": wide.references, "relation": relation})
        rules = self._named(turn, rules)
        rules = self._named_earlier(turn, rules)
        turn.mark("rules_ms")
        yield IntentEvent(source="rules", intent=rules.summary())

        answer = self._answer(turn, rules)
        turn.mark("first_products_ms")
        yield ProductsEvent(cards=self._cards(answer))
        # refinements belong to a list of matches, not to an answer or to "we don't have that"
        listed = answer.text is None and not (answer.outcome and answer.outcome.missing)
        expansions = self._expansions(answer.need) if listed else []
        yield ExpansionsEvent(facets=expansions)

        intent, source = rules, "rules"
        # the LLM reads needs the rules are unsure of; an act that answers about what is shown (or
        # about nothing), and a need the rules understood, are left to the rules: measured on the
        # demo suite, an LLM reading of every need cost 9.4 points (it adds must-haves and
        # categories such as 礼物/生日 that empty a gift search)
        llm = None if rules.relation in KEEPS_NEED or rules_sure(rules) else self.llm
        written: tuple[list[str], str] | None = None
        if llm is not None and listed and answer.products:
            # the shopper reads the lines for the products on screen first (~2 s): the LLM's
            # reading (~4 s on one CPU thread) comes after, and a change it makes is shown as one
            written = yield from self._write_copy(turn, rules, answer, None)
        t_read = time.perf_counter()
        llm_intent = read_with_llm(llm, message, conversation_context(state, SHOW), turn.llm_errors)
        turn.mark("llm_intent_ms", since=t_read)
        if llm_intent is not None:
            merged = reconcile(rules, llm_intent, message)
            source = "rules+llm"
            yield IntentEvent(source=source, intent=merged.summary(), llm=llm_intent.summary())
            if merged != rules:
                other = self._answer(turn, merged)
                changed = other.need != answer.need or [p.id for p in other.products] != [p.id for p in answer.products]
                # an LLM reading that empties a non-empty answer is not trusted over the rules
                if changed and (other.products or not answer.products):
                    answer = other
                    written = None  # the lines were about the products it replaced
                    yield ProductsEvent(cards=self._cards(answer), refined=True)
            intent = merged
        yield from self._compose(turn, intent, source, answer, expansions, written=written)

    def edit(self, session_id: str, edit: ConstraintEdit) -> Iterator[TurnEvent]:
        """The shopper edited the parsed need (removed or toggled a chip, typed a price): the
        need changes exactly as asked, with no parsing, and the search runs again at once.
        The same event stream as ``turn``; recorded in the session as an edit."""
        record = "[edit] " + edit.model_dump_json(exclude_defaults=True)
        turn = Turn(session_id, record, self.sessions.load(session_id))
        need = edit_constraints(turn.state.constraints, edit)
        intent = ShoppingIntent.from_need(need, relation=Relation.refine)
        yield IntentEvent(source="edit", intent=intent.summary())
        outcome = self.search(need, session_id)
        answer = _Answer(need, [c.product for c in outcome.candidates], outcome)
        turn.mark("first_products_ms")
        yield ProductsEvent(cards=self._cards(answer))
        expansions = self._expansions(need)
        yield ExpansionsEvent(facets=expansions)
        # the copy is written for what the need now says, not for the edit's JSON
        copy_for = " ".join([need.category or "", need.query, *need.required]).strip() or record
        yield from self._compose(turn, intent, "edit", answer, expansions, copy_for=copy_for)

    def apply_edit(self, session_id: str, edit: ConstraintEdit) -> TurnResult:
        return final_result(self.edit(session_id, edit))

    def ask(self, session_id: str, message: str) -> TurnResult:
        return final_result(self.turn(session_id, message))

    # -- the end of every turn: copy, grounding, reply, session save --------------------------------
    def _copy_stream(self, turn: Turn, products: list[Product], language: str, need_text: str) -> Iterator[str]:
        if self.llm is None or not products:
            return
        for pos, product in enumerate(products, 1):
            messages = copy_messages([product], language, need_text, start=pos)
            text = ""
            held: str | None = ""  # the start of the line, until its "[n]" can be read
            try:
                for delta in self.llm.stream(messages, max_tokens=COPY_TOKENS, temperature=0.3):
                    if held is not None:
                        # one product per request: its number is ours, whatever the model wrote
                        held += delta
                        if "]" not in held and len(held) < 6:
                            continue
                        delta, held = re.sub(r"^\[\d+\]", f"[{pos}]", held.lstrip(), count=1), None
                    if "\n" in delta:  # its one line is done (anything after is not about it)
                        delta = delta.split("\n", 1)[0] + "\n"
                        text += delta
                        yield delta
                        break
                    text += delta
                    yield delta
                if held:
                    text += held
                    yield held
            except ShopAssistError as exc:
                turn.llm_errors.append(f"copy: {exc}")
                return
            if text and not text.endswith("\n"):
                yield "\n"  # each product's line ends here, so it is checked and streamed now

    def _write_copy(
        self, turn: Turn, intent: ShoppingIntent, answer: _Answer, copy_for: str | None
    ) -> Generator[TurnEvent, None, tuple[list[str], str]]:
        """Stream the copy for ``answer``'s first products, each line as soon as it passes the
        check; returns the raw copy and the reply's header (what the streamed lines follow)."""
        need, products, outcome = answer.need, answer.products, answer.outcome
        copy_products = _copy_products(answer)
        chunks: list[str] = []
        sent: set[int] = set()
        # a list of matches streams as its reply reads: the header, then each line in order (a
        # line's check depends only on itself and the lines before it, so it reads so at the end)
        listing = answer.text is None and not (outcome is not None and outcome.missing)
        relaxed = outcome.relaxed if outcome else []
        first = header(need, len(products), relaxed, outcome.suggestion if outcome else None, intent.relation)
        streamed = 0  # lines streamed in order (with a delta)
        for delta in self._copy_stream(turn, copy_products, need.language, copy_for or turn.message):
            chunks.append(delta)
            yield ReplyDeltaEvent(text=delta)
            if "\n" in delta:  # a line is complete: check it now, so a UI can stream grounded lines
                done_text = "".join(chunks).rsplit("\n", 1)[0]
                checked, _ = self.checker.check(done_text, copy_products, need.language)
                for pos in sorted(written_positions(done_text, len(copy_products)) - sent):
                    sent.add(pos)
                    if "first_line_ms" not in turn.timings:
                        # how long the shopper has had the products when the first copy line comes
                        shown = turn.t0 + turn.timings.get("first_products_ms", 0.0) / 1000
                        turn.mark("first_line_ms", since=shown)
                    line = checked[pos - 1]
                    if not listing or pos != streamed + 1:
                        yield ReplyLineEvent(position=pos, text=line)
                        continue
                    lead = "\n" if streamed else first + "\n"
                    streamed += 1
                    yield StreamedLineEvent(position=pos, text=line, delta=f"{lead}{pos}. {line}")
        turn.mark("copy_ms", since=turn.t0 + turn.timings.get("first_products_ms", 0.0) / 1000)
        return chunks, first

    def _compose(
        self,
        turn: Turn,
        intent: ShoppingIntent,
        source: str,
        answer: _Answer,
        expansions: list[Facet],
        copy_for: str | None = None,
        written: tuple[list[str], str] | None = None,
    ) -> Iterator[TurnEvent]:
        """The rest of the turn: the copy (``written``: already streamed for this answer by
        ``_write_copy``), the checked reply, the session saved, the result."""
        need, products, outcome = answer.need, answer.products, answer.outcome
        copy_products = _copy_products(answer)
        relaxed = outcome.relaxed if outcome else []
        if written is None:
            written = yield from self._write_copy(turn, intent, answer, copy_for)
        chunks, first = written
        lines, report = self.checker.check("".join(chunks), copy_products, need.language)
        alt_lines = [template_line(p, need.language) for p in answer.alternatives]
        if answer.text is not None:
            lines = []
            reply = answer.text + "".join(f"\n- {line}" for line in alt_lines)
        elif outcome is not None and outcome.missing:
            lines = []
            reply = missing_header(outcome.missing, need, bool(alt_lines)) + "".join(f"\n- {x}" for x in alt_lines)
        else:
            lines += [template_line(p, need.language) for p in products[COPY_FOR:]]
            reply = first + ("\n" + "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1)) if lines else "")
            reply += "".join(f"\n- {line}" for line in alt_lines)
        yield ReplyEvent(text=reply)

        state = turn.state
        if outcome is not None and outcome.unknown:
            # said once, "we don't have gucci" holds: the name must not keep later turns empty
            gone = {u.casefold() for u in outcome.unknown}
            need = need.model_copy(
                update={"query": " ".join(w for w in need.query.split() if w.casefold() not in gone)}
            )
        if outcome is not None and outcome.models:
            # "we don't have the iPhone 15" holds too: the product line stays, its generation and
            # the specs that came with it go ("what iphones do you have?" is then answerable)
            query = need.query
            for model in outcome.models:
                name, num = model.rsplit(" ", 1)
                query = re.sub(rf"(?i)(?<={re.escape(name)})\s?{num}(?!\d)", "", query)
            need = need.model_copy(
                update={
                    "query": " ".join(query.split()),
                    "required": [r for r in need.required if not re.search(r"\d", r)],
                }
            )
        state.constraints = need
        act = intent.relation
        on_screen = products or (answer.alternatives if answer.text is None else [])
        if on_screen and act not in (Relation.question, Relation.pick, Relation.compare):
            # what the shopper sees is what "the first one" refers to, alternatives included
            state.shown = [
                ShownProduct(id=p.id, title=p.title, price=p.price, currency=p.currency, brand=p.brand)
                for p in on_screen
            ]
            state.focus = None
            new_ids = [p.id for p in on_screen]
            state.seen = [*state.seen, *new_ids] if act == Relation.more else new_ids
        state.turns.append(
            TurnRecord(user=turn.message, intent=intent.summary(), shown=[p.id for p in products], reply=reply)
        )
        self.sessions.save(state)
        turn.mark("total_ms")
        result = TurnResult(
            session_id=state.session_id,
            message=turn.message,
            intent=intent.summary(),
            intent_source=source,
            act=act.value,
            constraints=need.model_dump(mode="json", exclude_defaults=True),
            expansions=expansions,
            products=[p.id for p in products],
            focus=[p.id for p in answer.focus],
            alternatives=[p.id for p in answer.alternatives],
            cards=self._cards(answer),
            reply=reply,
            lines=lines,
            relaxed=relaxed,
            grounding={**_grounding_summary(report, turn.llm_errors), "llm_copy": "".join(chunks)[:600]},
            timings={k: round(v, 1) for k, v in turn.timings.items()},
        )
        yield DoneEvent(result=result)

    def _cards(self, answer: _Answer) -> list[dict[str, Any]]:
        reasons = {c.product.id: c.reasons for c in (answer.outcome.candidates if answer.outcome else [])}
        focus = {p.id for p in answer.focus}
        need = answer.need
        # what the shopper asked for: a card says which of it the product has, in their language
        asked = SearchFilters(
            require_terms=need.required, min_price=need.min_price, max_price=need.max_price, brands=need.brands
        )
        cards = []
        for i, p in enumerate(answer.products, 1):
            card = product_card(p, i, reasons.get(p.id), language=need.language, asked=asked, lookup=self.catalog.get)
            if p.id in focus:
                card["focus"] = True
            if p.id in answer.groups:
                card["group"] = answer.groups[p.id]
            cards.append(card)
        for p in answer.alternatives:  # labelled: shown because nothing matched, not as matches
            cards.append({**product_card(p), "alternative": True})
        return cards

    # -- a model-driven tool loop (for capable servers) -----------------------------------------------
    def run_tool_loop(self, messages: list[dict[str, Any]], max_steps: int = 4) -> tuple[str, list[dict[str, Any]]]:
        """Let the model call the five tools itself (``assistant.toolloop.run_tool_loop``)."""
        if self.llm is None:
            raise ShopAssistError("no LLM configured for the tool loop")
        return run_tool_loop(self.llm, self.tools, messages, max_steps)


def _copy_products(answer: _Answer) -> list[Product]:
    # copy is written for a list of matches; an answer about shown products is its own reply
    return answer.products[:COPY_FOR] if answer.text is None and not answer.alternatives else []


def _grounding_summary(report: GroundingReport, llm_errors: list[str]) -> dict[str, Any]:
    return {
        "checked_lines": len(report.lines),
        "ungrounded_replaced": report.ungrounded,
        "problems": report.problems()[:10],
        "template_lines": len(report.missing),
        "llm_errors": llm_errors,
    }

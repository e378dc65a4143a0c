"""Reading a message with the LLM: a schema-constrained parse, one repair try, and the
reconciliation that keeps the model honest against the rules.

The LLM adds understanding (meaning, categories, attribute words the rules' tables lack); the
rules keep it honest: what the LLM adds must be in the message (a small model invents
constraints), and prices, references and the relation come from the rules when the rules found
them (patterns are exact there).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from assistant.intent import ShoppingIntent
from assistant.prompts import intent_messages
from shopassist.errors import ModelBehaviourError, ShopAssistError
from shopassist.models import detect_language

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def read_with_llm(llm: Any, message: str, context: str, errors: list[str]) -> ShoppingIntent | None:
    """The LLM's reading of ``message``, or None (no model, the server failed, or the answer
    was still invalid after one repair try); what went wrong is appended to ``errors``."""
    if llm is None:
        return None
    messages: list[dict[str, str]] = intent_messages(message, context)
    schema = ShoppingIntent.llm_schema()
    error = ""
    for attempt in range(2):
        raw: Any = None
        try:
            raw = llm.structured(messages, schema, max_tokens=120, temperature=0)
            return ShoppingIntent.model_validate({**raw, "language": detect_language(message)})
        except ValidationError as exc:
            error = exc.errors()[0]["msg"]
        except ModelBehaviourError as exc:
            error = str(exc)
        except ShopAssistError as exc:  # the server is down or refused: no point repairing
            errors.append(f"intent: {exc}")
            return None
        if attempt == 0:  # one repair try: show the model its answer and what was wrong
            shown = json.dumps(raw, ensure_ascii=False) if raw is not None else "(not JSON)"
            messages = [
                *messages,
                {"role": "assistant", "content": shown},
                {"role": "user", "content": f"That answer is invalid ({error}). Output the corrected JSON only."},
            ]
    errors.append(f"intent invalid after one repair: {error}")
    return None


def _in_message(value: str, message: str) -> bool:
    return value.strip().casefold() in message.casefold()


def reconcile(rules: ShoppingIntent, llm: ShoppingIntent | None, message: str) -> ShoppingIntent:
    """The rules' reading, with what the LLM adds that the message supports."""
    if llm is None:
        return rules
    merged = rules.model_copy(deep=True)
    if (
        llm.query
        and (not rules.query or len(llm.query) > len(rules.query))
        and _in_message(llm.query.split()[0], message)
    ):
        merged.query = llm.query
    if not rules.category and llm.category and _in_message(llm.category, message):
        merged.category = llm.category

    def grounded(ours: list[str], theirs: list[str]) -> list[str]:
        return list(dict.fromkeys(ours + [v for v in theirs if _in_message(v, message)]))

    merged.required = grounded(rules.required, llm.required)
    merged.excluded = grounded(rules.excluded, llm.excluded)
    merged.brands = grounded(rules.brands, llm.brands)
    merged.exclude_brands = grounded(rules.exclude_brands, llm.exclude_brands)
    merged.required = [v for v in merged.required if v not in merged.excluded]
    if rules.min_price is None and rules.max_price is None and (llm.min_price is not None or llm.max_price is not None):
        nums = {float(n) for n in _NUMBER.findall(message)}
        if llm.min_price is None or llm.min_price in nums:
            merged.min_price = llm.min_price
        if llm.max_price is None or llm.max_price in nums:
            merged.max_price = llm.max_price
        merged.currency = merged.currency or llm.currency
    if merged.price_change is None:
        merged.price_change = llm.price_change
    return merged

"""The shopping chat (Gradio): what `make run` opens on 127.0.0.1.

One browser session = one shopassist session: a ``gr.State`` holds its id (a fresh random id per
page load), so two tabs or two shoppers never share history, constraints or behaviour.

* The chat streams each copy line as soon as it has passed the grounding check; the final reply
  replaces it. Nothing a product, a shopper or a model writes can run or render as markup: every
  chat message, card and the details panel is ``html.escape``d before it reaches the browser (the
  Chatbot, which inserts its messages as HTML, also runs with ``render_markdown=False``,
  ``sanitize_html=True`` and no preserved tags, so a title's link is not clickable and its image
  is not fetched). A product title quoted in the assistant's own lines is shown as the product's
  title, 「in brackets」 and cut at ``TITLE_CAP`` characters, so a title cannot read as something
  the assistant says ("SYSTEM OVERRIDE: ...").
* Served only as what it is: a local app. No telemetry (``GRADIO_ANALYTICS_ENABLED=False``, set
  before gradio is imported, and ``analytics_enabled=False``); no file uploads (the upload routes
  answer 403, and ``max_file_size`` is 1 kB behind that); bound to a loopback address, a request whose Host
  header names another host is refused with 400 (DNS rebinding).
* One language at a time (``ui.labels``): the page starts in Chinese, follows the language of each
  message the shopper writes, and has a 中文 / English switch in the header.
* Product cards (``ui.panels``): the image over a tile naming the category (an image that does
  not load leaves the tile), title, price, rating, stock, and the reasons it was suggested; buttons for
  details, add to cart and "not this" send behaviour events and show the new suggestions at once
  (the disliked product goes; carted items pull similar ones up).
* The parsed need is shown as chips, always the current one (an edit applies to the chips at
  once, before the search runs again): removing one (✕) or turning a must-have into "not" edits
  the constraints directly; catalog expansions (+ 修身) add a must-have.
* A cart (quantities, total per currency, remove), a comparison table when the turn compares
  products, a landing page (greeting, trending / popular products or a few picks, examples), a
  "thinking… / writing…" state while a reply is produced, and a notice when the LLM's reading
  refines the products already shown.
"""

from __future__ import annotations

import html
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

# the product promises no network use: gradio reads this when it is imported and at every launch
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # after the telemetry switch above
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.agent import ShoppingAgent
from assistant.events import (
    DoneEvent,
    ExpansionsEvent,
    IntentEvent,
    ProductsEvent,
    ReplyEvent,
    ReplyLineEvent,
    TurnEvent,
)
from assistant.grounding import clean_text, escape
from assistant.intent import Need
from assistant.state import ConstraintEdit, edit_constraints
from assistant.tools import product_card
from ui.api_guard import host_name, is_loopback
from ui.labels import EXAMPLES, SWITCH, lang_of, message_language, switch_value, t
from ui.panels import (
    card_html,
    cart_add,
    cart_header_html,
    cart_line_html,
    cart_remove,
    chips_of,
    compare_html,
    expansion_chips,
    fallback_picks,
    greeting_html,
    parse_compare,
    section_html,
)

__all__ = ["card_html", "chips_of", "host_name", "is_loopback"]  # tests and callers read these from here

TITLE = "shopassist"
BUTTONS = ("click", "add_to_cart", "dislike")
LANDING_K = 4  # products per landing section

CSS = """
#brand, #brand * {white-space: nowrap}
#send {background: #c2410c; color: #fff}  /* 5.2:1 contrast with white (WCAG AA) */
#send:hover {background: #9a3412}
.sa-card {border: 1px solid #e5e1da; border-radius: 10px; padding: 10px; display: flex; gap: 12px;
          align-items: flex-start; background: #fff}
.sa-img {position: relative; width: 84px; height: 84px; border-radius: 8px; background: #f4f1ec; flex: none;
         display: flex; align-items: center; justify-content: center; overflow: hidden}
.sa-tile {font-size: 13px; color: #555; text-align: center; padding: 4px; line-height: 1.2}
.sa-photo {position: absolute; inset: 0; background-size: cover; background-position: center}
.sa-body {min-width: 0}
.sa-title {font-weight: 600; line-height: 1.35}
.sa-meta {display: flex; flex-wrap: wrap; gap: 10px; align-items: baseline; margin-top: 4px}
.sa-price {color: #c0392b; font-weight: 700}
.sa-rating {color: #8a5a00}
.sa-stock {color: #276749; font-size: 0.9em}
.sa-stock.sa-out {color: #6b6b6b}
.sa-brand {color: #666; font-size: 0.9em}
.sa-reasons {color: #4a5568; font-size: 0.85em; margin-top: 4px}
.sa-group {display: inline-block; background: #eef3fb; color: #1d4e89; border-radius: 4px; padding: 0 6px;
           font-size: 0.8em; margin-bottom: 2px}
.sa-details {white-space: pre-wrap; border: 1px solid #ddd; border-radius: 8px; padding: 8px; font-size: 0.9em}
.sa-notice {background: #fff8e1; border: 1px solid #f6d365; border-radius: 8px; padding: 6px 10px; font-size: 0.9em}
.sa-section {font-weight: 600; margin: 6px 0 2px}
.sa-greeting {font-size: 1.05em; padding: 8px 2px}
.sa-cmp {border-collapse: collapse; width: 100%; font-size: 0.9em}
.sa-cmp th, .sa-cmp td {border: 1px solid #e2e2e2; padding: 4px 8px; text-align: left; vertical-align: top}
.sa-cmp thead th {background: #f7f5f2}
.sa-cmp-name {font-weight: 400; color: #555; font-size: 0.85em}
.sa-verdict {margin-top: 6px; font-weight: 600}
.sa-cart-head {font-weight: 600}
.sa-cart-line {display: flex; gap: 8px; align-items: baseline; font-size: 0.9em}
.sa-cart-title {flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap}
.sa-cart-total {font-weight: 600; margin-top: 4px}
.sa-cart-empty {color: #595959; font-size: 0.9em}
"""

# how much of a product title the assistant's own lines quote (the card shows all of it)
TITLE_CAP = 60
UPLOAD_LIMIT = "1kb"  # the app has no upload feature; the upload route is refused outright anyway
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def quoted_title(title: str) -> str:
    """A product title as the assistant quotes it: 「marked as the title」 and at most TITLE_CAP
    characters, so a title cannot pass for the assistant's own words. Not escaped."""
    text = " ".join(clean_text(title).split())
    if len(text) > TITLE_CAP:
        text = text[: TITLE_CAP - 1].rstrip() + "…"
    return f"「{text}」"


def mark_titles(text: str, titles: Iterable[str]) -> str:
    """Every verbatim occurrence of a shown product's title (4 characters or more) in an
    assistant line, quoted (one pass, longest title first, so a title inside another is not
    quoted twice). Not escaped."""
    names = sorted({t for t in titles if len(t.strip()) >= 4}, key=len, reverse=True)
    if not names:
        return text
    return re.sub("|".join(map(re.escape, names)), lambda m: quoted_title(m.group(0)), text)


def chat_text(text: str, titles: Iterable[str] = ()) -> str:
    """A chat message as it goes to the Chatbot (which inserts it as HTML): product titles quoted,
    then everything escaped, so no tag, link or image from a product or a shopper renders."""
    return escape(mark_titles(text, titles))


def new_view(lang: str = "zh") -> dict[str, Any]:
    return {
        "session": f"ui-{uuid.uuid4().hex[:16]}",
        "lang": lang_of(lang),
        "cards": [],
        "constraints": {},
        "expansions": [],
        "details": "",
        "cart": [],
        "compare": "",
        "notice": "",
        "started": False,
    }


def details_html(product: Any) -> str:
    """The details panel (a ``gr.HTML``): the record as text, every value escaped."""
    return f'<div class="sa-details" id="details-text">{escape(details_text(product))}</div>'


def details_text(product: Any) -> str:
    attrs = "; ".join(
        f"{k}: {'/'.join(v) if isinstance(v, list) else v}" for k, v in list(product.attributes.items())[:8]
    )
    lines = [
        product.title,
        f"brand: {product.brand}" if product.brand else "",
        f"price: {product.price:.2f} {product.currency}" if product.price is not None else "",
        f"category: {product.category}" if product.category else "",
        f"attributes: {attrs}" if attrs else "",
        (product.description or "")[:400],
    ]
    return "\n".join(line for line in lines if line)


def edited_constraints(constraints: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """The need after a chip's edit, as the agent will apply it: what the chips show at once,
    before the search runs again (unchanged when the edit is refused)."""
    try:
        need = edit_constraints(Need.model_validate(constraints or {}), ConstraintEdit(**change))
    except ValueError:
        return constraints
    return need.model_dump(mode="json", exclude_defaults=True)


def refined_notice(intent: dict[str, Any] | None, lang: str) -> str:
    """What the notice says when the LLM's reading replaced the products shown first."""
    parts = [label.removesuffix(" ✕") for label, change in chips_of(intent or {}, lang) if "toggle" not in change]
    return t(lang, "refined") + ", ".join(parts) if parts else t(lang, "refined_plain")


def reply_for_chat(text: str, cards: list[dict[str, Any]], lang: str) -> tuple[str, str]:
    """(chat text, comparison panel): a comparison reply's table goes to the panel as HTML and the
    chat keeps what surrounds it (the verdict); any other reply is the chat text as is."""
    table = parse_compare(text)
    if table is None:
        return text, ""
    chat = "\n".join(x for x in (table["before"], table["after"], t(lang, "compare_note")) if x)
    return chat, compare_html(table, cards, lang)


def landing_products(agent: Any, lang: str, k: int = LANDING_K, cache: dict[str, Any] | None = None) -> list[Any]:
    """[(section title, cards)] for a page with no search yet: trending and popular products from
    the ranker's shared knowledge; with no behaviour yet, a few well-rated products in stock from
    several top-level categories of the catalog."""
    catalog = getattr(agent, "catalog", None)
    if catalog is None:
        return []
    ranker = getattr(agent, "ranker", None)
    sections: list[tuple[str, list[dict[str, Any]]]] = []
    seen: set[str] = set()
    if ranker is not None:
        for key, ids in (
            ("trending", ranker.knowledge.trending_items(k * 3)),
            ("popular", ranker.knowledge.popular_items(k * 3)),
        ):
            cards: list[dict[str, Any]] = []
            for pid in ids:
                p = catalog.get(pid)
                if p is not None and pid not in seen and len(cards) < k:
                    seen.add(pid)
                    cards.append(product_card(p))
            if cards:
                sections.append((t(lang, key), cards))
    if not sections:
        cache = cache if cache is not None else {}
        if lang not in cache:
            cache[lang] = [product_card(p) for p in fallback_picks(catalog.products(), lang, k)]
        if cache[lang]:
            sections.append((t(lang, "picks"), cache[lang]))
    return sections


class ChatHandlers:
    """What the page's events do, for one agent: a turn, a chip's edit, a product button, a cart
    line's removal. Each takes and gives the chat history and the view (the ``gr.State``)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.catalog = agent.catalog
        self.picks_cache: dict[str, Any] = {}

    def run_events(
        self, events: Iterator[TurnEvent], history: list[dict[str, Any]], view: dict[str, Any]
    ) -> Iterator[Any]:
        lang = lang_of(view.get("lang"))
        streamed: dict[int, str] = {}
        # the titles an assistant line may quote: the products on screen before and after the turn
        titles = {str(c.get("title") or "") for c in view.get("cards") or []}
        first_ids: list[str] | None = None
        intent: dict[str, Any] | None = None
        view = {**view, "notice": "", "compare": "", "started": True}
        for event in events:
            if isinstance(event, IntentEvent):
                intent = event.intent
                if event.source == "edit":
                    view = {**view, "constraints": event.intent}
            elif isinstance(event, ProductsEvent):
                ids = [str(c.get("id")) for c in event.cards]
                if first_ids is None:
                    first_ids = ids
                elif ids != first_ids:  # the LLM's reading refined the search: say so
                    view = {**view, "notice": refined_notice(intent, lang)}
                    streamed.clear()  # lines already shown were about the products it replaced
                view = {**view, "cards": event.cards}
                titles |= {str(c.get("title") or "") for c in event.cards}
                if not streamed:
                    history[-1]["content"] = escape(t(lang, "writing"))
                yield history, view
            elif isinstance(event, ExpansionsEvent):
                view = {**view, "expansions": [f.model_dump() for f in event.facets][:8]}
            elif isinstance(event, ReplyLineEvent):
                streamed[event.position] = event.text
                text = "\n".join(f"{k}. {x}" for k, x in sorted(streamed.items())) + "\n…"
                history[-1]["content"] = chat_text(text, titles)
                yield history, view
            elif isinstance(event, ReplyEvent):
                text, table = reply_for_chat(event.text, view.get("cards") or [], lang)
                history[-1]["content"] = chat_text(text, titles)
                view = {**view, "compare": table}
                yield history, view
            elif isinstance(event, DoneEvent):
                r = event.result
                view = {
                    **view,
                    "cards": r.cards,
                    "constraints": r.constraints,
                    "expansions": [f.model_dump() for f in r.expansions][:8],
                }
                yield history, view

    def send(self, message: str, history: list[dict[str, Any]], view: dict[str, Any]) -> Iterator[Any]:
        message = (message or "").strip()
        view = view or new_view()
        if not message:
            yield "", history, view
            return
        lang = message_language(message, view.get("lang"))
        view = {**view, "lang": lang, "started": True}
        history = [
            *history,
            {"role": "user", "content": chat_text(message)},
            {"role": "assistant", "content": escape(t(lang, "thinking"))},
        ]
        yield "", history, view
        for h, v in self.run_events(self.agent.turn(view["session"], message), history, view):
            yield "", h, v

    def edit(
        self, change: dict[str, Any], history: list[dict[str, Any]], view: dict[str, Any], label: str = ""
    ) -> Iterator[Any]:
        """A chip clicked: the chips show the edited need at once, then the search runs again."""
        lang = lang_of(view.get("lang"))
        expansions = [f for f in view.get("expansions") or [] if f.get("value") not in change.get("toggle", [])]
        constraints = edited_constraints(view.get("constraints") or {}, change)
        view = {**view, "constraints": constraints, "expansions": expansions}
        history = [
            *history,
            {"role": "user", "content": escape(f"{t(lang, 'edited')} {label}".strip())},
            {"role": "assistant", "content": escape(t(lang, "thinking"))},
        ]
        yield history, view
        yield from self.run_events(self.agent.edit(view["session"], ConstraintEdit(**change)), history, view)

    def feedback(
        self, kind: str, product_id: str, history: list[dict[str, Any]], view: dict[str, Any]
    ) -> Iterator[Any]:
        lang = lang_of(view.get("lang"))
        product = self.catalog.get(product_id)
        if product is None:
            yield history, view
            return
        self.agent.tools.call(
            "record_feedback", {"session_id": view["session"], "product_id": product_id, "event": kind}
        )
        if kind == "click":
            view = {**view, "details": details_html(product)}
            yield history, view
            return
        if kind == "add_to_cart":
            item = {
                "id": product.id,
                "title": product.title,
                "price": product.price,
                "currency": product.currency,
                "category": product.category,
            }
            view = {**view, "cart": cart_add(view.get("cart") or [], item)}
        said = t(lang, "not_this" if kind == "dislike" else "added", t=quoted_title(product.title))
        history = [*history, {"role": "user", "content": escape(said)}]
        if not view.get("constraints") and not view.get("cards"):
            yield history, view  # nothing searched yet (the landing page): the cart is all that changes
            return
        history = [*history, {"role": "assistant", "content": escape(t(lang, "thinking"))}]
        yield history, view
        yield from self.run_events(self.agent.edit(view["session"], ConstraintEdit()), history, view)

    def remove_line(self, product_id: str, history: list[dict[str, Any]], view: dict[str, Any]) -> Any:
        """Out of the cart; the event log has no "remove from cart" event, so only the view changes."""
        lang = lang_of(view.get("lang"))
        line = next((x for x in view.get("cart") or [] if x["id"] == product_id), None)
        if line is None:
            return history, view
        said = t(lang, "removed", t=quoted_title(str(line.get("title") or "")))
        return [*history, {"role": "user", "content": escape(said)}], {
            **view,
            "cart": cart_remove(view.get("cart") or [], product_id),
        }

    def landing(self, lang: str) -> list[Any]:
        return landing_products(self.agent, lang, cache=self.picks_cache)


def build_ui(agent: ShoppingAgent) -> gr.Blocks:
    handlers = ChatHandlers(agent)
    send = handlers.send

    def on_edit(change: dict[str, Any], label: str) -> Any:
        def handler(history: list[dict[str, Any]], v: dict[str, Any]) -> Iterator[Any]:
            yield from handlers.edit(change, history, v, label)

        return handler

    def on_feedback(kind: str, product_id: str) -> Any:
        def handler(history: list[dict[str, Any]], v: dict[str, Any]) -> Iterator[Any]:
            yield from handlers.feedback(kind, product_id, history, v)

        return handler

    def on_remove(product_id: str) -> Any:
        def handler(history: list[dict[str, Any]], v: dict[str, Any]) -> Any:
            return handlers.remove_line(product_id, history, v)

        return handler

    def on_example(text: str) -> Any:
        def handler(history: list[dict[str, Any]], v: dict[str, Any]) -> Iterator[Any]:
            yield from send(text, history, v)

        return handler

    def set_language(choice: str, v: dict[str, Any] | None) -> dict[str, Any]:
        return {**(v or new_view()), "lang": SWITCH.get(choice, "zh")}

    def chrome(v: dict[str, Any] | None) -> tuple[Any, Any, Any]:
        """The page's fixed parts in the view's language: the switch, the send button, the box."""
        lang = lang_of((v or {}).get("lang"))
        return (
            gr.update(value=switch_value(lang)),
            gr.update(value=t(lang, "send")),
            gr.update(placeholder=t(lang, "placeholder")),
        )

    def product_buttons(card: dict[str, Any], lang: str, kinds: Iterable[str], chat: Any, view: Any) -> None:
        with gr.Row():
            pid = str(card["id"])
            for kind in kinds:
                b = gr.Button(t(lang, kind), size="sm", elem_classes=[f"sa-{kind}"])
                b.click(on_feedback(kind, pid), [chat, view], [chat, view])

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        view = gr.State(None)
        with gr.Row(equal_height=True):
            gr.Markdown("### shopassist", elem_id="brand")
            lang_radio = gr.Radio(
                list(SWITCH),
                value=switch_value("zh"),
                show_label=False,
                container=False,
                elem_id="language",
                scale=0,
                min_width=220,
            )
        with gr.Row():
            with gr.Column(scale=5):
                # messages are escaped (chat_text) before they get here; the Chatbot inserts them as
                # HTML, so it also renders no markdown or LaTeX, sanitizes, and keeps no custom tags
                chat = gr.Chatbot(
                    height=440,
                    render_markdown=False,
                    sanitize_html=True,
                    allow_tags=False,
                    latex_delimiters=[],
                    show_label=False,
                    buttons=[
                        "copy"
                    ],  # no "share" (to a hub: this app makes no network calls) nor unlabelled toolbar icons
                    elem_id="chat",
                )
                with gr.Row(equal_height=True):
                    msg = gr.Textbox(
                        placeholder=t("zh", "placeholder"),
                        show_label=False,
                        elem_id="message",
                        autofocus=True,
                        scale=5,
                    )
                    send_btn = gr.Button(t("zh", "send"), variant="primary", elem_id="send", scale=1, min_width=80)

                @gr.render(inputs=[view])
                def side(v: dict[str, Any] | None) -> None:
                    v = v or {}
                    lang = lang_of(v.get("lang"))
                    gr.HTML(f'<div class="sa-section">{html.escape(t(lang, "try"))}</div>')
                    with gr.Row(elem_id="examples"):
                        for example in EXAMPLES[lang]:
                            b = gr.Button(example, size="sm", elem_classes=["sa-example"])
                            b.click(on_example(example), [chat, view], [msg, chat, view])
                    cart = v.get("cart") or []
                    with gr.Group(elem_id="cart"):
                        gr.HTML(cart_header_html(cart, lang))
                        for line in cart:
                            with gr.Row(equal_height=True):
                                gr.HTML(cart_line_html(line, lang))
                                b = gr.Button(
                                    t(lang, "remove"), size="sm", elem_classes=["sa-cart-remove"], scale=0, min_width=60
                                )
                                b.click(on_remove(str(line["id"])), [chat, view], [chat, view])

            with gr.Column(scale=6):

                @gr.render(inputs=[view])
                def panel(v: dict[str, Any] | None) -> None:
                    v = v or {}
                    lang = lang_of(v.get("lang"))
                    if v.get("notice"):
                        gr.HTML(f'<div class="sa-notice" id="notice">{html.escape(v["notice"])}</div>')
                    constraints = v.get("constraints") or {}
                    chips = chips_of(constraints, lang)
                    extra = expansion_chips(v.get("expansions") or [], constraints)
                    if chips:
                        with gr.Row(elem_id="chips"):
                            for label, change in chips:
                                kind = "sa-toggle" if "toggle" in change else "sa-chip"
                                b = gr.Button(label, size="sm", elem_classes=[kind])
                                b.click(on_edit(change, label), [chat, view], [chat, view])
                    if extra:
                        with gr.Row(elem_id="expansions"):
                            for label, change in extra:
                                b = gr.Button(label, size="sm", elem_classes=["sa-expansion"])
                                b.click(on_edit(change, label), [chat, view], [chat, view])
                    if v.get("compare"):  # built by compare_html: escaped
                        gr.HTML(v["compare"])
                    if v.get("details"):  # built by details_html: escaped
                        gr.HTML(v["details"], elem_id="details")
                    cards = v.get("cards") or []
                    if not cards and not v.get("started"):
                        gr.HTML(greeting_html(lang))
                        for title, shown in handlers.landing(lang):
                            gr.HTML(section_html(title))
                            for card in shown:
                                with gr.Group(elem_classes=["sa-product", "sa-landing"]):
                                    gr.HTML(card_html(card, lang))
                                    product_buttons(card, lang, ("click", "add_to_cart"), chat, view)
                        return
                    for card in cards:
                        with gr.Group(elem_classes=["sa-product"]):
                            gr.HTML(card_html(card, lang))
                            product_buttons(card, lang, BUTTONS, chat, view)

        demo.load(new_view, None, view)
        lang_radio.input(set_language, [lang_radio, view], [view])
        view.change(chrome, [view], [lang_radio, send_btn, msg])
        msg.submit(send, [msg, chat, view], [msg, chat, view])
        send_btn.click(send, [msg, chat, view], [msg, chat, view])
    return demo


# gradio's routes that take a file into its temporary folder; this app has no upload feature
UPLOAD_ROUTES = frozenset({"upload", "process_recording"})


class LocalGuard:
    """ASGI middleware in front of the gradio app: refuses file uploads (403) and, when
    ``allowed_hosts`` is given (the UI is bound to a loopback address), every request whose Host
    header names another host (400): a page on another site that rebinds its DNS name to
    127.0.0.1 must not reach the local chat."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str] | None = None, address: str = "") -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.address = address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal: tuple[int, str] | None = None
        if self.allowed_hosts is not None:
            raw = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if host_name(raw) not in self.allowed_hosts:
                refusal = (
                    400,
                    f"Refused: Host header {raw[:100]!r} is not this local app's address. shopassist's chat "
                    f"answers only on {self.address or 'its loopback address'}; open that address in your browser.",
                )
        route = str(scope.get("path", "")).rstrip("/").rsplit("/", 1)[-1]
        if refusal is None and scope["type"] == "http" and scope.get("method") == "POST" and route in UPLOAD_ROUTES:
            refusal = (403, "Refused: shopassist's chat takes no file uploads.")
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refusal[1][:120]})
        else:
            await PlainTextResponse(refusal[1], status_code=refusal[0])(scope, receive, send)


def guard_middleware(host: str, port: int) -> Middleware:
    """The LocalGuard for a UI bound to ``host``: Host headers are checked when it is a loopback
    address (bound to 0.0.0.0 or a LAN address, the UI is meant to be reached by other names)."""
    allowed = LOOPBACK | {host.lower()} if is_loopback(host) else None
    shown = f"[{host}]" if ":" in host else host
    return Middleware(LocalGuard, allowed_hosts=allowed, address=f"http://{shown}:{port}/")


def launch(agent: ShoppingAgent, host: str = "127.0.0.1", port: int = 7860, **kwargs: Any) -> gr.Blocks:
    """Serves the chat on host:port (blocks until stopped, unless ``prevent_thread_lock=True``);
    returns the running Blocks."""
    demo = build_ui(agent)
    demo.queue(default_concurrency_limit=1)  # one turn at a time: the embedded LLM has 2 cores
    app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
    app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), guard_middleware(host, port)]
    # `shopassist ui` prints the address itself; quiet drops gradio's banner and its "share=True" hint
    kwargs.setdefault("quiet", True)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        show_error=False,
        footer_links=[],
        css=CSS,
        allowed_paths=[],
        max_file_size=UPLOAD_LIMIT,
        app_kwargs=app_kwargs,
        **kwargs,
    )
    return demo

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
* Product cards: image (or a placeholder), title, price with currency, stock, and the reasons it
  was suggested; buttons for details, add to cart and "not this" send behaviour events and show
  the new suggestions at once (the disliked product goes; carted items pull similar ones up).
* The parsed need is shown as chips: removing one (✕) or toggling must-have/excluded edits the
  constraints directly and searches again; catalog expansions (+ 修身 12) add a must-have.
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
from assistant.events import DoneEvent, ProductsEvent, ReplyEvent, ReplyLineEvent, TurnEvent
from assistant.grounding import clean_text, escape
from assistant.state import ConstraintEdit
from ui.api_guard import host_name, is_loopback

TITLE = "shopassist"
PLACEHOLDER = "牛仔裤女 便宜点的 不要破洞 · waterproof hiking boots under $100, not brown"
BUTTONS = (("click", "详情 Details"), ("add_to_cart", "加购 Add to cart"), ("dislike", "不要这个 Not this"))
EXAMPLES = ["女士羽绒服 1000以内", "面霜 补水 不要含酒精的", "waterproof hiking boots under $100, not brown"]

CSS = """
.sa-card {border: 1px solid #ddd; border-radius: 8px; padding: 8px; display: flex; gap: 10px; align-items: flex-start}
.sa-img {width: 72px; height: 72px; border-radius: 6px; object-fit: cover; background: #f0f0f0; flex: none;
         display: flex; align-items: center; justify-content: center; font-size: 28px; color: #888}
.sa-title {font-weight: 600}
.sa-price {color: #c0392b; font-weight: 600}
.sa-stock {color: #666; font-size: 0.9em}
.sa-reasons {color: #2c6e49; font-size: 0.85em}
.sa-group {display: inline-block; background: #eef3fb; color: #1d4e89; border-radius: 4px; padding: 0 6px; font-size: 0.8em}
.sa-details {white-space: pre-wrap; border: 1px solid #ddd; border-radius: 8px; padding: 8px; font-size: 0.9em}
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


def new_view() -> dict[str, Any]:
    return {"session": f"ui-{uuid.uuid4().hex[:16]}", "cards": [], "constraints": {}, "expansions": [], "details": ""}


def card_html(card: dict[str, Any]) -> str:
    """One product card; every value escaped."""
    e = html.escape
    title = e(str(card.get("title", "")))
    price = card.get("price")
    price_text = f"{price:.2f} {e(str(card.get('currency') or ''))}" if isinstance(price, int | float) else "—"
    stock = card.get("stock")
    stock_text = (
        "库存未知 / stock unknown"
        if stock is None
        else ("缺货 / sold out" if stock <= 0 else f"有货 / in stock ({stock})")
    )
    image = str(card.get("image_url") or "")
    if image.startswith(("http://", "https://")):
        img = f'<img class="sa-img" src="{e(image, quote=True)}" alt="" referrerpolicy="no-referrer">'
    else:
        img = f'<div class="sa-img">{e(title[:1] or "?")}</div>'
    brand = f" · {e(str(card['brand']))}" if card.get("brand") else ""
    reasons = "; ".join(e(str(r)) for r in card.get("reasons") or [])
    # a gift idea's group, or the label of an alternative shown because nothing matched
    label = (
        e(str(card["group"]))
        if card.get("group")
        else ("相近商品 / not an exact match" if card.get("alternative") else "")
    )
    return (
        f'<div class="sa-card" data-product-id="{e(str(card.get("id")), quote=True)}">{img}<div>'
        + (f'<div class="sa-group">{label}</div>' if label else "")
        + f'<div class="sa-title">{e(str(card.get("rank") or ""))}. {title}</div>'
        f'<div><span class="sa-price">{price_text}</span>{brand}</div>'
        f'<div class="sa-stock">{stock_text}</div>'
        + (f'<div class="sa-reasons">为什么推荐 / why: {reasons}</div>' if reasons else "")
        + "</div></div>"
    )


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


def chips_of(constraints: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, edit) for each part of the parsed need."""
    out: list[tuple[str, dict[str, Any]]] = []
    if constraints.get("category"):
        out.append((f"类目 {constraints['category'].split(' > ')[-1]} ✕", {"clear_category": True}))
    for v in constraints.get("required", []):
        out.append((f"✓ {v} ✕", {"remove": [v]}))
        out.append((f"⇄ 不要 {v}", {"toggle": [v]}))
    for v in constraints.get("excluded", []):
        out.append((f"不要 {v} ✕", {"remove": [v]}))
    for b in constraints.get("brands", []):
        out.append((f"品牌 {b} ✕", {"remove": [b]}))
    for b in constraints.get("exclude_brands", []):
        out.append((f"不要品牌 {b} ✕", {"remove": [b]}))
    lo, hi = constraints.get("min_price"), constraints.get("max_price")
    if lo is not None or hi is not None:
        label = (
            f"{lo:g}–{hi:g}" if lo is not None and hi is not None else (f"≥ {lo:g}" if lo is not None else f"≤ {hi:g}")
        )
        out.append((f"价格 {label} ✕", {"clear_price": True}))
    return out


def build_ui(agent: ShoppingAgent) -> gr.Blocks:
    catalog = agent.catalog

    def run_events(events: Iterator[TurnEvent], history: list[dict[str, Any]], view: dict[str, Any]) -> Iterator[Any]:
        streamed: dict[int, str] = {}
        # the titles an assistant line may quote: the products on screen before and after the turn
        titles = {str(c.get("title") or "") for c in view.get("cards") or []}
        for event in events:
            if isinstance(event, ProductsEvent):
                view = {**view, "cards": event.cards}
                titles |= {str(c.get("title") or "") for c in event.cards}
                yield history, view
            elif isinstance(event, ReplyLineEvent):
                streamed[event.position] = event.text
                text = "\n".join(f"{k}. {t}" for k, t in sorted(streamed.items())) + "\n…"
                history[-1]["content"] = chat_text(text, titles)
                yield history, view
            elif isinstance(event, ReplyEvent):
                history[-1]["content"] = chat_text(event.text, titles)
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

    def send(message: str, history: list[dict[str, Any]], view: dict[str, Any]) -> Iterator[Any]:
        message = (message or "").strip()
        view = view or new_view()
        if not message:
            yield "", history, view
            return
        history = [*history, {"role": "user", "content": chat_text(message)}, {"role": "assistant", "content": "…"}]
        yield "", history, view
        for h, v in run_events(agent.turn(view["session"], message), history, view):
            yield "", h, v

    def edit(change: dict[str, Any], history: list[dict[str, Any]], view: dict[str, Any]) -> Iterator[Any]:
        note = "（已修改条件 / need edited）"
        history = [*history, {"role": "assistant", "content": note}]
        yield from run_events(agent.edit(view["session"], ConstraintEdit(**change)), history, view)

    def feedback(kind: str, product_id: str, history: list[dict[str, Any]], view: dict[str, Any]) -> Iterator[Any]:
        product = catalog.get(product_id)
        if product is None:
            yield history, view
            return
        agent.tools.call("record_feedback", {"session_id": view["session"], "product_id": product_id, "event": kind})
        if kind == "click":
            view = {**view, "details": details_html(product)}
            yield history, view
            return
        said = {
            "dislike": f"不看这个了 / not this: {quoted_title(product.title)}",
            "add_to_cart": f"已加入购物车 / added to cart: {quoted_title(product.title)}",
        }[kind]
        history = [*history, {"role": "user", "content": escape(said)}, {"role": "assistant", "content": "…"}]
        yield from run_events(agent.edit(view["session"], ConstraintEdit()), history, view)

    def on_edit(change: dict[str, Any]) -> Any:
        def handler(history: list[dict[str, Any]], v: dict[str, Any]) -> Iterator[Any]:
            yield from edit(change, history, v)

        return handler

    def on_feedback(kind: str, product_id: str) -> Any:
        def handler(history: list[dict[str, Any]], v: dict[str, Any]) -> Iterator[Any]:
            yield from feedback(kind, product_id, history, v)

        return handler

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        view = gr.State(None)
        gr.Markdown("### shopassist · 购物助手")
        with gr.Row():
            with gr.Column(scale=5):
                # messages are escaped (chat_text) before they get here; the Chatbot inserts them as
                # HTML, so it also renders no markdown or LaTeX, sanitizes, and keeps no custom tags
                chat = gr.Chatbot(
                    height=460,
                    render_markdown=False,
                    sanitize_html=True,
                    allow_tags=False,
                    latex_delimiters=[],
                    label="对话 / chat",
                    elem_id="chat",
                )
                msg = gr.Textbox(placeholder=PLACEHOLDER, show_label=False, elem_id="message", autofocus=True)
                with gr.Row():
                    send_btn = gr.Button("发送 / Send", variant="primary", elem_id="send")
                    gr.Examples(EXAMPLES, inputs=msg, label="试试 / try")
            with gr.Column(scale=6):

                @gr.render(inputs=[view])
                def need(v: dict[str, Any] | None) -> None:
                    v = v or {}
                    chips = chips_of(v.get("constraints") or {})
                    expansions = v.get("expansions") or []
                    if not chips and not expansions:
                        return
                    with gr.Row(elem_id="chips"):
                        for label, change in chips:
                            b = gr.Button(label, size="sm", elem_classes=["sa-chip"])
                            b.click(on_edit(change), [chat, view], [chat, view])
                        for f in expansions:
                            b = gr.Button(f"+ {f['value']} ({f['count']})", size="sm", elem_classes=["sa-expansion"])
                            b.click(on_edit({"toggle": [f["value"]]}), [chat, view], [chat, view])

                @gr.render(inputs=[view])
                def cards(v: dict[str, Any] | None) -> None:
                    v = v or {}
                    if v.get("details"):  # built by details_html: escaped
                        gr.HTML(v["details"], label="详情 / details", elem_id="details")
                    for card in v.get("cards") or []:
                        with gr.Group(elem_classes=["sa-product"]):
                            gr.HTML(card_html(card))
                            with gr.Row():
                                pid = str(card["id"])
                                for kind, label in BUTTONS:
                                    b = gr.Button(label, size="sm", elem_classes=[f"sa-{kind}"])
                                    b.click(on_feedback(kind, pid), [chat, view], [chat, view])

        demo.load(new_view, None, view)
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

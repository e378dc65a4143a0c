"""The shopping chat (Gradio): what `make run` opens on 127.0.0.1.

One browser session = one shopassist session: a ``gr.State`` holds its id (a fresh random id per
page load), so two tabs or two shoppers never share history, constraints or behaviour.

* The chat streams each copy line as soon as it has passed the grounding check; the final reply
  replaces it. Text is shown as plain text (``render_markdown=False``) and escaped in the cards:
  nothing a product or a model writes can inject markup.
* Product cards: image (or a placeholder), title, price with currency, stock, and the reasons it
  was suggested; buttons for details, add to cart and "not this" send behaviour events and show
  the new suggestions at once (the disliked product goes; carted items pull similar ones up).
* The parsed need is shown as chips: removing one (✕) or toggling must-have/excluded edits the
  constraints directly and searches again; catalog expansions (+ 修身 12) add a must-have.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterator
from typing import Any

import gradio as gr

from assistant.agent import ShoppingAgent
from assistant.events import DoneEvent, ProductsEvent, ReplyEvent, ReplyLineEvent, TurnEvent
from assistant.state import ConstraintEdit

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
"""


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
        + f'<div class="sa-title">{card.get("rank", "")}. {title}</div>'
        f'<div><span class="sa-price">{price_text}</span>{brand}</div>'
        f'<div class="sa-stock">{stock_text}</div>'
        + (f'<div class="sa-reasons">为什么推荐 / why: {reasons}</div>' if reasons else "")
        + "</div></div>"
    )


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
        for event in events:
            if isinstance(event, ProductsEvent):
                view = {**view, "cards": event.cards}
                yield history, view
            elif isinstance(event, ReplyLineEvent):
                streamed[event.position] = event.text
                history[-1]["content"] = "\n".join(f"{k}. {t}" for k, t in sorted(streamed.items())) + "\n…"
                yield history, view
            elif isinstance(event, ReplyEvent):
                history[-1]["content"] = event.text
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
        history = [*history, {"role": "user", "content": message}, {"role": "assistant", "content": "…"}]
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
            view = {**view, "details": details_text(product)}
            yield history, view
            return
        said = {
            "dislike": f"不看这个了 / not this: {product.title[:40]}",
            "add_to_cart": f"已加入购物车 / added to cart: {product.title[:40]}",
        }[kind]
        history = [*history, {"role": "user", "content": said}, {"role": "assistant", "content": "…"}]
        yield from run_events(agent.edit(view["session"], ConstraintEdit()), history, view)

    def on_edit(change: dict[str, Any]) -> Any:
        def handler(history: list[dict[str, Any]], v: dict[str, Any]) -> Iterator[Any]:
            yield from edit(change, history, v)

        return handler

    def on_feedback(kind: str, product_id: str) -> Any:
        def handler(history: list[dict[str, Any]], v: dict[str, Any]) -> Iterator[Any]:
            yield from feedback(kind, product_id, history, v)

        return handler

    with gr.Blocks(title=TITLE) as demo:
        view = gr.State(None)
        gr.Markdown("### shopassist · 购物助手")
        with gr.Row():
            with gr.Column(scale=5):
                chat = gr.Chatbot(height=460, render_markdown=False, label="对话 / chat", elem_id="chat")
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
                    if v.get("details"):
                        gr.Textbox(v["details"], label="详情 / details", lines=4, interactive=False, elem_id="details")
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


def launch(agent: ShoppingAgent, host: str = "127.0.0.1", port: int = 7860, **kwargs: Any) -> None:
    demo = build_ui(agent)
    demo.queue(default_concurrency_limit=1)  # one turn at a time: the embedded LLM has 2 cores
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        show_error=False,
        footer_links=[],
        css=CSS,
        allowed_paths=[],
        **kwargs,
    )

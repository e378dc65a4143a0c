"""The ``shopassist`` command line.

Every command takes ``--home DIR`` (or SHOPASSIST_HOME) and the backend options; ``--json``
prints machine-readable output on stdout while progress and messages go to stderr.
Exit codes: 0 success, 1 a runtime failure, 2 a usage error (bad arguments, missing files).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from shopassist.config import EMBEDDER_BACKENDS, Settings
from shopassist.errors import ShopAssistError, UsageError

_EMPTY_CATALOG = "The catalog under {home} is empty: run `shopassist demo` once or `shopassist catalog ingest FILE`."


def _dump(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--home and backend options on every command; they build ``settings``."""

    @click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data folder for the catalog and indexes [env SHOPASSIST_HOME; default ~/.shopassist].",
    )
    @click.option(
        "--chroma-host",
        default=None,
        help="Use a Chroma server at this host instead of embedded Chroma [env SHOPASSIST_CHROMA_HOST].",
    )
    @click.option(
        "--chroma-port", type=int, default=None, help="Chroma server port [env SHOPASSIST_CHROMA_PORT; default 8000]."
    )
    @click.option(
        "--embedder",
        type=click.Choice(EMBEDDER_BACKENDS),
        default=None,
        help="Embedding backend [env SHOPASSIST_EMBEDDER; default use].",
    )
    @click.option("--embedder-path", default=None, help="Local model folder for --embedder transformers.")
    @click.option(
        "--embedder-url",
        default=None,
        help="OpenAI-compatible base URL for --embedder openai, e.g. http://127.0.0.1:8000/v1.",
    )
    @click.option("--embedder-model", default=None, help="Model name for --embedder openai.")
    @functools.wraps(fn)
    def wrapper(home, chroma_host, chroma_port, embedder, embedder_path, embedder_url, embedder_model, **kwargs):  # type: ignore[no-untyped-def]
        try:
            settings = Settings.from_env(
                home=home,
                chroma_host=chroma_host,
                chroma_port=chroma_port,
                embedder=embedder,
                embedder_path=embedder_path,
                embedder_url=embedder_url,
                embedder_model=embedder_model,
            )
            return fn(settings=settings, **kwargs)
        except UsageError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except ShopAssistError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def llm_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--llm-* flags; they build ``llm_settings`` (None with --no-llm)."""

    @click.option(
        "--llm-base-url",
        default=None,
        help="OpenAI-compatible server (vLLM, llama.cpp ...), e.g. http://127.0.0.1:8000/v1 [env SHOPASSIST_LLM_BASE_URL; default: the embedded model].",
    )
    @click.option(
        "--llm-model",
        default=None,
        help="Model name on that server [env SHOPASSIST_LLM_MODEL; default: its first model].",
    )
    @click.option("--llm-api-key", default=None, help="Bearer key for that server [env SHOPASSIST_LLM_API_KEY].")
    @click.option(
        "--llm-gguf",
        default=None,
        type=click.Path(dir_okay=False),
        help="Another local GGUF for the embedded server [env SHOPASSIST_LLM_GGUF].",
    )
    @click.option("--no-llm", is_flag=True, help="Rules and templates only (no model).")
    @functools.wraps(fn)
    def wrapper(llm_base_url, llm_model, llm_api_key, llm_gguf, no_llm, **kwargs):  # type: ignore[no-untyped-def]
        from assistant.llm import LLMSettings

        llm_settings = (
            None
            if no_llm
            else LLMSettings.from_env(base_url=llm_base_url, model=llm_model, api_key=llm_api_key, gguf=llm_gguf)
        )
        return fn(llm_settings=llm_settings, **kwargs)

    return wrapper


@contextlib.contextmanager
def _llm(llm_settings: Any, settings: Settings) -> Iterator[Any]:
    """The configured LLM for one command (None with --no-llm); the embedded server stops after."""
    if llm_settings is None:
        yield None
        return
    from assistant.llm import open_llm

    llm = open_llm(llm_settings, settings.home)
    try:
        yield llm
    finally:
        llm.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shopassist")
def main() -> None:
    """shopassist: conversational shopping search for Chinese and English catalogs."""


# -- catalog ------------------------------------------------------------------------------------
@main.group()
def catalog() -> None:
    """Ingest, delete and inspect catalog products."""


@catalog.command("ingest")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "json", "csv"]),
    default=None,
    help="Override the format guessed from the file name.",
)
@click.option(
    "--batch-size", type=click.IntRange(1, 10000), default=256, show_default=True, help="Rows per committed batch."
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write rejected rows [default: HOME/rejects/].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@common_options
def catalog_ingest(
    settings: Settings, file: Path, fmt: str | None, batch_size: int, rejects: Path | None, as_json: bool
) -> None:
    """Upsert products from a JSONL, JSON or CSV FILE; bad rows go to a rejects file."""
    from retrieval import Catalog, ingest_file

    cat = Catalog(settings)
    report = ingest_file(
        cat, file, fmt=fmt, batch_size=batch_size, progress=sys.stderr.isatty() or not as_json, rejects_path=rejects
    )
    summary = report.summary()
    if as_json:
        _dump(summary)
    else:
        click.echo(
            f"{report.file}: {report.rows} rows, {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.rejected} rejected ({report.seconds:.1f} s)"
        )
        for r in report.rejects[:10]:
            click.echo(f"  line {r.line}: {r.reason}", err=True)
        if report.rejected > 10:
            click.echo(f"  ... and {report.rejected - 10} more", err=True)
        if report.rejects_file:
            click.echo(f"rejected rows written to {report.rejects_file}", err=True)


@catalog.command("delete")
@click.argument("ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True)
@common_options
def catalog_delete(settings: Settings, ids: tuple[str, ...], as_json: bool) -> None:
    """Delete products by ID."""
    from retrieval import Catalog

    deleted = Catalog(settings).delete(list(ids))
    missing = [i for i in ids if i not in deleted]
    if as_json:
        _dump({"deleted": deleted, "not_found": missing})
    else:
        click.echo(f"deleted {len(deleted)} product(s)" + (f"; not found: {', '.join(missing)}" if missing else ""))


@catalog.command("get")
@click.argument("product_id")
@common_options
def catalog_get(settings: Settings, product_id: str) -> None:
    """Print one product as JSON."""
    from retrieval import Catalog

    product = Catalog(settings).get(product_id)
    if product is None:
        raise UsageError(f"No product with id {product_id!r} under {settings.home}.")
    _dump(product.record())


@catalog.command("stats")
@click.option("--json", "as_json", is_flag=True)
@common_options
def catalog_stats(settings: Settings, as_json: bool) -> None:
    """Counts per language, currency and top-level category."""
    from collections import Counter

    from retrieval import Catalog

    cat = Catalog(settings)
    products = list(cat.products())
    stats = {
        "home": str(settings.home),
        "products": len(products),
        "vectors": cat.vectors.count(),
        "language": dict(Counter(p.language for p in products)),
        "currency": dict(Counter(p.currency for p in products)),
        "top_categories": dict(Counter((p.category_levels or ["(none)"])[0] for p in products).most_common(15)),
    }
    if as_json:
        _dump(stats)
    else:
        for key, value in stats.items():
            click.echo(f"{key}: {value}")


@catalog.command("reindex")
@common_options
def catalog_reindex(settings: Settings) -> None:
    """Rebuild every vector and token list (after changing the embedder or tokenizer)."""
    from retrieval import Catalog

    n = Catalog(settings).reindex(progress=True)
    click.echo(f"reindexed {n} products")


# -- search ------------------------------------------------------------------------------------
def _filters(min_price, max_price, brand, exclude_brand, category, in_stock, exclude):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from shopassist.models import SearchFilters

    try:
        return SearchFilters(
            min_price=min_price,
            max_price=max_price,
            brands=list(brand),
            exclude_brands=list(exclude_brand),
            category=category,
            in_stock=in_stock,
            exclude_terms=list(exclude),
        )
    except ValidationError as exc:
        raise UsageError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


@main.command()
@click.argument("query")
@click.option("--top-k", type=click.IntRange(1, 500), default=10, show_default=True)
@click.option("--min-price", type=float, default=None)
@click.option("--max-price", type=float, default=None)
@click.option("--brand", multiple=True, help="Only these brands (repeatable).")
@click.option("--exclude-brand", multiple=True, help="Not these brands (repeatable).")
@click.option("--category", default=None, help="Category path prefix ('服饰 > 女装') or a category name.")
@click.option("--in-stock", is_flag=True, help="Only products in stock.")
@click.option(
    "--exclude", multiple=True, help="Drop products whose title/brand/attributes contain this text (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of results.")
@common_options
def search(
    settings: Settings,
    query: str,
    top_k: int,
    min_price,
    max_price,
    brand,
    exclude_brand,
    category,
    in_stock,
    exclude,
    as_json: bool,
) -> None:  # type: ignore[no-untyped-def]
    """Hybrid search of the catalog."""
    from retrieval import Catalog, HybridRetriever

    filters = _filters(min_price, max_price, brand, exclude_brand, category, in_stock, exclude)
    cat = Catalog(settings)
    if len(cat) == 0:
        raise UsageError(f"The catalog under {settings.home} is empty: run `shopassist catalog ingest FILE` first.")
    results = HybridRetriever(cat).search(query, filters, top_k=top_k)
    if as_json:
        _dump([c.summary() for c in results])
        return
    if not results:
        click.echo("no products match; try fewer filters")
    for i, c in enumerate(results, 1):
        p = c.product
        price = f"{p.price:.2f} {p.currency}" if p.price is not None else "price n/a"
        stock = "" if p.stock is None else (" [sold out]" if p.stock == 0 else f" [stock {p.stock}]")
        click.echo(
            f"{i:>2}. {p.title}  —  {price}{stock}  ({p.brand or 'no brand'}; {p.category or 'uncategorised'}) id={p.id}"
        )


# -- demo ----------------------------------------------------------------------------------------
@main.command()
@click.option(
    "--catalog",
    "catalog_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Catalog to load [default: the bundled bilingual demo catalog].",
)
@click.option("--top-k", type=click.IntRange(1, 50), default=8, show_default=True)
@common_options
def demo(settings: Settings, catalog_file: Path | None, top_k: int) -> None:
    """Load the demo catalog (once) and open an interactive search prompt."""
    from retrieval import Catalog, HybridRetriever, ingest_file
    from shopassist.resources import demo_catalog_path

    cat = Catalog(settings)
    source = catalog_file or demo_catalog_path()
    click.echo(f"loading {source} into {settings.home} (only new or changed rows are embedded) ...", err=True)
    report = ingest_file(cat, source, progress=True)
    click.echo(
        f"catalog ready: {len(cat)} products ({report.added} added, {report.updated} updated, {report.rejected} rejected)",
        err=True,
    )
    retriever = HybridRetriever(cat)
    click.echo("Type a query (Chinese or English); empty line or Ctrl-D to quit.", err=True)
    while True:
        try:
            query = input("search> ").strip()
        except (EOFError, KeyboardInterrupt):
            click.echo("", err=True)
            return
        if not query:
            return
        for i, c in enumerate(retriever.search(query, top_k=top_k), 1):
            p = c.product
            price = f"{p.price:.2f} {p.currency}" if p.price is not None else "price n/a"
            click.echo(f"{i:>2}. {p.title}  —  {price}  ({p.brand or 'no brand'})")


@main.command("ui")
@click.option(
    "--catalog",
    "catalog_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Catalog to load [default: the bundled bilingual demo catalog].",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@llm_options
@common_options
def ui_command(settings: Settings, llm_settings: Any, catalog_file: Path | None, host: str, port: int) -> None:
    """The shopping chat in the browser: loads the catalog (once), starts the LLM, serves the UI."""
    from assistant.agent import ShoppingAgent
    from assistant.state import SessionStore
    from ranking.ranker import Ranker
    from retrieval import Catalog, ingest_file
    from shopassist.resources import demo_catalog_path
    from ui.app import launch

    cat = Catalog(settings)
    source = catalog_file or demo_catalog_path()
    click.echo(f"loading {source} into {settings.home} (only new or changed rows are embedded) ...", err=True)
    report = ingest_file(cat, source, progress=True)
    click.echo(f"catalog ready: {len(cat)} products ({report.added} added, {report.rejected} rejected)", err=True)
    with _llm(llm_settings, settings) as llm:
        ranker = Ranker.open(cat, settings.home)
        agent = ShoppingAgent(cat, SessionStore(settings.home / "sessions"), llm=llm, ranker=ranker)
        click.echo(f"shopassist chat on http://{host}:{port}  (Ctrl-C to stop)", err=True)
        launch(agent, host=host, port=port)


# -- ask ------------------------------------------------------------------------------------------------
@main.command()
@click.argument("message")
@click.option(
    "--session",
    "session_id",
    default="cli",
    show_default=True,
    help="Conversation id; its state persists under HOME/sessions.",
)
@click.option(
    "--catalog",
    "catalog_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Load this catalog first (only new or changed rows are embedded).",
)
@click.option("--json", "as_json", is_flag=True, help="Print intent, expansions, products, reply and timings as JSON.")
@llm_options
@common_options
def ask(
    settings: Settings, llm_settings: Any, message: str, session_id: str, catalog_file: Path | None, as_json: bool
) -> None:
    """One turn of the shopping conversation SESSION."""
    from assistant.agent import ShoppingAgent
    from assistant.state import SessionStore
    from ranking.ranker import Ranker
    from retrieval import Catalog, ingest_file

    cat = Catalog(settings)
    if catalog_file is not None:
        ingest_file(cat, catalog_file)
    if len(cat) == 0:
        raise UsageError(_EMPTY_CATALOG.format(home=settings.home))
    with _llm(llm_settings, settings) as llm:
        agent = ShoppingAgent(
            cat, SessionStore(settings.home / "sessions"), llm=llm, ranker=Ranker.open(cat, settings.home)
        )
        if as_json:
            _dump(agent.ask(session_id, message).public())
            return
        result = None
        for event in agent.turn(session_id, message):
            if event.type == "products" and result is None:
                click.echo(f"[{len(event.data)} products]", err=True)
            elif event.type == "done":
                result = event.data
        assert result is not None
        click.echo(result.reply)
        if result.expansions:
            click.echo("refine: " + "  ".join(f"{f.value}({f.count})" for f in result.expansions), err=True)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (reads are open to it).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--api-key",
    envvar="SHOPASSIST_API_KEY",
    default=None,
    help="Key for catalog writes (env SHOPASSIST_API_KEY); without it writes are refused.",
)
@click.option("--rate", default=600, show_default=True, type=click.IntRange(1), help="Requests per minute per client.")
@llm_options
@common_options
def serve(settings: Settings, llm_settings: Any, host: str, port: int, api_key: str | None, rate: int) -> None:
    """The HTTP API (tools, OpenAI-compatible chat, events, catalog writes) with uvicorn."""
    import uvicorn

    from assistant.agent import ShoppingAgent
    from assistant.state import SessionStore
    from ranking.ranker import Ranker
    from retrieval import Catalog
    from ui.api import create_app

    cat = Catalog(settings)
    if len(cat) == 0:
        raise UsageError(_EMPTY_CATALOG.format(home=settings.home))
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        click.echo(f"warning: serving on {host} without SHOPASSIST_API_KEY: reads are open, writes refused", err=True)
    with _llm(llm_settings, settings) as llm:
        ranker = Ranker.open(cat, settings.home)
        agent = ShoppingAgent(cat, SessionStore(settings.home / "sessions"), llm=llm, ranker=ranker)
        app = create_app(cat, agent, ranker, api_key=api_key, rate_per_minute=rate)
        click.echo(f"shopassist API on http://{host}:{port} (OpenAPI: /docs, /openapi.json)", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command("event")
@click.option("--session", "session_id", default=None, help="Session the event belongs to.")
@click.option(
    "--type",
    "event_type",
    type=click.Choice(["view", "click", "add_to_cart", "purchase", "dislike", "search"]),
    default=None,
    help="What the shopper did.",
)
@click.option("--product", "product_id", default=None, help="The product (every type but search).")
@click.option("--query", default=None, help="The search text (type search).")
@click.option(
    "--file",
    "events_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Append a JSONL file of events instead (session_id, type, product_id | query, ts).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options
def event(
    settings: Settings,
    session_id: str | None,
    event_type: str | None,
    product_id: str | None,
    query: str | None,
    events_file: Path | None,
    as_json: bool,
) -> None:
    """Record behaviour events in the durable event log (the next ranking of the session uses them)."""
    from ranking.events import SQLiteEventLog

    rows: list[Any] = []
    bad: list[tuple[int, str]] = []
    if events_file is not None:
        with open(events_file, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((line_no, json.loads(line)))
                except json.JSONDecodeError as exc:
                    bad.append((line_no, f"not JSON: {exc.msg}"))
    elif session_id and event_type:
        rows.append((1, {"session_id": session_id, "type": event_type, "product_id": product_id, "query": query}))
    else:
        raise UsageError("Give --session and --type (and --product or --query), or --file events.jsonl.")
    with SQLiteEventLog(settings.home / "events.sqlite") as log:
        result = log.append([r for _, r in rows])
        total = len(log)
    bad += [(rows[i][0], reason) for i, reason in result.rejected]
    out = {
        "accepted": len(result.accepted),
        "rejected": [{"line": n, "reason": r} for n, r in sorted(bad)],
        "last_seq": result.accepted[-1].seq if result.accepted else None,
        "events_in_log": total,
    }
    if as_json:
        _dump(out)
    else:
        click.echo(f"accepted {out['accepted']}, rejected {len(bad)} (log holds {total} events)")
        for n, r in sorted(bad)[:20]:
            click.echo(f"  line {n}: {r}", err=True)
    if bad and not result.accepted:
        raise SystemExit(1)


@main.command("edit")
@click.option("--session", "session_id", default="cli", show_default=True, help="Conversation id to edit.")
@click.option("--remove", multiple=True, help="Drop this value (chip) wherever it is; repeatable.")
@click.option("--require", multiple=True, help="Products must have this value; repeatable.")
@click.option("--exclude", multiple=True, help="Products must not have this value; repeatable.")
@click.option("--toggle", multiple=True, help="Move a value between must-have and excluded; repeatable.")
@click.option("--price-min", type=float, default=None, help="New lower price bound.")
@click.option("--price-max", type=float, default=None, help="New upper price bound.")
@click.option("--clear-price", is_flag=True, help="Drop both price bounds.")
@click.option("--category", default=None, help="New category.")
@click.option("--clear-category", is_flag=True, help="Drop the category.")
@click.option("--query", default=None, help="New search text.")
@click.option("--show", is_flag=True, help="Only print the session's current constraints; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the turn as JSON (as `ask --json`).")
@llm_options
@common_options
def edit(
    settings: Settings,
    llm_settings: Any,
    session_id: str,
    remove: tuple[str, ...],
    require: tuple[str, ...],
    exclude: tuple[str, ...],
    toggle: tuple[str, ...],
    price_min: float | None,
    price_max: float | None,
    clear_price: bool,
    category: str | None,
    clear_category: bool,
    query: str | None,
    show: bool,
    as_json: bool,
) -> None:
    """Edit the parsed need of SESSION directly (what the UI's intent chips do) and search again."""
    from pydantic import ValidationError

    from assistant.agent import ShoppingAgent
    from assistant.state import ConstraintEdit, SessionStore
    from ranking.ranker import Ranker
    from retrieval import Catalog

    store = SessionStore(settings.home / "sessions")
    if show:
        _dump(store.load(session_id).constraints.model_dump(mode="json"))
        return
    try:
        change = ConstraintEdit(
            remove=list(remove),
            require=list(require),
            exclude=list(exclude),
            toggle=list(toggle),
            price_min=price_min,
            price_max=price_max,
            clear_price=clear_price,
            category=category,
            clear_category=clear_category,
            query=query,
        )
    except ValidationError as exc:
        raise UsageError(
            "; ".join(f"{'.'.join(map(str, e['loc'])) or 'edit'}: {e['msg']}" for e in exc.errors())
        ) from None
    if change.is_empty():
        raise UsageError("Nothing to edit: give --remove, --require, --exclude, --toggle, a price or a category.")
    cat = Catalog(settings)
    if len(cat) == 0:
        raise UsageError(_EMPTY_CATALOG.format(home=settings.home))
    with _llm(llm_settings, settings) as llm:
        agent = ShoppingAgent(cat, store, llm=llm, ranker=Ranker.open(cat, settings.home))
        result = agent.apply_edit(session_id, change)
    if as_json:
        _dump(result.public())
        return
    click.echo(result.reply)


# -- eval ---------------------------------------------------------------------------------------------
@main.group("eval")
def eval_group() -> None:
    """Offline evaluation suites."""


@eval_group.command("retrieval")
@click.option("--dataset", type=click.Choice(["multicpr-pool"]), default="multicpr-pool", show_default=True)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder with corpus.jsonl, queries.tsv, qrels.tsv.",
)
@click.option("--limit", type=int, default=None, help="Only the first N queries.")
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_retrieval(settings: Settings, dataset: str, data_dir: Path, limit: int | None, as_json: bool) -> None:
    """MRR@10, Recall@10/100 of the product's retrieval and a plain BM25 baseline."""
    from evals.retrieval import run_multicpr

    result = run_multicpr(data_dir, settings=settings, limit=limit, progress=True)
    result.pop("runs", None)
    if as_json:
        _dump(result)
    else:
        for system, metrics in result["systems"].items():
            click.echo(f"{system:>10}: " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


@eval_group.command("relevance")
@click.option("--dataset", type=click.Choice(["crowdflower"]), default="crowdflower", show_default=True)
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="judgements.jsonl",
)
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_relevance(settings: Settings, dataset: str, data_file: Path, as_json: bool) -> None:
    """nDCG@10 (gain 2^(rel-1)-1) of the product's ranking and BM25 on judged candidates."""
    from evals.relevance import run_crowdflower

    result = run_crowdflower(data_file, settings=settings, progress=True)
    if as_json:
        _dump(result)
    else:
        for system, metrics in result["systems"].items():
            click.echo(f"{system:>10}: " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


@eval_group.command("dialogues")
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Dialogue suite JSONL [default: the project's own suite, evals/data/dialogues/dialogues.jsonl].",
)
@click.option("--limit", type=int, default=None, help="Only the first N dialogues.")
@click.option("--json", "as_json", is_flag=True)
@llm_options
@common_options
def eval_dialogues(
    settings: Settings, llm_settings: Any, data_file: Path | None, limit: int | None, as_json: bool
) -> None:
    """Replay multi-turn dialogues; share of turns and dialogues passed, failures, grounding counts."""
    from evals.dialogues import default_suite, run_dialogues

    with _llm(llm_settings, settings) as llm:
        result = run_dialogues(data_file or default_suite(), settings=settings, llm=llm, progress=True, limit=limit)
    if as_json:
        _dump(result)
        return
    click.echo(
        f"turns passed {result['turns_passed_share']:.1%} of {result['turns']}; dialogues passed "
        f"{result['dialogues_passed_share']:.1%} of {result['dialogues']}; grounding {result['grounding']}"
    )
    for f in result["failures"][:30]:
        click.echo(f"- {f['dialogue']} #{f['turn']} {f['user']!r}: {'; '.join(f['problems'])}")


@eval_group.command("query-understanding")
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="chinese_ecomqa_query/items.jsonl",
)
@click.option("--per-task", type=int, default=None, help="Sample N items per task (seeded) instead of all.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@llm_options
@common_options
def eval_query_understanding(
    settings: Settings, llm_settings: Any, data_file: Path, per_task: int | None, seed: int, as_json: bool
) -> None:
    """Accuracy per ChineseEcomQA task (AC, ITC, SC, RLC, CC) through the assistant's LLM path."""
    from evals.query_understanding import run_query_understanding

    if llm_settings is None:
        raise UsageError("query understanding measures the LLM: drop --no-llm.")
    with _llm(llm_settings, settings) as llm:
        result = run_query_understanding(data_file, llm=llm, per_task=per_task, seed=seed, progress=True)
    if as_json:
        _dump(result)
        return
    for task, acc in result["accuracy"].items():
        click.echo(
            f"{task:>4}: {acc:.3f} (majority baseline {result['majority_baseline'][task]:.3f}, n={result['counts'][task]})"
        )
    click.echo(f"overall {result['overall']:.3f}")


@eval_group.command("all")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Report folder."
)
@click.option(
    "--shared",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("../shared/data"),
    show_default=True,
    help="Folder with the eval data (eval/, sessions/, querylogs/); a suite whose data is missing is skipped.",
)
@click.option(
    "--suites",
    default=",".join(("retrieval", "relevance", "query_understanding", "dialogues", "sessions", "replay")),
    show_default=True,
)
@click.option("--qu-per-task", type=click.IntRange(1), default=10, show_default=True)
@click.option("--dialogues", "dialogue_limit", type=click.IntRange(0), default=15, show_default=True, help="0 = all.")
@click.option("--session-sample", type=click.IntRange(0), default=10_000, show_default=True, help="0 = all prefixes.")
@click.option("--session-epochs", type=click.IntRange(0), default=2, show_default=True, help="0 = the model default.")
@click.option("--replay", "replay_limit", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fresh", is_flag=True, help="Run every suite again instead of resuming.")
@llm_options
@common_options
def eval_all(
    settings: Settings,
    llm_settings: Any,
    out_dir: Path,
    shared: Path,
    suites: str,
    qu_per_task: int,
    dialogue_limit: int,
    session_sample: int,
    session_epochs: int,
    replay_limit: int,
    seed: int,
    fresh: bool,
) -> None:
    """Every eval suite, one report (OUT/report.json and OUT/report.html); resumes a stopped run."""
    from evals.all import run_all

    with _llm(llm_settings, settings) as llm:
        report = run_all(
            out_dir,
            shared=shared,
            settings=settings,
            llm=llm,
            suites=tuple(x.strip() for x in suites.split(",") if x.strip()),
            qu_per_task=qu_per_task,
            dialogue_limit=dialogue_limit,
            session_sample=session_sample,
            session_epochs=session_epochs,
            replay_limit=replay_limit,
            seed=seed,
            fresh=fresh,
            log=lambda msg: click.echo(msg, err=True),
        )
    click.echo(f"report: {out_dir / 'report.html'} ({len(report['suites'])} suites)")


@eval_group.command("replay")
@click.option(
    "--queries",
    "queries_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Query log: TSV qid<TAB>query (e.g. ../shared/data/querylogs/multicpr_ecom_train_queries.tsv), JSONL or lines.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Replay a seeded sample of N queries.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder.")
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_replay(
    settings: Settings, queries_file: Path, limit: int | None, seed: int, out_dir: Path, as_json: bool
) -> None:
    """Replay a real query log through search and the intent parser against the catalog under
    HOME; records each query's top 10. Run it again to resume a stopped run."""
    from evals.replay import run_replay
    from retrieval import Catalog

    cat = Catalog(settings)
    if len(cat) == 0:
        raise UsageError(_EMPTY_CATALOG.format(home=settings.home))
    result = run_replay(queries_file, out_dir, cat, limit=limit, seed=seed, progress=not as_json)
    if as_json:
        _dump(result)
    else:
        click.echo(f"replayed {result['replayed_now']} queries ({result['queries']} in the run) into {out_dir}")


@eval_group.command("diff")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(1), default=20, show_default=True, help="How many changed queries to list.")
@click.option("--json", "as_json", is_flag=True)
def eval_diff(run_a: Path, run_b: Path, top: int, as_json: bool) -> None:
    """Compare two replay runs: overlap@10, rank changes, most changed queries, latency shift."""
    from evals.replay import diff_runs

    result = diff_runs(run_a, run_b, top=top)
    if as_json:
        _dump(result)
        return
    click.echo(
        f"{result['common_queries']} common queries: overlap@10 {result['overlap_at_10']:.3f}, "
        f"identical top 10 {result['identical_top10_share']:.1%}, first result changed "
        f"{result['first_result_changed_share']:.1%}, mean rank shift {result['mean_rank_shift']}, "
        f"intent changed {result['intent_changed_share']:.1%}"
    )
    lat = result["latency"]
    click.echo(
        f"latency p50 {lat['a']['p50_ms']} -> {lat['b']['p50_ms']} ms, p99 {lat['a']['p99_ms']} -> {lat['b']['p99_ms']} ms"
    )
    for row in result["changed_most"]:
        click.echo(f"  {row['overlap_at_10']:.1f}  {row['query']}")


@eval_group.command("sessions")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Diginetica folder with train_sessions.jsonl and test_prefixes.jsonl.",
)
@click.option("--sample", type=int, default=None, help="Score a seeded sample of N test prefixes (adds 95% CIs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the sample, training and bootstrap.")
@click.option("--epochs", type=int, default=None, help="Training epochs [default: the validated setting].")
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads (1 is fastest on a busy CPU).")
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_sessions(
    settings: Settings,
    data_dir: Path,
    sample: int | None,
    seed: int,
    epochs: int | None,
    threads: int,
    as_json: bool,
) -> None:
    """P@20 and MRR@20 (percent) of next-click prediction on Diginetica, ranking all items:
    the session model fused with the item-transition statistics, each part alone, popularity.

    Needs torch (pip install -e ".[torch]"); without it the command stops with that hint."""
    from evals.sessions import run_sessions

    result = run_sessions(data_dir, sample=sample, seed=seed, epochs=epochs, threads=threads, progress=not as_json)
    if as_json:
        _dump(result)
        return
    for name, m in result["results"].items():
        ci = f"  CI95 P@20 {m['P@20_ci95']} MRR@20 {m['MRR@20_ci95']}" if "P@20_ci95" in m else ""
        click.echo(f"{name:>10}: P@20={m['P@20']:.2f}  MRR@20={m['MRR@20']:.2f}{ci}")
    click.echo(f"train {result['train_seconds']:.0f}s, eval {result['eval_seconds']:.0f}s, n={result['test_prefixes']}")


if __name__ == "__main__":  # pragma: no cover
    main()

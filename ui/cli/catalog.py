"""Catalog commands: ``catalog ingest|delete|get|stats|reindex``, ``search`` and ``demo``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from assistant.stack import build_stack
from shopassist.config import Settings
from shopassist.errors import UsageError
from ui.cli.options import common_options, require_products
from ui.cli.output import Line, Rows, dump, product_line, show


@click.group()
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
@click.option(
    "--encoding",
    default=None,
    help="Read a FILE that is not UTF-8, e.g. gb18030 [default: UTF-8, with or without a BOM].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@common_options
def catalog_ingest(
    settings: Settings,
    file: Path,
    fmt: str | None,
    batch_size: int,
    rejects: Path | None,
    encoding: str | None,
    as_json: bool,
) -> None:
    """Upsert products from a JSONL, JSON or CSV FILE; bad rows go to a rejects file.

    Exits 2, saying why, when FILE holds no products or cannot be read as a catalog at all."""
    with build_stack(settings) as stack:
        report = stack.ingest(
            file,
            fmt=fmt,
            batch_size=batch_size,
            progress=sys.stderr.isatty() or not as_json,
            rejects_path=rejects,
            encoding=encoding,
        )
    show(
        report.summary(),
        as_json,
        "{file}: {rows} rows, {added} added, {updated} updated, {unchanged} unchanged, {rejected} rejected "
        "({seconds:.1f} s)",
        Rows(
            "first_rejects",
            "  line {line}: {reason}",
            limit=10,
            err=True,
            more="  ... and {rest} more",
            total="rejected",
        ),
        Line("rejected rows written to {rejects_file}", err=True, when="rejects_file"),
        Rows(
            "first_duplicates",
            "  line {line}: id {id!r} was already on line {first_line}; the later row (line {line}) wins",
            limit=10,
            err=True,
            more="  ... and {rest} more repeated ids",
            total="duplicates",
        ),
        seconds=report.seconds,
    )
    if report.fatal:
        raise UsageError(report.fatal)


@catalog.command("delete")
@click.argument("ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True)
@common_options
def catalog_delete(settings: Settings, ids: tuple[str, ...], as_json: bool) -> None:
    """Delete products by ID."""
    with build_stack(settings) as stack:
        deleted = stack.catalog.delete(list(ids))
    missing = [i for i in ids if i not in deleted]
    show(
        {"deleted": deleted, "not_found": missing},
        as_json,
        Line(("deleted {deleted!c} product(s)", "; not found: {not_found:, }")),
    )


@catalog.command("get")
@click.argument("product_id")
@common_options
def catalog_get(settings: Settings, product_id: str) -> None:
    """Print one product as JSON."""
    with build_stack(settings) as stack:
        product = stack.catalog.get(product_id)
        unreadable = None if product is not None else stack.catalog.unreadable.get(product_id)
    if unreadable is not None:
        raise UsageError(
            f"Product {product_id!r} is stored under {settings.home} but cannot be read ({unreadable}): "
            f"ingest a corrected row for it, or `shopassist catalog delete {product_id}`."
        )
    if product is None:
        raise UsageError(f"No product with id {product_id!r} under {settings.home}.")
    dump(product.record())


@catalog.command("stats")
@click.option("--json", "as_json", is_flag=True)
@common_options
def catalog_stats(settings: Settings, as_json: bool) -> None:
    """Counts per language, currency and top-level category."""
    from collections import Counter

    with build_stack(settings) as stack:
        cat = stack.catalog
        products = list(cat.products())
        stats = {
            "home": str(settings.home),
            "products": len(products),
            "vectors": cat.vectors.count(),
            "language": dict(Counter(p.language for p in products)),
            "currency": dict(Counter(p.currency for p in products)),
            "top_categories": dict(Counter((p.category_levels or ["(none)"])[0] for p in products).most_common(15)),
            "unreadable_rows": len(cat.unreadable),
        }
        unreadable = dict(list(cat.unreadable.items())[:20])
    show(stats, as_json, Rows(None, "{key}: {value}"))
    if unreadable:
        click.echo(
            "stored rows that cannot be read (left out of search; ingest corrected rows or "
            "`shopassist catalog delete` them):",
            err=True,
        )
        for pid, reason in unreadable.items():
            click.echo(f"  {pid!r}: {reason}", err=True)


@catalog.command("reindex")
@common_options
def catalog_reindex(settings: Settings) -> None:
    """Rebuild every vector and token list (after changing the embedder or tokenizer)."""
    with build_stack(settings) as stack:
        n = stack.catalog.reindex(progress=True)
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


@click.command()
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
    filters = _filters(min_price, max_price, brand, exclude_brand, category, in_stock, exclude)
    with build_stack(settings) as stack:
        require_products(stack, "The catalog under {home} is empty: run `shopassist catalog ingest FILE` first.")
        results = stack.retriever.search(query, filters, top_k=top_k)
    if as_json:
        dump([c.summary() for c in results])
        return
    if not results:
        click.echo("no products match; try fewer filters")
    for i, c in enumerate(results, 1):
        click.echo(product_line(i, c.product))


# -- demo ----------------------------------------------------------------------------------------
@click.command()
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
    from shopassist.resources import demo_catalog_path

    source = catalog_file or demo_catalog_path()
    click.echo(f"loading {source} into {settings.home} (only new or changed rows are embedded) ...", err=True)
    with build_stack(settings, catalog_file=source, progress=True) as stack:
        report = stack.ingest_report
        assert report is not None
        if report.fatal:
            raise UsageError(report.fatal)
        click.echo(
            f"catalog ready: {len(stack.catalog)} products ({report.added} added, {report.updated} updated, "
            f"{report.rejected} rejected)",
            err=True,
        )
        click.echo("Type a query (Chinese or English); empty line or Ctrl-D to quit.", err=True)
        while True:
            try:
                query = input("search> ").strip()
            except (EOFError, KeyboardInterrupt):
                click.echo("", err=True)
                return
            if not query:
                return
            for i, c in enumerate(stack.retriever.search(query, top_k=top_k), 1):
                click.echo(product_line(i, c.product, detail=False))

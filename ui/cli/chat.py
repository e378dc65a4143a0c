"""Conversation commands: ``ask`` and ``edit`` (one turn from the shell), ``ui`` (the chat in the
browser) and ``serve`` (the HTTP API)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from assistant.events import DoneEvent, ProductsEvent, ReplyEvent, TurnEvent, final_result
from assistant.stack import build_stack
from shopassist.config import Settings
from shopassist.errors import UsageError
from ui.cli.options import common_options, llm_options, require_products
from ui.cli.output import dump


@click.command("ui")
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
    from shopassist.resources import demo_catalog_path
    from ui.app import launch

    source = catalog_file or demo_catalog_path()
    click.echo(
        f"loading {source} into {settings.home}: the first time every product is embedded (the 10,485-product "
        "demo: about 2 minutes on 2 busy cores), later runs only new or changed rows ...",
        err=True,
    )
    with build_stack(settings, llm=llm_settings, catalog_file=source, progress=True) as stack:
        report = stack.ingest_report
        assert report is not None
        if report.fatal and not len(stack.catalog):
            raise UsageError(f"{report.fatal}; the chat needs a catalog to search.")
        if report.fatal:
            click.echo(f"warning: {report.fatal}; serving the {len(stack.catalog)} products already stored", err=True)
        click.echo(
            f"catalog ready: {len(stack.catalog)} products ({report.added} added, {report.rejected} rejected)", err=True
        )
        agent = stack.agent  # starts the LLM (saying so on stderr: build_stack(progress=True))
        click.echo(f"shopassist chat on http://{host}:{port}  (Ctrl-C to stop)", err=True)
        launch(agent, host=host, port=port)


@click.command()
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
@click.option(
    "--no-server",
    is_flag=True,
    help="Answer in this process, not through the running agent server (see `shopassist agent status`).",
)
@llm_options
@common_options
def ask(
    settings: Settings,
    llm_settings: Any,
    message: str,
    session_id: str,
    catalog_file: Path | None,
    as_json: bool,
    no_server: bool,
) -> None:
    """One turn of the shopping conversation SESSION.

    The first ask answers in its own process and leaves an agent server running in the
    background (SHOPASSIST_AGENT_IDLE_MINUTES, default 15; 0: never); later asks with the same
    home and settings hand their turn to it and skip this process's start."""
    from ui import agent_server

    idle = agent_server.idle_seconds()
    use_server = idle > 0 and catalog_file is None and not no_server
    key = agent_server.server_key(settings, llm_settings) if use_server else ""
    if use_server:
        conn = agent_server.connect(settings.home, key)
        if conn is not None:
            try:
                _show(agent_server.remote_turn(conn, session_id, message), message, as_json)
                click.echo("(answered by the background agent server; `shopassist agent stop` stops it)", err=True)
                return
            except agent_server.ServerGone as exc:
                click.echo(f"warning: {exc}; answering in this process", err=True)
    with build_stack(settings, llm=llm_settings, catalog_file=catalog_file, progress=True) as stack:
        require_products(stack)
        _show(stack.agent.turn(session_id, message), message, as_json)
    if use_server:
        agent_server.spawn(settings, llm_settings, key, idle)


def _show(events: Iterator[TurnEvent], message: str, as_json: bool) -> None:
    """Print a turn as it happens: each grounded copy line as it comes, then the rest."""
    if as_json:
        dump(final_result(events).public())
        return
    from assistant.events import StreamedLineEvent  # here: the CLI's start stays light

    result = None
    sent = ""  # the reply printed so far: each grounded copy line as it comes, then the rest
    for event in events:
        if isinstance(event, ProductsEvent) and result is None:
            if event.refined and sent:  # lines were printed for the products it replaced
                from assistant.tools import language_of
                from ui.labels import t

                click.echo("\n\n" + t(language_of(message), "refined_plain"))
                sent = ""
            click.echo(f"[{len(event.cards)} products]", err=True)
        elif isinstance(event, StreamedLineEvent):
            sent += event.delta
            click.echo(event.delta, nl=False)  # click.echo flushes: the line shows now
        elif isinstance(event, ReplyEvent):
            if event.text.startswith(sent):
                click.echo(event.text[len(sent) :])
            else:  # pragma: no cover - the agent streams a prefix of its reply
                click.echo("\n" + event.text)
        elif isinstance(event, DoneEvent):
            result = event.result
    if result is None:  # pragma: no cover - every turn ends with a DoneEvent
        raise click.ClickException("the turn ended without a result")
    if result.expansions:
        click.echo("refine: " + "  ".join(f"{f.value}({f.count})" for f in result.expansions), err=True)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (reads are open to it).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--api-key",
    envvar="SHOPASSIST_API_KEY",
    default=None,
    help="Key for catalog writes (env SHOPASSIST_API_KEY); without it writes are refused.",
)
@click.option("--rate", default=600, show_default=True, type=click.IntRange(1), help="Requests per minute per client.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="API worker processes sharing this home (catalog, events, sessions, model server).",
)
@llm_options
@common_options
def serve(
    settings: Settings, llm_settings: Any, host: str, port: int, api_key: str | None, rate: int, workers: int
) -> None:
    """The HTTP API (tools, OpenAI-compatible chat, events, catalog writes) with uvicorn."""
    import uvicorn

    from ui.api import create_app

    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        click.echo(f"warning: serving on {host} without SHOPASSIST_API_KEY: reads are open, writes refused", err=True)
    if workers > 1:
        import os
        from dataclasses import replace

        from ui.workers import CONFIG_ENV, write_config

        if not os.environ.get("SHOPASSIST_THREADS"):
            # the cores shared out: with N workers each embedding on the default 2 threads, the
            # query encoders' BLAS threads outnumber the cores (2 workers on 2 cores: 30 requests/s
            # in the load test, against 68 with 1 thread each)
            settings = replace(settings, threads=max(1, (os.cpu_count() or 1) // workers))

        with build_stack(settings, llm=llm_settings, progress=True) as stack:
            require_products(stack)  # and the model assembled and its server started, once
            if llm_settings is not None:
                _ = stack.llm
        os.environ[CONFIG_ENV] = str(write_config(settings.home, settings, llm_settings, api_key, rate))
        click.echo(f"shopassist API on http://{host}:{port} with {workers} workers (OpenAPI: /docs)", err=True)
        uvicorn.run("ui.workers:app_factory", factory=True, workers=workers, host=host, port=port, log_level="warning")
        return
    with build_stack(settings, llm=llm_settings, progress=True) as stack:
        require_products(stack)
        agent = stack.agent  # starts the LLM
        stack.warm_up()  # the first requests should not load models and indexes
        app = create_app(stack.catalog, agent, stack.ranker, api_key=api_key, rate_per_minute=rate)
        click.echo(f"shopassist API on http://{host}:{port} (OpenAPI: /docs, /openapi.json)", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")


@click.command("edit")
@click.option("--session", "session_id", default="cli", show_default=True, help="Conversation id to edit.")
@click.option("--remove", multiple=True, help="Drop this value (chip) wherever it is; repeatable.")
@click.option("--require", multiple=True, help="Products must have this value; repeatable.")
@click.option("--exclude", multiple=True, help="Products must not have this value; repeatable.")
@click.option("--toggle", multiple=True, help="Move a value between must-have and excluded; repeatable.")
@click.option("--min-price", "--price-min", "min_price", type=float, default=None, help="New lower price bound.")
@click.option("--max-price", "--price-max", "max_price", type=float, default=None, help="New upper price bound.")
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
    min_price: float | None,
    max_price: float | None,
    clear_price: bool,
    category: str | None,
    clear_category: bool,
    query: str | None,
    show: bool,
    as_json: bool,
) -> None:
    """Edit the parsed need of SESSION directly (what the UI's intent chips do) and search again."""
    from pydantic import ValidationError

    from assistant.state import ConstraintEdit

    with build_stack(settings, llm=llm_settings, progress=True) as stack:
        if show:
            dump(stack.sessions.load(session_id).constraints.model_dump(mode="json"))
            return
        try:
            change = ConstraintEdit(
                remove=list(remove),
                require=list(require),
                exclude=list(exclude),
                toggle=list(toggle),
                min_price=min_price,
                max_price=max_price,
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
        require_products(stack)
        result = stack.agent.apply_edit(session_id, change)
    if as_json:
        dump(result.public())
        return
    click.echo(result.reply)

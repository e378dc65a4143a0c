"""The ``shopassist`` command line (the console script's ``main``; ``python -m ui.cli``).

Every command takes ``--home DIR`` (or SHOPASSIST_HOME) and the backend options; ``--json``
prints machine-readable output on stdout while progress and messages go to stderr.
Exit codes: 0 success, 1 a runtime failure, 2 a usage error (bad arguments, missing files).

The top layer: commands get every piece from ``assistant.stack``; nothing imports this package.
``options`` (shared flags), ``output`` (the one way to print a result), and one module per
command group: ``catalog`` (catalog, search, demo), ``chat`` (ask, edit, ui, serve), ``events``
(event), ``evals`` (eval), ``privacy`` (privacy status / forget), ``train`` (train ranker),
``model`` and ``agent`` (the background model and agent servers), ``embedder`` (the optional
EmbeddingGemma install), ``mcp`` (the tools over the Model Context Protocol on stdio).
"""

from __future__ import annotations

import click

from ui.cli.agent import agent
from ui.cli.catalog import catalog, demo, search
from ui.cli.chat import ask, edit, serve, ui_command
from ui.cli.embedder import embedder
from ui.cli.evals import eval_group
from ui.cli.events import event
from ui.cli.mcp import mcp
from ui.cli.model_server import model
from ui.cli.privacy import privacy
from ui.cli.train import train_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shopassist")
def main() -> None:
    """shopassist: conversational shopping search for Chinese and English catalogs."""


for _command in (
    catalog,
    search,
    demo,
    ui_command,
    ask,
    serve,
    event,
    edit,
    eval_group,
    privacy,
    model,
    agent,
    train_group,
    embedder,
    mcp,
):
    main.add_command(_command)

__all__ = ["main"]

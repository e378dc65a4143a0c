"""``shopassist mcp``: the assistant's tools over the Model Context Protocol on stdin/stdout.

For desktop agents (Claude Desktop, IDE agents ...) that start an MCP server as a subprocess::

    {"mcpServers": {"shopassist": {"command": "shopassist", "args": ["mcp", "--home", "/path/to/home"]}}}

Nothing but protocol goes to stdout: messages and logs go to stderr. The tools need no language
model, so none is started. Over HTTP the same tools are at ``/mcp`` of ``shopassist serve``.
"""

from __future__ import annotations

import contextlib
import logging
import sys

import click

from assistant.stack import build_stack
from shopassist.config import Settings
from ui.cli.options import common_options, require_products


@click.command("mcp")
@common_options
def mcp(settings: Settings) -> None:
    """Serve the catalog tools over MCP on stdin/stdout (for desktop agents); logs go to stderr."""
    from ui.mcp_server import build_server, local_tool_call, serve_stdio

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="shopassist mcp: %(levelname)s %(message)s")
    with build_stack(settings) as stack:
        # until the SDK takes over stdout (it points fd 1 at stderr while it serves), anything a
        # library prints while the catalog and the embedder open goes to stderr: stdout is the protocol's
        with contextlib.redirect_stdout(sys.stderr):
            require_products(stack)
            agent = stack.agent  # no LLM: the tools search, look up and record, they never generate
            stack.catalog.embedder.embed_query("warm up")  # the first search should not load the model
            server = build_server(agent.tools, local_tool_call(agent))
        click.echo(f"shopassist MCP server on stdio: {len(stack.catalog)} products in {settings.home}", err=True)
        serve_stdio(server)

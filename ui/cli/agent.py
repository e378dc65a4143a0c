"""``shopassist agent status|stop``: the background agent server that ``ask`` hands turns to
(``ui.agent_server``). The first ``ask`` starts it; it stops itself after
SHOPASSIST_AGENT_IDLE_MINUTES (default 15) without a turn."""

from __future__ import annotations

import time

import click

from shopassist.config import Settings
from ui.cli.options import common_options
from ui.cli.output import dump


@click.group("agent")
def agent() -> None:
    """The background agent server that `shopassist ask` reuses: status, stop."""


@agent.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the servers as JSON.")
@common_options
def status(settings: Settings, as_json: bool) -> None:
    """The agent servers running for HOME: pid, socket, ready or starting, uptime."""
    from ui.agent_server import read_records

    records = read_records(settings.home)
    if as_json:
        dump(records)
        return
    if not records:
        click.echo(f"no agent server running for {settings.home} (the next `shopassist ask` starts one)")
        return
    for r in records:
        state = "ready" if r.get("ready") else "starting"
        up = time.time() - float(r.get("started", time.time()))
        click.echo(f"pid {r['pid']}  {state}  up {up:.0f} s  socket {r.get('socket')}")


@agent.command("stop")
@common_options
def stop(settings: Settings) -> None:
    """Stop the agent servers of HOME (the next `ask` answers in its own process and starts one)."""
    from ui.agent_server import stop as stop_servers

    pids = stop_servers(settings.home)
    click.echo(
        f"stopped {len(pids)} agent server(s)" + (f": pid {', '.join(map(str, pids))}" if pids else ""), err=True
    )

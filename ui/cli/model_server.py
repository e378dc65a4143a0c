"""``shopassist model start|status|stop``: the shared background model server (assistant.llm.daemon).

Commands that use the embedded model (``ask``, ``edit``, ``ui``, ``serve``, ``eval``) start it
when none is running and reuse it after; these commands show it, start it ahead of time (so the
first ``ask`` is fast too) and stop it.
"""

from __future__ import annotations

from typing import Any

import click

from shopassist.config import Settings
from shopassist.errors import UsageError
from ui.cli.options import common_options, llm_options
from ui.cli.output import dump


@click.group("model")
def model() -> None:
    """The embedded language model's shared background server: start, status, stop."""


@model.command("start")
@llm_options
@common_options
def start(settings: Settings, llm_settings: Any) -> None:
    """Load the model into the shared server now (assembling it on first use) and leave it running."""
    from assistant.llm import open_llm

    if llm_settings is None or not llm_settings.embedded:
        raise UsageError("`model start` is for the embedded model: drop --no-llm / --llm-base-url.")
    if not llm_settings.shared:
        raise UsageError("SHOPASSIST_LLM_IDLE_MINUTES is 0 (no shared server): set it above 0 to keep one running.")
    with open_llm(llm_settings, settings.home, progress=True) as llm:
        info = llm.info()
    click.echo(
        f"model server running: {info['base_url']} (pid {info.get('server_pid')}, {info.get('threads')} threads); "
        f"it stops after {llm_settings.idle_minutes:g} idle minutes or `shopassist model stop`",
        err=True,
    )


@model.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the servers as JSON.")
@common_options
def status(settings: Settings, as_json: bool) -> None:
    """The shared model servers recorded under HOME: address, pid, model, whether in use."""
    from assistant.llm.daemon import server_status

    servers = server_status(settings.home)
    if as_json:
        dump({"home": str(settings.home), "servers": servers})
        return
    if not servers:
        click.echo(f"no model server running for {settings.home}")
        return
    for s in servers:
        state = ("in use" if s["in_use"] else "idle") if s["alive"] else "not answering (stale record)"
        sha = (s["sha256"] or "unverified")[:12]
        click.echo(
            f"{s['url']}  pid {s['pid']}  {state}  threads {s['threads']}  model {sha}  "
            f"idle stop {s['idle_minutes']:g} min  loaded in {s['load_seconds']} s  log {s['log']}"
        )


@model.command("stop")
@common_options
def stop(settings: Settings) -> None:
    """Stop the shared model servers under HOME (the next command that needs one starts it again)."""
    from assistant.llm.daemon import stop_servers

    stopped = stop_servers(settings.home)
    if not stopped:
        click.echo(f"no model server running for {settings.home}")
    for s in stopped:
        what = "stopped" if s["stopped"] else "was not running; record removed"
        click.echo(f"pid {s['pid']}: {what}")

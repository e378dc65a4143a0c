"""``privacy``: what is stored about shoppers (``status``) and forgetting one of them (``forget``)."""

from __future__ import annotations

import time
from typing import Any

import click

from assistant.stack import build_stack
from shopassist.config import Settings
from ui.cli.options import common_options
from ui.cli.output import show


def _when(ts: float | None) -> str:
    if ts is None:
        return "none"
    days = (time.time() - ts) / 86400.0
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(ts))} ({days:.1f} days ago)"


@click.group("privacy")
def privacy() -> None:
    """What is stored about shoppers, and forgetting one of them."""


@privacy.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@common_options
def status(settings: Settings, as_json: bool) -> None:
    """What is stored under HOME: sessions, events, the pseudonym secret, and for how long."""
    with build_stack(settings) as stack:
        out: dict[str, Any] = stack.privacy_status()
    keep = f"{out['retention_days']} days" if out["retention_days"] else "until deleted (retention off)"
    show(
        out,
        as_json,
        "sessions: {sessions} in {sessions_dir} (oldest last updated {oldest_session})",
        "events: {events} of {event_sessions} sessions in {events_file} (oldest {oldest_event_at})",
        "kept: {keep}; session ids are stored only as pseudonyms keyed by {secret_file}",
        oldest_session=_when(out["oldest_session_update"]),
        oldest_event_at=_when(out["oldest_event"]),
        keep=keep,
    )


@privacy.command("forget")
@click.argument("session")
@click.option("--json", "as_json", is_flag=True, help="Print what was deleted as JSON.")
@common_options
def forget(settings: Settings, session: str, as_json: bool) -> None:
    """Delete everything stored about SESSION: its conversation and its events.

    SESSION is the id the client used (X-Session-Id, the API's `user`, --session) or its
    pseudonym (anon-...). A running `shopassist serve` keeps the shopper's profile in memory until
    it restarts: use its DELETE /v1/sessions/SESSION to clear that too. Exit code 1 when nothing
    was stored for SESSION."""
    with build_stack(settings) as stack:
        gone = stack.forget(session)
    if as_json or gone.anything:
        show(
            gone.public(),
            as_json,
            "forgot {session}: conversation {conversation}, {deleted[events]} events deleted",
            conversation="deleted" if gone.session_file else "none stored",
        )
    if not gone.anything:
        click.echo(f"nothing was stored for session {session!r} (check the id; nothing was deleted)", err=True)
        raise SystemExit(1)

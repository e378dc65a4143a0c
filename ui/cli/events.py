"""``event``: record behaviour events in the durable event log under HOME."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from assistant.stack import build_stack
from shopassist.config import Settings
from shopassist.errors import UsageError
from ui.cli.options import common_options
from ui.cli.output import Rows, show


@click.command("event")
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
    with build_stack(settings) as stack:
        result = stack.events.append([r for _, r in rows])
        total = len(stack.events)
    bad += [(rows[i][0], reason) for i, reason in result.rejected]
    out = {
        "accepted": len(result.accepted),
        "rejected": [{"line": n, "reason": r} for n, r in sorted(bad)],
        "last_seq": result.accepted[-1].seq if result.accepted else None,
        "events_in_log": total,
    }
    show(
        out,
        as_json,
        "accepted {accepted}, rejected {rejected!c} (log holds {events_in_log} events)",
        Rows("rejected", "  line {line}: {reason}", limit=20, err=True),
    )
    if bad and not result.accepted:
        raise SystemExit(1)

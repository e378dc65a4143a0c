"""The command line: ``python evals/data/dialogues/check_suite.py [--suite FILE ...] [-v] [--markdown]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .report import markdown, summary
from .suite import check_suite

SUITE_DIR = Path(__file__).resolve().parents[1] / "data" / "dialogues"
DESCRIPTION = "Static checker for the dialogue suites in this folder (stdlib only; no shopassist import)."


def labels_for(suite: Path) -> Path:
    """A suite's labels file: ``labels.json`` beside ``dialogues.jsonl`` (the project's suite),
    ``NAME.labels.json`` beside any other ``NAME.jsonl``."""
    return suite.parent / ("labels.json" if suite.name == "dialogues.jsonl" else f"{suite.stem}.labels.json")


def main(argv: list[str] | None = None) -> int:
    """Check each suite (default: every ``*.jsonl`` in this folder, each with its labels file if
    present) and print its summary (or, with --markdown, its count tables); 1 on any error."""
    ap = argparse.ArgumentParser(description=DESCRIPTION)
    ap.add_argument(
        "--suite",
        type=Path,
        action="append",
        default=None,
        help="a suite file (repeatable) [default: every *.jsonl in this folder]",
    )
    ap.add_argument("--labels", type=Path, default=None, help="the labels file (with one --suite only)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every turn's pool and witness set")
    ap.add_argument("--markdown", action="store_true", help="print the count tables as Markdown")
    args = ap.parse_args(argv)
    suites = args.suite or sorted(SUITE_DIR.glob("*.jsonl"))
    if args.labels is not None and len(suites) != 1:
        ap.error("--labels goes with exactly one --suite")
    failed = False
    for n, suite in enumerate(suites):
        labels = args.labels if args.labels is not None else labels_for(suite)
        rep, stats = check_suite(suite, labels, args.verbose)
        if len(suites) > 1:
            print(("\n" if n else "") + f"== {suite.name} ({labels.name if labels.exists() else 'no labels file'})")
        print(markdown(stats) if args.markdown else summary(rep, stats))
        failed = failed or bool(rep.errors)
    return 1 if failed else 0

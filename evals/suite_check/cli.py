"""The command line: ``python evals/data/dialogues/check_suite.py [-v] [--markdown]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .report import markdown, summary
from .suite import check_suite

SUITE_DIR = Path(__file__).resolve().parents[1] / "data" / "dialogues"
DESCRIPTION = "Static checker for the dialogue suite in this folder (stdlib only; no shopassist import)."


def main(argv: list[str] | None = None) -> int:
    """Check the suite and print a summary (or, with --markdown, the count tables); 1 on errors."""
    ap = argparse.ArgumentParser(description=DESCRIPTION)
    ap.add_argument("--suite", type=Path, default=SUITE_DIR / "dialogues.jsonl")
    ap.add_argument("--labels", type=Path, default=SUITE_DIR / "labels.json")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every turn's pool and witness set")
    ap.add_argument("--markdown", action="store_true", help="print the count tables as Markdown")
    args = ap.parse_args(argv)
    rep, stats = check_suite(args.suite, args.labels, args.verbose)
    print(markdown(stats) if args.markdown else summary(rep, stats))
    return 1 if rep.errors else 0

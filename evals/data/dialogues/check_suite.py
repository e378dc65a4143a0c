#!/usr/bin/env python3
"""Static checker for the dialogue suites in this folder (stdlib only; no shopassist import).

It proves that every expectation can be met by the catalog the dialogue names, so that a
failing turn is the assistant's fault and never the suite's. The checks live in the stdlib-only
package ``evals/suite_check`` (its docstring lists every rule); this file is its command line,
runnable as a script from any directory.

Usage::

    python evals/data/dialogues/check_suite.py            # check every *.jsonl here; exit 1 on errors
    python evals/data/dialogues/check_suite.py --suite evals/data/dialogues/demo_zh.jsonl   # one suite
    python evals/data/dialogues/check_suite.py -v         # also print each turn's pool and a witness set
    python evals/data/dialogues/check_suite.py --markdown # the count tables used in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_ROOT = str(HERE.parents[2])  # the folder holding the ``evals`` package (the repository, or site-packages)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from evals.suite_check import Report, check_suite, main, markdown  # noqa: E402

__all__ = ["HERE", "Report", "check_suite", "main", "markdown"]

if __name__ == "__main__":
    sys.exit(main())

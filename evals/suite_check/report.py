"""The checker's findings (errors and warnings), its counts, and how both are printed."""

from __future__ import annotations

from collections import Counter
from typing import Any

Stats = dict[str, Any]


class Report:
    """Errors fail the suite; warnings are printed but never fail it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, msg: str) -> None:
        self.errors.append(msg)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)


def new_stats() -> Stats:
    """Empty counters: dialogues/turns per language, turns/dialogues per behaviour tag, catalog use."""
    return {
        "dialogues": 0,
        "turns": 0,
        "lang_dialogues": Counter(),
        "lang_turns": Counter(),
        "tag_turns": Counter(),
        "tag_dialogues": Counter(),
        "catalog_use": Counter(),
        "catalog_sizes": {},
        "act_turns": Counter(),  # turns per expected dialogue act
        "answer_turns": 0,  # turns whose reply must state a fact of the record
    }


def markdown(stats: Stats) -> str:
    """The count tables of README.md: languages, behaviours, catalogs."""
    lines = ["| language | dialogues | turns |", "|---|---:|---:|"]
    for lang in sorted(stats["lang_dialogues"]):
        lines.append(f"| {lang} | {stats['lang_dialogues'][lang]} | {stats['lang_turns'][lang]} |")
    lines.append(f"| **all** | **{stats['dialogues']}** | **{stats['turns']}** |")
    lines += ["", "| behaviour | turns | dialogues |", "|---|---:|---:|"]
    for tag, cnt in sorted(stats["tag_turns"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| `{tag}` | {cnt} | {stats['tag_dialogues'][tag]} |")
    if stats["act_turns"]:
        lines += ["", "| act | turns |", "|---|---:|"]
        for act, cnt in sorted(stats["act_turns"].items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"| `{act}` | {cnt} |")
        lines.append(f"| (answers: the reply states a fact of the record) | {stats['answer_turns']} |")
    lines += ["", "| catalog | products | dialogues |", "|---|---:|---:|"]
    for cat in sorted(stats["catalog_sizes"]):
        lines.append(f"| `{cat}` | {stats['catalog_sizes'][cat]} | {stats['catalog_use'][cat]} |")
    return "\n".join(lines)


def summary(rep: Report, stats: Stats) -> str:
    """Every warning and error, one a line, then the counts and the verdict."""
    lines = [f"warning: {w}" for w in rep.warnings]
    lines += [f"ERROR: {e}" for e in rep.errors]
    langs = ", ".join(f"{k} {v}" for k, v in sorted(stats["lang_dialogues"].items()))
    lines.append(
        f"{stats['dialogues']} dialogues ({langs}), {stats['turns']} turns, "
        f"{sum(stats['catalog_sizes'].values())} products in {len(stats['catalog_sizes'])} catalogs"
    )
    lines.append("behaviours (turns): " + ", ".join(f"{k} {v}" for k, v in sorted(stats["tag_turns"].items())))
    if stats["act_turns"]:
        acts = ", ".join(f"{k} {v}" for k, v in sorted(stats["act_turns"].items()))
        lines.append(f"acts (turns): {acts}; answer turns {stats['answer_turns']}")
    lines.append(f"{'FAIL' if rep.errors else 'OK'}: {len(rep.errors)} errors, {len(rep.warnings)} warnings")
    return "\n".join(lines)

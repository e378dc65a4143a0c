"""``eval``: the offline evaluation suites. Each prints its result with ``--json``, or as text by
its view in ``VIEWS`` (see ``ui.cli.output``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from assistant.stack import build_stack
from shopassist.config import Settings
from shopassist.errors import UsageError
from ui.cli.options import common_options, llm_client, llm_options, require_products
from ui.cli.output import Line, Rows, show

_METRICS = (Rows("systems", "{key:>10}: {value:.4f}"),)

VIEWS: dict[str, tuple[Line | Rows | str, ...]] = {
    "retrieval": _METRICS,
    "relevance": _METRICS,
    "dialogues": (
        "turns passed {turns_passed_share:.1%} of {turns}; dialogues passed {dialogues_passed_share:.1%} "
        "of {dialogues}; grounding {grounding}",
        Rows("per_file", "  {key}: turns passed {turns_passed_share:.1%} of {turns}, {dialogues} dialogues"),
        Rows(
            "per_act",
            (
                "  act {key:>12}: passed {passed}/{turns} ({passed_share:.1%})",
                ", read as that act {read_as_act}/{turns}",
            ),
        ),
        Line(("answers correct {answers[correct]} of {answers[turns]}", " ({answers[share]:.1%})"), when="answers"),
        Rows("failures", "- {dialogue} #{turn} {user!r}: {problems:; }", limit=30),
    ),
    "query-understanding": (
        Rows(
            "accuracy",
            "{key:>4}: {value:.3f} (majority baseline {majority_baseline:.3f}, n={counts})",
            also=("majority_baseline", "counts"),
        ),
        "overall {overall:.3f}",
    ),
    "replay": ("replayed {replayed_now} queries ({queries} in the run) into {out_dir}",),
    "diff": (
        "{common_queries} common queries: overlap@10 {overlap_at_10:.3f}, identical top 10 "
        "{identical_top10_share:.1%}, first result changed {first_result_changed_share:.1%}, mean rank shift "
        "{mean_rank_shift}, intent changed {intent_changed_share:.1%}",
        "latency p50 {latency[a][p50_ms]} -> {latency[b][p50_ms]} ms, p99 {latency[a][p99_ms]} -> "
        "{latency[b][p99_ms]} ms",
        Rows("changed_most", "  {overlap_at_10:.1f}  {query}"),
    ),
    "sessions": (
        Rows(
            "results",
            ("{key:>10}: P@20={P@20:.2f}  MRR@20={MRR@20:.2f}", "  CI95 P@20 {P@20_ci95} MRR@20 {MRR@20_ci95}"),
        ),
        "train {train_seconds:.0f}s, eval {eval_seconds:.0f}s, n={test_prefixes}",
    ),
}


@click.group("eval")
def eval_group() -> None:
    """Offline evaluation suites."""


@eval_group.command("retrieval")
@click.option("--dataset", type=click.Choice(["multicpr-pool"]), default="multicpr-pool", show_default=True)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder with corpus.jsonl, queries.tsv, qrels.tsv.",
)
@click.option("--limit", type=int, default=None, help="Only the first N queries.")
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_retrieval(settings: Settings, dataset: str, data_dir: Path, limit: int | None, as_json: bool) -> None:
    """MRR@10, Recall@10/100 of the product's retrieval and a plain BM25 baseline."""
    from evals.retrieval import run_multicpr

    result = run_multicpr(data_dir, settings=settings, limit=limit, progress=True)
    result.pop("runs", None)
    show(result, as_json, *VIEWS["retrieval"])


@eval_group.command("relevance")
@click.option("--dataset", type=click.Choice(["crowdflower"]), default="crowdflower", show_default=True)
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="judgements.jsonl",
)
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_relevance(settings: Settings, dataset: str, data_file: Path, as_json: bool) -> None:
    """nDCG@10 (gain 2^(rel-1)-1) of the product's ranking and BM25 on judged candidates."""
    from evals.relevance import run_crowdflower

    show(run_crowdflower(data_file, settings=settings, progress=True), as_json, *VIEWS["relevance"])


@eval_group.command("dialogues")
@click.option(
    "--suite",
    "suite",
    default="project",
    show_default=True,
    metavar="project|demo|PATH",
    help="project: the project's own suite (evals/data/dialogues/dialogues.jsonl); demo: the suites on the "
    "bundled demo catalog (demo_zh.jsonl, demo_en.jsonl); PATH: a suite .jsonl or a folder of them.",
)
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A dialogue suite JSONL (the same as --suite PATH).",
)
@click.option("--limit", type=int, default=None, help="Only N dialogues (the first N; with several files, in turn).")
@click.option("--json", "as_json", is_flag=True)
@llm_options
@common_options
def eval_dialogues(
    settings: Settings, llm_settings: Any, suite: str, data_file: Path | None, limit: int | None, as_json: bool
) -> None:
    """Replay multi-turn dialogues; share of turns and dialogues passed, per dialogue act, answers
    correct, failures, grounding counts."""
    from evals.dialogues import resolve_suites, run_dialogues

    paths = resolve_suites(data_file or suite)
    with llm_client(llm_settings, settings) as llm:
        result = run_dialogues(paths, settings=settings, llm=llm, progress=True, limit=limit)
    show(result, as_json, *VIEWS["dialogues"])


@eval_group.command("query-understanding")
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="chinese_ecomqa_query/items.jsonl",
)
@click.option("--per-task", type=int, default=None, help="Sample N items per task (seeded) instead of all.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--free",
    is_flag=True,
    help="Free-text answers everywhere (no answer-set constraint), to measure what the constraint adds.",
)
@click.option("--json", "as_json", is_flag=True)
@llm_options
@common_options
def eval_query_understanding(
    settings: Settings,
    llm_settings: Any,
    data_file: Path,
    per_task: int | None,
    seed: int,
    free: bool,
    as_json: bool,
) -> None:
    """Accuracy per ChineseEcomQA task (AC, ITC, SC, RLC, CC) through the assistant's LLM path."""
    from evals.query_understanding import run_query_understanding

    if llm_settings is None:
        raise UsageError("query understanding measures the LLM: drop --no-llm.")
    with llm_client(llm_settings, settings) as llm:
        result = run_query_understanding(
            data_file, llm=llm, per_task=per_task, seed=seed, progress=True, constrained=not free
        )
    show(result, as_json, *VIEWS["query-understanding"])


@eval_group.command("all")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Report folder."
)
@click.option(
    "--shared",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("../shared/data"),
    show_default=True,
    help="Folder with the eval data (eval/, sessions/, querylogs/); a suite whose data is missing is skipped.",
)
@click.option(
    "--suites",
    default=",".join(
        ("retrieval", "relevance", "query_understanding", "dialogues", "dialogues_demo", "sessions", "replay")
    ),
    show_default=True,
)
@click.option("--qu-per-task", type=click.IntRange(1), default=10, show_default=True)
@click.option(
    "--dialogues",
    "dialogue_limit",
    type=click.IntRange(0),
    default=15,
    show_default=True,
    help="Dialogues per dialogue suite (project, demo); 0 = all.",
)
@click.option("--session-sample", type=click.IntRange(0), default=10_000, show_default=True, help="0 = all prefixes.")
@click.option("--session-epochs", type=click.IntRange(0), default=2, show_default=True, help="0 = the model default.")
@click.option("--replay", "replay_limit", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fresh", is_flag=True, help="Run every suite again instead of resuming.")
@llm_options
@common_options
def eval_all(
    settings: Settings,
    llm_settings: Any,
    out_dir: Path,
    shared: Path,
    suites: str,
    qu_per_task: int,
    dialogue_limit: int,
    session_sample: int,
    session_epochs: int,
    replay_limit: int,
    seed: int,
    fresh: bool,
) -> None:
    """Every eval suite, one report (OUT/report.json and OUT/report.html); resumes a stopped run."""
    from evals.all import run_all

    with llm_client(llm_settings, settings) as llm:
        report = run_all(
            out_dir,
            shared=shared,
            settings=settings,
            llm=llm,
            suites=tuple(x.strip() for x in suites.split(",") if x.strip()),
            qu_per_task=qu_per_task,
            dialogue_limit=dialogue_limit,
            session_sample=session_sample,
            session_epochs=session_epochs,
            replay_limit=replay_limit,
            seed=seed,
            fresh=fresh,
            log=lambda msg: click.echo(msg, err=True),
        )
    click.echo(f"report: {out_dir / 'report.html'} ({len(report['suites'])} suites)")


@eval_group.command("replay")
@click.option(
    "--queries",
    "queries_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Query log: TSV qid<TAB>query (e.g. ../shared/data/querylogs/multicpr_ecom_train_queries.tsv), JSONL or lines.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Replay a seeded sample of N queries.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder.")
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_replay(
    settings: Settings, queries_file: Path, limit: int | None, seed: int, out_dir: Path, as_json: bool
) -> None:
    """Replay a real query log through search and the intent parser against the catalog under
    HOME; records each query's top 10. Run it again to resume a stopped run."""
    from evals.replay import run_replay

    with build_stack(settings) as stack:
        require_products(stack)
        result = run_replay(queries_file, out_dir, stack, limit=limit, seed=seed, progress=not as_json)
    show(result, as_json, *VIEWS["replay"], out_dir=out_dir)


@eval_group.command("diff")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(1), default=20, show_default=True, help="How many changed queries to list.")
@click.option("--json", "as_json", is_flag=True)
def eval_diff(run_a: Path, run_b: Path, top: int, as_json: bool) -> None:
    """Compare two replay runs: overlap@10, rank changes, most changed queries, latency shift."""
    from evals.replay import diff_runs

    show(diff_runs(run_a, run_b, top=top), as_json, *VIEWS["diff"])


@eval_group.command("sessions")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Diginetica folder with train_sessions.jsonl and test_prefixes.jsonl.",
)
@click.option("--sample", type=int, default=None, help="Score a seeded sample of N test prefixes (adds 95% CIs).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the sample, training and bootstrap.")
@click.option("--epochs", type=int, default=None, help="Training epochs [default: the validated setting].")
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads (1 is fastest on a busy CPU).")
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_sessions(
    settings: Settings,
    data_dir: Path,
    sample: int | None,
    seed: int,
    epochs: int | None,
    threads: int,
    as_json: bool,
) -> None:
    """P@20 and MRR@20 (percent) of next-click prediction on Diginetica, ranking all items:
    the session model fused with the item-transition statistics, each part alone, popularity.

    Needs torch (pip install -e ".[torch]"); without it the command stops with that hint."""
    from evals.sessions import run_sessions

    result = run_sessions(data_dir, sample=sample, seed=seed, epochs=epochs, threads=threads, progress=not as_json)
    show(result, as_json, *VIEWS["sessions"])

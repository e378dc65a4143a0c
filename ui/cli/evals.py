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
    "retrieval": (
        *_METRICS,
        Line(
            (
                "{crossval[folds]}-fold out-of-fold MRR@10 (95% CI over queries): fusion with Chinese weights "
                "chosen per fold {crossval[fusion_fitted_oof][MRR@10]:.4f} {crossval[fusion_fitted_oof][ci95]} "
                "(bm25/dense chosen: {crossval[chosen]:, }); in-sample {crossval[shipped_fusion][MRR@10]:.4f} "
                "{crossval[shipped_fusion][ci95]}; BM25 {crossval[bm25][MRR@10]:.4f} {crossval[bm25][ci95]}",
                "; learned ranker {crossval[learned_oof][MRR@10]:.4f} {crossval[learned_oof][ci95]}",
            ),
            when="crossval",
        ),
    ),
    "relevance": (
        *_METRICS,
        Line(
            "{crossval[folds]}-fold out-of-fold nDCG@10 (95% CI over queries): learned ranker "
            "{crossval[learned_oof][nDCG@10]:.4f} {crossval[learned_oof][ci95]}, fusion with fitted weights "
            "{crossval[fusion_fitted_oof][nDCG@10]:.4f} {crossval[fusion_fitted_oof][ci95]}; in-sample fusion "
            "{crossval[shipped_fusion][nDCG@10]:.4f} {crossval[shipped_fusion][ci95]}",
            when="crossval",
        ),
    ),
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
    "sessions_validation": (
        Rows("results", "{key:>10}: P@20={P@20:.2f}  MRR@20={MRR@20:.2f}"),
        "validation: {split}; train {train_seconds:.0f}s, n={validation_prefixes}",
    ),
    "ab": (
        Line(
            (
                "experiment {experiment}: {sessions} sessions, {events} events in {log}",
                "; control {control}",
                "; {confidence:.0%} intervals",
            )
        ),
        Line("{mixed_sessions} sessions named two variants and were left out", when="mixed_sessions"),
        Rows(
            "variants",
            (
                "{key:>14}: {sessions} sessions, {searches} searches; session CTR {session_ctr[rate]:.4f} "
                "[{session_ctr[lo]:.4f}, {session_ctr[hi]:.4f}]",
                ", search CTR {search_ctr[rate]:.4f} [{search_ctr[lo]:.4f}, {search_ctr[hi]:.4f}]",
                ", cart {add_to_cart_rate[rate]:.4f} [{add_to_cart_rate[lo]:.4f}, {add_to_cart_rate[hi]:.4f}], "
                "purchase {purchase_rate[rate]:.4f} [{purchase_rate[lo]:.4f}, {purchase_rate[hi]:.4f}]",
                "\n                vs control: session CTR {vs_control[session_ctr][diff]:+.4f} "
                "[{vs_control[session_ctr][lo]:+.4f}, {vs_control[session_ctr][hi]:+.4f}] "
                "p={vs_control[session_ctr][p_value]:.3g}; cart {vs_control[add_to_cart_rate][diff]:+.4f} "
                "[{vs_control[add_to_cart_rate][lo]:+.4f}, {vs_control[add_to_cart_rate][hi]:+.4f}]; purchase "
                "{vs_control[purchase_rate][diff]:+.4f} [{vs_control[purchase_rate][lo]:+.4f}, "
                "{vs_control[purchase_rate][hi]:+.4f}]",
                "; search CTR {vs_control[search_ctr][diff]:+.4f} [{vs_control[search_ctr][lo]:+.4f}, "
                "{vs_control[search_ctr][hi]:+.4f}]",
            ),
        ),
        Line(
            (
                "interleaving: {interleaving[sessions_with_credited_clicks]} of {interleaving[sessions]} sessions "
                "with credited clicks; wins {interleaving[wins]:d}, ties {interleaving[ties]}",
                "; sign test p={interleaving[sign_test_p]:.4g}",
            ),
            when="interleaving",
        ),
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
    """MRR@10, Recall@10/100 of the product's retrieval and a plain BM25 baseline; out-of-fold MRR@10 with the
    Chinese fusion weights chosen per fold (5 folds, 95% intervals)."""
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


@eval_group.command("ab")
@click.option(
    "--events",
    "events_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The event log: an events.sqlite or a JSONL of events [default: HOME/events.sqlite].",
)
@click.option("--experiment", default=None, help="The experiment to report [default: the only one in the log].")
@click.option("--control", default=None, help="The control variant [default: fusion, else the first by name].")
@click.option("--bootstrap", type=click.IntRange(100), default=1000, show_default=True, help="Resamples (search CTR).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_ab(
    settings: Settings,
    events_file: Path | None,
    experiment: str | None,
    control: str | None,
    bootstrap: int,
    seed: int,
    as_json: bool,
) -> None:
    """An online experiment read back from the event log: per variant sessions, searches,
    click-through (sessions, searches), add-to-cart and purchase rates with 95% intervals, the
    difference vs the control; for interleaving, team wins and a sign test."""
    from assistant.stack import EVENTS_FILE
    from evals.ab import run_ab

    path = events_file or settings.home / EVENTS_FILE
    result = run_ab(path, experiment, control=control, bootstrap=bootstrap, seed=seed)
    show(result, as_json, *VIEWS["ab"])


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
@click.option(
    "--validation",
    type=click.FloatRange(0.01, 0.5),
    default=None,
    help="Tune without the test file: train on the first 1-F of train_sessions.jsonl, score the last F.",
)
@click.option("--json", "as_json", is_flag=True)
@common_options
def eval_sessions(
    settings: Settings,
    data_dir: Path,
    sample: int | None,
    seed: int,
    epochs: int | None,
    threads: int,
    validation: float | None,
    as_json: bool,
) -> None:
    """P@20 and MRR@20 (percent) of next-click prediction on Diginetica, ranking all items:
    the session model fused with the item-transition statistics, each part alone, popularity.

    Needs torch (pip install -e ".[torch]"); without it the command stops with that hint."""
    from evals.sessions import run_sessions, run_validation

    if validation is not None:
        checked = run_validation(data_dir, fraction=validation, seed=seed, epochs=epochs, threads=threads)
        show(checked, as_json, *VIEWS["sessions_validation"])
        return
    result = run_sessions(data_dir, sample=sample, seed=seed, epochs=epochs, threads=threads, progress=not as_json)
    show(result, as_json, *VIEWS["sessions"])

"""``train``: fit models from judged data. ``train ranker``: the learned ranker (retrieval/ltr.py)
from a judgements file in the CrowdFlower eval format, after a k-fold out-of-fold check against
the fusion on the same folds."""

from __future__ import annotations

from pathlib import Path

import click

from shopassist.config import Settings
from ui.cli.options import common_options
from ui.cli.output import show

VIEW = (
    "{queries} queries, {judged_pairs} judged pairs, {crossval[folds]}-fold out-of-fold nDCG@10 (95% CI):",
    "  learned ranker  {crossval[learned_oof][nDCG@10]:.4f} {crossval[learned_oof][ci95]}",
    "  fusion, fitted  {crossval[fusion_fitted_oof][nDCG@10]:.4f} {crossval[fusion_fitted_oof][ci95]}",
    "  fusion, equal   {crossval[fusion_equal][nDCG@10]:.4f} {crossval[fusion_equal][ci95]}",
    "  learned - equal {crossval[learned_minus_fusion_equal][mean]:+.4f} {crossval[learned_minus_fusion_equal][ci95]}",
    "model: {model} ({model_bytes} bytes), scoring {us_per_candidate[model]} us per candidate "
    "(features incl. query embedding {us_per_candidate[features_and_embedding]} us)",
)


@click.group("train")
def train_group() -> None:
    """Fit models from judged data."""


@train_group.command("ranker")
@click.option(
    "--judgements",
    "judgements",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="JSONL rows with query, product_title, product_description, median_relevance (1-4).",
)
@click.option("--folds", type=click.IntRange(2, 50), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold split and the model.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the model (LightGBM text, plus PATH.meta.json) [default: HOME/models/ranker.txt].",
)
@click.option("--json", "as_json", is_flag=True)
@common_options
def train_ranker_command(
    settings: Settings, judgements: Path, folds: int, seed: int, out: Path | None, as_json: bool
) -> None:
    """Cross-validate a LightGBM lambdarank ranker against the fusion, then fit it on every query."""
    from evals.relevance import train_ranker

    def log(message: str) -> None:
        click.echo(message, err=True)

    out = out or settings.home / "models" / "ranker.txt"
    result = train_ranker(judgements, settings=settings, out=out, folds=folds, seed=seed, progress=True, log=log)
    show(result, as_json, *VIEW)
    used = settings.learned_ranker()
    if used is not None and used.resolve() == out.resolve():
        click.echo(
            f"{out}: search ranks with it from the next start (SHOPASSIST_RANKER_MODEL=off: the fusion)", err=True
        )
    else:
        click.echo(f"{out} written; to rank with it, set SHOPASSIST_RANKER_MODEL={out}", err=True)

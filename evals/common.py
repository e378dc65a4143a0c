"""Shared plumbing for the eval suites: qrels/runs as ``dict[qid][doc_id]`` (the ranx /
ir-measures convention), metric computation through ir-measures, cached eval indexes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import ir_measures

from shopassist.config import Settings

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

MEASURES = {
    "MRR@10": ir_measures.RR @ 10,
    "Recall@10": ir_measures.R @ 10,
    "Recall@100": ir_measures.R @ 100,
    "nDCG@10": ir_measures.nDCG @ 10,
}


def evaluate(qrels: Qrels, run: Run, names: Iterable[str]) -> dict[str, float]:
    """Aggregate metrics; queries missing from the run count as zero (not silently dropped)."""
    names = list(names)
    measures = [MEASURES[n] for n in names]
    full_run = {qid: run.get(qid, {}) for qid in qrels}
    # ir-measures skips queries with an empty run; give them a dummy miss so they score 0.
    for qid, docs in full_run.items():
        if not docs:
            full_run[qid] = {"__none__": 0.0}
    agg = ir_measures.calc_aggregate(measures, qrels, full_run)
    return {name: float(agg[m]) for name, m in zip(names, measures, strict=True)}


def per_query(qrels: Qrels, run: Run, name: str) -> dict[str, float]:
    measure = MEASURES[name]
    out = {qid: 0.0 for qid in qrels}
    for m in ir_measures.iter_calc([measure], qrels, {q: run.get(q) or {"__none__": 0.0} for q in qrels}):
        out[m.query_id] = float(m.value)
    return out


def file_digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def eval_home(settings: Settings, name: str, digest: str) -> Settings:
    """A cached home per eval dataset (``digest``: of its files) and embedder, under the user's
    home (never the package). With a Chroma server the collection is named by the embedder too
    (a server is shared by every home; an embedded Chroma lives under the home anyway)."""
    backend = settings.embedder_backend
    embedder = backend if backend != "transformers" else f"tf-{Path(settings.embedder_path or 'x').name}"
    slug = embedder
    collection = f"eval-{name}-{digest}"
    if settings.chroma_host:
        slug += f"-chroma-{settings.chroma_host}"
        collection += f"-{embedder}"
    from dataclasses import replace

    folder = f"{name}-{digest}-{slug}"
    return replace(settings, home=settings.home / "evals" / folder, collection=collection, embedder=backend)

#!/usr/bin/env python3
"""Precompute EmbeddingGemma vectors for the bundled demo catalog (shipped with the package).

    python scripts/precompute_demo_vectors.py [--threads 2]

Embeds every demo product's main text and description text exactly as ``--embedder gemma`` would
(same prompts, same truncation), and writes ``shopassist/resources/demo_vectors_gemma.npz`` (int8
codes + per-vector scales, keyed by a digest of each prompt text; retrieval/gemma.py). Needs the
model installed (`shopassist embedder install`). Rerun after rebuilding the demo catalog: texts
that changed are simply embedded at ingest instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from retrieval.embedders import GGUF_MAX_CHARS, GGUFEmbedder  # noqa: E402
from retrieval.gemma import DEMO_VECTORS, PrecomputedVectors, default_gguf_path  # noqa: E402
from shopassist.models import Product  # noqa: E402
from shopassist.resources import demo_catalog_path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", type=Path, default=default_gguf_path())
    args = ap.parse_args()
    texts: list[str] = []
    with open(demo_catalog_path(), encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                product = Product.model_validate(json.loads(line))
                texts.append(product.embedding_text())
                if doc := product.document_text():
                    texts.append(doc)
    texts = list(dict.fromkeys(texts))
    embedder = GGUFEmbedder(args.model, threads=args.threads, precomputed=False)
    prompts = [embedder.document_prefix + t[:GGUF_MAX_CHARS] for t in texts]
    started = time.perf_counter()
    from tqdm import tqdm

    chunks = []
    for i in tqdm(range(0, len(texts), 256), desc="embedding", unit="batch"):
        chunks.append(embedder.embed_documents(texts[i : i + 256]))
    import numpy as np

    vectors = np.concatenate(chunks)
    PrecomputedVectors.save(DEMO_VECTORS, prompts, vectors, args.model.stem)
    print(
        f"{len(texts)} texts in {time.perf_counter() - started:.0f} s -> {DEMO_VECTORS} "
        f"({DEMO_VECTORS.stat().st_size / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    main()

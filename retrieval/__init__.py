"""Catalog storage and hybrid retrieval (BM25 + Chroma dense), with live updates.

Knows nothing of the assistant, ranking or UI packages.
"""

from retrieval.catalog import Catalog, UpsertResult
from retrieval.embedders import Embedder, OpenAIEmbedder, TransformersEmbedder, USEEmbedder, make_embedder
from retrieval.ingest import IngestReport, ingest_file
from retrieval.lexical import BM25View
from retrieval.mirror import CatalogView
from retrieval.search import HybridConfig, HybridRetriever

__all__ = [
    "BM25View",
    "Catalog",
    "CatalogView",
    "Embedder",
    "HybridConfig",
    "HybridRetriever",
    "IngestReport",
    "OpenAIEmbedder",
    "TransformersEmbedder",
    "USEEmbedder",
    "UpsertResult",
    "ingest_file",
    "make_embedder",
]

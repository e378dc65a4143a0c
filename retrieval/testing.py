"""Test doubles for the retrieval layer, shipped so that any test (ours or a user's) can use them.

``HashingEmbedder`` satisfies the ``Embedder`` protocol without a model: it hashes words and
character n-grams into a fixed number of dimensions (the "hashing trick") and L2-normalises the
result. It is deterministic across processes and machines, needs only numpy, and is fast, so a
catalog built with it exercises the real storage, index and search code in milliseconds::

    from retrieval import Catalog
    from retrieval.testing import HashingEmbedder

    catalog = Catalog(settings, embedder=HashingEmbedder())

Texts that share words or character runs get similar vectors (so "hiking boots" finds
"waterproof hiking boots"); it knows nothing about synonyms or translations.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["HashingEmbedder"]

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACES = re.compile(r"\s+")


class HashingEmbedder:
    """A deterministic, model-free ``Embedder``: hashed words and character n-grams, L2-normalised.

    ``dim`` is the vector size; ``ngrams`` the character n-gram lengths used besides whole words.
    Every text, the empty one included, gets a unit vector (the empty text hashes a fixed marker).
    """

    def __init__(self, dim: int = 256, ngrams: Sequence[int] = (2, 3)) -> None:
        if dim < 8:
            raise ValueError(f"HashingEmbedder needs dim >= 8 (got {dim}).")
        if not ngrams or any(n < 1 for n in ngrams):
            raise ValueError(f"ngrams must be positive lengths (got {list(ngrams)}).")
        self.dim = int(dim)
        self.ngrams = tuple(int(n) for n in ngrams)
        self.name = f"hashing-{self.dim}"

    def _features(self, text: str) -> list[str]:
        text = _SPACES.sub(" ", text.casefold()).strip()
        if not text:
            return ["\x00empty"]
        features = [f"w:{w}" for w in _WORD.findall(text)]
        padded = f" {text} "
        for n in self.ngrams:
            features.extend(f"c{n}:{padded[i : i + n]}" for i in range(max(len(padded) - n + 1, 1)))
        return features

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for feature in self._features(text):
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            sign = 1.0 if value & 1 else -1.0
            vector[(value >> 1) % self.dim] += sign
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:  # the features cancelled out; the marker's single feature never does
            return self._vector("")
        return vector / norm

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """One unit row per text, shape ``(len(texts), dim)``, float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts]).astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of one text, shape ``(dim,)``: the same vector ``embed_documents`` gives it."""
        return self._vector(text)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim}, ngrams={self.ngrams})"

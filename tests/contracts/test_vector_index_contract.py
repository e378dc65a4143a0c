"""The vector index contract: embedded Chroma and a ``chroma run`` server behave alike.

``VectorIndexContract`` defines the behaviour once; each backend's subclass overrides the one
``index`` fixture (the Haystack 2.x pattern). Vectors come from the shipped ``HashingEmbedder``,
so these tests are about the index, not a model.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from retrieval.testing import HashingEmbedder
from retrieval.vector import ChromaVectorIndex
from shopassist.config import Settings
from shopassist.errors import UsageError
from shopassist.models import Product

EMBEDDER = HashingEmbedder(dim=64)
TITLES = {
    "j1": "高腰修身牛仔裤女 黑色 弹力小脚裤",
    "j2": "破洞牛仔裤女 浅蓝色 宽松直筒",
    "b1": "Waterproof Hiking Boots for Men, Brown Leather",
    "b2": "Waterproof Hiking Boots for Women, Black",
    "k1": "Chef knife, Damascus steel",
    "m1": "Essence Mascara Lash Princess",
}


def products(*ids: str) -> list[Product]:
    return [Product(id=i, title=TITLES[i], price=10.0 + k, currency="USD", stock=k) for k, i in enumerate(ids)]


def vectors(items: list[Product]) -> np.ndarray:
    return EMBEDDER.embed_documents([p.title for p in items])


class VectorIndexContract:
    """What every vector index does; a subclass provides ``index`` (empty, fresh per test)."""

    @pytest.fixture()
    def index(self) -> ChromaVectorIndex:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    @staticmethod
    def fill(index: ChromaVectorIndex, *ids: str) -> list[Product]:
        items = products(*(ids or tuple(TITLES)))
        index.upsert(items, vectors(items))
        return items

    def test_a_new_index_is_empty_and_answers_nothing(self, index: ChromaVectorIndex) -> None:
        assert index.count() == 0
        assert index.query(EMBEDDER.embed_query("boots"), 5) == []

    def test_it_keeps_the_dimension_and_embedder_it_was_opened_with(self, index: ChromaVectorIndex) -> None:
        assert (index.dim, index.embedder_name) == (EMBEDDER.dim, EMBEDDER.name)

    def test_upserted_vectors_are_counted_and_found_by_their_own_vector(self, index: ChromaVectorIndex) -> None:
        items = self.fill(index)
        assert index.count() == len(TITLES)
        for product, vector in zip(items, vectors(items), strict=True):
            best, similarity = index.query(vector, 3)[0]
            assert best == product.id and similarity == pytest.approx(1.0, abs=1e-4)

    def test_results_are_cosine_similarities_best_first(self, index: ChromaVectorIndex) -> None:
        items = self.fill(index)
        query = EMBEDDER.embed_query("waterproof hiking boots")
        hits = index.query(query, len(items))
        exact = dict(zip([p.id for p in items], (vectors(items) @ query).tolist(), strict=True))
        assert [pid for pid, _ in hits][:2] in (["b1", "b2"], ["b2", "b1"])
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        for pid, similarity in hits:
            assert similarity == pytest.approx(exact[pid], abs=1e-3), pid

    def test_n_bounds_the_answer(self, index: ChromaVectorIndex) -> None:
        self.fill(index)
        query = EMBEDDER.embed_query("boots")
        assert len(index.query(query, 2)) == 2
        assert len(index.query(query, 100)) == len(TITLES)  # never more than there are
        assert index.query(query, 0) == [] and index.query(query, -3) == []

    def test_upserting_an_id_again_replaces_its_vector(self, index: ChromaVectorIndex) -> None:
        self.fill(index, "j1", "b1", "m1")
        knife = EMBEDDER.embed_documents([TITLES["k1"]])
        index.upsert([Product(id="m1", title=TITLES["k1"], price=59, currency="USD")], knife)
        assert index.count() == 3
        assert index.query(knife[0], 1) == [("m1", pytest.approx(1.0, abs=1e-4))]
        assert "m1" not in [pid for pid, _ in index.query(EMBEDDER.embed_query(TITLES["m1"]), 1)]

    def test_deleted_ids_are_gone(self, index: ChromaVectorIndex) -> None:
        self.fill(index)
        index.delete(["b1", "k1", "not-there"])
        assert index.count() == len(TITLES) - 2
        found = [pid for pid, _ in index.query(EMBEDDER.embed_query(TITLES["b1"]), 10)]
        assert "b1" not in found and "k1" not in found and "b2" in found

    def test_empty_writes_change_nothing(self, index: ChromaVectorIndex) -> None:
        self.fill(index, "j1", "j2")
        index.upsert([], np.zeros((0, EMBEDDER.dim), dtype=np.float32))
        index.delete([])
        assert index.count() == 2

    def test_drop_empties_the_index_and_it_stays_usable(self, index: ChromaVectorIndex) -> None:
        self.fill(index)
        index.drop()
        assert index.count() == 0 and index.query(EMBEDDER.embed_query("boots"), 3) == []
        self.fill(index, "k1")
        assert [pid for pid, _ in index.query(EMBEDDER.embed_query("knife"), 3)] == ["k1"]

    def test_a_second_handle_on_the_same_store_sees_the_vectors(self, index: ChromaVectorIndex) -> None:
        self.fill(index)
        other = ChromaVectorIndex(index.settings, EMBEDDER.name, EMBEDDER.dim)
        assert other.count() == len(TITLES)
        assert other.query(EMBEDDER.embed_query(TITLES["k1"]), 1)[0][0] == "k1"

    def test_opening_it_with_another_embedder_is_refused(self, index: ChromaVectorIndex) -> None:
        self.fill(index, "j1")
        with pytest.raises(UsageError, match="reindex"):
            ChromaVectorIndex(index.settings, "some-other-model", EMBEDDER.dim)
        with pytest.raises(UsageError, match="reindex"):
            ChromaVectorIndex(index.settings, EMBEDDER.name, EMBEDDER.dim * 2)


# -- backends ----------------------------------------------------------------------------------------------
@pytest.mark.integration
class TestEmbeddedChroma(VectorIndexContract):
    """``chromadb.PersistentClient`` in a temp dir (the default)."""

    @pytest.fixture()
    def index(self, tmp_path: Path) -> ChromaVectorIndex:
        index = ChromaVectorIndex(Settings(home=tmp_path / "home"), EMBEDDER.name, EMBEDDER.dim)
        assert not index.remote
        return index


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A ``chroma run`` process on a free port, as tests/test_chroma_server.py starts it."""
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(exe).exists():
        pytest.skip("the chroma CLI is not installed (it comes with the chromadb package)")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-contract")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"chroma run did not start within 60 s (exit code {proc.poll()})")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.integration
@pytest.mark.slow
class TestChromaServer(VectorIndexContract):
    """``chromadb.HttpClient`` against a real ``chroma run`` server; one fresh collection per test."""

    @pytest.fixture()
    def index(self, tmp_path: Path, chroma_server: int) -> ChromaVectorIndex:
        settings = Settings(
            home=tmp_path / "home",
            chroma_host="127.0.0.1",
            chroma_port=chroma_server,
            collection=f"contract-{uuid.uuid4().hex[:12]}",
        )
        index = ChromaVectorIndex(settings, EMBEDDER.name, EMBEDDER.dim)
        assert index.remote
        return index

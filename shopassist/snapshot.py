"""Snapshots of in-memory indexes under HOME/cache, so a fresh process starts in a fraction of a
second instead of rebuilding them from the catalog.

A second ``shopassist ask`` from a fresh process used to spend ~7 s of its ~14 s rebuilding what
the first one had already built: the catalog mirror (products, BM25 postings, filter columns,
vectors: 2.6 s for the 10,485-product demo catalog on 2 cores) and the facet index (jieba over
every title: 4.2 s). Loading their snapshots takes ~0.4 s each.

A snapshot is only ever a cache. It is used when its key matches exactly (which catalog, which
code built it, which tokenizer...); anything else (a missing, stale, truncated or unreadable file,
a different Python) means "rebuild", with the stale file removed, never an error. Files are
written atomically (temp file + rename) and readable by the owner only, like everything else in
HOME; they hold catalog data only, never shoppers' data. They are pickles: whoever can write to
HOME/cache can run code as the HOME's owner, the same as whoever can write HOME's secret key or
the installed packages, which is why HOME is created 0700.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

CACHE_DIR = "cache"
FORMAT = 1


def code_fingerprint(modules: Iterable[ModuleType]) -> str:
    """A digest of the given modules' source files and the Python version: a snapshot built by
    other code (an upgrade, a local edit) is never read by this code."""
    h = hashlib.sha256(f"{FORMAT}:{sys.version_info[:2]}".encode())
    for module in modules:
        path = getattr(module, "__file__", None)
        h.update(str(module.__name__).encode())
        if path:
            with contextlib.suppress(OSError):
                h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    # unpickling millions of small objects triggers the cyclic GC over and over (1.0 s -> 0.36 s)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cache_path(home: Path, name: str) -> Path:
    return Path(home) / CACHE_DIR / f"{name}.pickle"


def load(path: Path, key: Mapping[str, Any]) -> Any | None:
    """The object saved under ``key`` at ``path``, or None (then the caller rebuilds)."""
    try:
        with open(path, "rb") as handle, _no_gc():
            stored_key = pickle.load(handle)
            if stored_key != dict(key):
                log.debug("snapshot %s is for another catalog or code version: rebuilding", path)
                return None
            return pickle.load(handle)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a truncated or foreign file is a cache miss, never an error
        log.warning("snapshot %s cannot be read (%s): rebuilding it", path, exc)
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def save(path: Path, key: Mapping[str, Any], obj: Any) -> bool:
    """Write ``obj`` under ``key`` atomically; False (logged) when it cannot be written: a
    read-only or full disk costs the next process its head start, nothing else."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(dict(key), handle, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return True
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        log.warning("snapshot %s not written (%s): the next process rebuilds it", path, exc)
        return False

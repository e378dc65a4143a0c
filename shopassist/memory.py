"""Handing freed heap back to the system.

Building a large in-memory index (the catalog mirror: millions of small Python objects, and the
rows they were read from) leaves the C allocator holding much of what was freed meanwhile:
glibc keeps freed blocks for reuse instead of returning them, so a worker's resident memory
stays at its building peak. ``malloc_trim(0)`` returns what it can. Measured on a 100k-product
catalog: 1.55 GB resident after building the mirror, 0.86 GB after the trim.

Where the C library is not glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> bool:
    """Collect garbage, then give the freed heap back to the system; True when the C library
    could (glibc's ``malloc_trim``)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    try:
        trim(0)
    except OSError as exc:  # never worth failing a request over
        log.debug("malloc_trim failed: %s", exc)
        return False
    return True

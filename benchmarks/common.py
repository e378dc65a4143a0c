"""Shared by the benchmark scripts: machine facts recorded with every result, percentiles."""

from __future__ import annotations

import contextlib
import os
import platform


def pct(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank (no interpolation)."""
    values = sorted(values)
    idx = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[idx]


def machine() -> dict[str, str | int]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo", encoding="utf-8") as handle:
        mem = int(handle.readline().split()[1]) // 1024 // 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory_gib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }

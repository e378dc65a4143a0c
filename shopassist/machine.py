"""The machine a measurement ran on, recorded with every benchmark and eval result."""

from __future__ import annotations

import contextlib
import os
import platform


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

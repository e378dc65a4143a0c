"""Shared by the benchmark scripts: machine facts recorded with every result, percentiles."""

from __future__ import annotations

from shopassist.machine import machine

__all__ = ["machine", "pct"]


def pct(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank (no interpolation)."""
    values = sorted(values)
    idx = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[idx]

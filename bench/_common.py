"""Small timing helpers shared by the benchmark scripts (no third-party imports)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["Spread", "load_average", "machine", "spread", "timed"]

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


class Spread:
    """Median and min-max of a few measurements."""

    def __init__(self, values: Sequence[float]) -> None:
        if not values:
            raise ValueError("no measurements")
        self.values = list(values)
        self.median = statistics.median(self.values)
        self.low = min(self.values)
        self.high = max(self.values)

    def fmt(self, spec: str = ",.0f", unit: str = "") -> str:
        """`median unit (min–max)`."""
        return (
            f"{self.median:{spec}}{unit} ({self.low:{spec}}–{self.high:{spec}})"
        )


def spread(values: Sequence[float]) -> Spread:
    """The Spread of `values`."""
    return Spread(values)


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine(**extra: Any) -> str:
    """One line describing where a benchmark runs."""
    parts = [
        f"Python {platform.python_version()}",
        f"{os.cpu_count()} CPUs",
        f"load {load_average():.1f}",
    ]
    parts += [f"{key} {value}" for key, value in extra.items()]
    return ", ".join(parts)

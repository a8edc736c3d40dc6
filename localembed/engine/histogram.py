"""A cumulative histogram in Prometheus' sense, kept by whoever observes the values.

The batcher (core) counts what each decode held and the server reports request latency; both
are rendered by the server's /metrics, so the structure lives here, importing neither.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence


class Histogram:
    """Counts of observations at or below each bound, plus their sum; thread-safe."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last is the overflow
        self.sum = 0.0
        self.count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect_left(self.bounds, value)] += 1
            self.sum += value
            self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le label, count at or below it) for every bound, ending with +Inf."""
        with self._lock:
            counts = list(self._counts)
        out, running = [], 0
        for bound, count in zip((*self.bounds, "+Inf"), counts, strict=True):
            running += count
            out.append((str(bound), running))
        return out

    def render(self, name: str, help_text: str, labels: str = "") -> list[str]:
        """Prometheus text lines; ``labels`` like 'model="x"' are added to every sample."""
        sep = "," if labels else ""
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        lines += [f'{name}_bucket{{{labels}{sep}le="{le}"}} {n}' for le, n in self.cumulative()]
        suffix = f"{{{labels}}}" if labels else ""
        lines += [f"{name}_sum{suffix} {self.sum}", f"{name}_count{suffix} {self.count}"]
        return lines

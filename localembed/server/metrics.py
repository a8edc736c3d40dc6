"""Prometheus metrics in the text exposition format, without a client library."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable

from localembed.engine import Engine
from localembed.engine.cache import CacheStats, VectorCache
from localembed.engine.histogram import Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _counter(name: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    return lines + [f"{name}{labels} {value}" for labels, value in samples]


class Metrics:
    """Request counters and a latency histogram, updated from HTTP threads; each loaded
    model's batching figures are read from its batcher when scraped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.inputs = 0
        self.tokens = 0
        self.latency = Histogram(BUCKETS)

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
        self.latency.observe(seconds)

    def count_work(self, inputs: int, tokens: int) -> None:
        with self._lock:
            self.inputs += inputs
            self.tokens += tokens

    def render(self, engines: list[Engine], cache: VectorCache | None = None) -> str:
        with self._lock:
            requests = sorted(self.requests.items())
            inputs, tokens = self.inputs, self.tokens
        lines = _counter("localembed_requests_total", "HTTP requests by route and status.",
                         ((f'{{route="{route}",status="{status}"}}', count)
                          for (route, status), count in requests))
        lines += _counter("localembed_inputs_total", "Inputs embedded.", [("", inputs)])
        lines += _counter("localembed_tokens_total", "Tokens embedded.", [("", tokens)])
        lines += self.latency.render("localembed_request_duration_seconds",
                                     "HTTP request latency.")
        lines += ["# HELP localembed_queue_depth Inputs waiting for a model worker.",
                  "# TYPE localembed_queue_depth gauge",
                  f"localembed_queue_depth {sum(e.batcher.queue_depth() for e in engines)}"]
        models = [(f'model="{e.id}"', e.batcher.stats) for e in engines]
        lines += _counter("localembed_decode_calls_total", "llama.cpp decode calls per model.",
                          ((f"{{{label}}}", stats.decode_calls) for label, stats in models))
        for label, stats in models:
            lines += stats.sequences_per_decode.render(
                "localembed_decode_sequences", "Sequences (inputs) packed into one decode.",
                label)
            lines += stats.tokens_per_decode.render(
                "localembed_decode_tokens", "Tokens packed into one decode.", label)
        if cache is not None:
            lines += _cache_lines(cache.stats())
        return "\n".join(lines) + "\n"


def _cache_lines(stats: CacheStats) -> list[str]:
    lines = _counter("localembed_cache_hits_total",
                     "Inputs answered from the embedding cache (no decode).",
                     [("", stats.hits)])
    lines += _counter("localembed_cache_misses_total", "Inputs the embedding cache lacked.",
                      [("", stats.misses)])
    for name, help_text, value in (
            ("localembed_cache_hit_ratio", "Hits over lookups since start.", stats.hit_rate),
            ("localembed_cache_entries", "Vectors held in memory.", stats.entries),
            ("localembed_cache_bytes", "Bytes held in memory.", stats.bytes),
            ("localembed_cache_max_bytes", "The memory bound (cache_mb).", stats.max_bytes),
            ("localembed_cache_disk_entries", "Vectors in the disk tier.", stats.disk_entries),
            ("localembed_cache_disk_bytes", "Bytes in the disk tier.", stats.disk_bytes)):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    return lines

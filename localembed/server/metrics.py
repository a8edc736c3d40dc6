"""Prometheus metrics in the text exposition format, without a client library."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Counters and a latency histogram; updated from HTTP threads under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.inputs = 0
        self.tokens = 0
        self.buckets = [0] * len(BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            self.latency_sum += seconds
            self.latency_count += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1

    def count_work(self, inputs: int, tokens: int) -> None:
        with self._lock:
            self.inputs += inputs
            self.tokens += tokens

    def render(self, queue_depth: Callable[[], int]) -> str:
        with self._lock:
            lines = [
                "# HELP localembed_requests_total HTTP requests by route and status.",
                "# TYPE localembed_requests_total counter",
            ]
            for (route, status), count in sorted(self.requests.items()):
                lines.append(f'localembed_requests_total{{route="{route}",status="{status}"}} '
                             f"{count}")
            lines += [
                "# HELP localembed_inputs_total Inputs embedded.",
                "# TYPE localembed_inputs_total counter",
                f"localembed_inputs_total {self.inputs}",
                "# HELP localembed_tokens_total Tokens embedded.",
                "# TYPE localembed_tokens_total counter",
                f"localembed_tokens_total {self.tokens}",
                "# HELP localembed_request_duration_seconds HTTP request latency.",
                "# TYPE localembed_request_duration_seconds histogram",
            ]
            for bound, count in zip(BUCKETS, self.buckets, strict=True):
                lines.append(f'localembed_request_duration_seconds_bucket{{le="{bound}"}} '
                             f"{count}")
            lines += [
                f'localembed_request_duration_seconds_bucket{{le="+Inf"}} {self.latency_count}',
                f"localembed_request_duration_seconds_sum {self.latency_sum:.6f}",
                f"localembed_request_duration_seconds_count {self.latency_count}",
                "# HELP localembed_queue_depth Inputs waiting for a model worker.",
                "# TYPE localembed_queue_depth gauge",
                f"localembed_queue_depth {queue_depth()}",
            ]
        return "\n".join(lines) + "\n"

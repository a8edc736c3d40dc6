"""Dynamic batching: one worker thread owns the model and packs work from many callers.

``llama_cpp.Llama`` has no locking, and one decode of 32 short texts costs about as much as one
decode of one, so every caller enqueues tokenized sequences and waits on a future while this
thread drains the queue, packs sequences from all pending requests into batches by token
budget and scatters the pooled vectors back.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

import numpy as np

from localembed.engine.llama import LlamaRunner


class EngineClosed(RuntimeError):
    """The engine was closed (or its model unloaded) before the request ran."""


class Overloaded(RuntimeError):
    """The model's queue is full; the caller should retry shortly."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(eq=False)
class _Job:
    """One request's sequences. Its future stays pending (never 'running') until the last
    vector is in, so the caller can cancel it at any point and the rest is dropped."""

    sequences: list[list[int]]
    future: Future
    vectors: np.ndarray | None = None
    remaining: int = 0
    todo: deque[int] = field(default_factory=deque)  # indices not yet scheduled
    tokens: int = 0

    def __post_init__(self) -> None:
        self.remaining = len(self.sequences)
        self.todo = deque(range(len(self.sequences)))
        self.tokens = sum(len(s) for s in self.sequences)

    def settle(self, result: object = None, error: BaseException | None = None) -> None:
        """Finish the future unless the caller already cancelled it."""
        try:
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)
        except InvalidStateError:  # cancelled meanwhile
            pass


@dataclass
class BatcherStats:
    """Counters for metrics and tests; updated only by the worker thread."""

    decode_calls: int = 0
    sequences: int = 0
    tokens: int = 0
    failed_batches: int = 0
    busy_seconds: float = 0.0


_STOP = object()


class Batcher:
    """The worker thread and its queue for one loaded model."""

    def __init__(self, runner: LlamaRunner, pack_tokens: int = 512, window_batches: int = 8,
                 name: str = "model", max_queued_tokens: int = 2_000_000) -> None:
        self.runner = runner
        # A sequence longer than pack_tokens still runs, alone in its batch.
        self.pack_tokens = max(1, min(pack_tokens, runner.batch_tokens))
        self.max_sequences = runner.max_sequences
        # How far past the oldest pending sequence the worker may look when sorting by length:
        # bounded so that a long request never starves later short ones.
        self.window_tokens = self.pack_tokens * window_batches
        self.stats = BatcherStats()
        # Work accepted but not yet decoded, in tokens: bounded, so a flood of requests gets a
        # quick 503 instead of holding HTTP threads in an unbounded wait.
        self.max_queued_tokens = max_queued_tokens
        self._queued_tokens = 0
        self._count_lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs: deque[_Job] = deque()
        self._closed = threading.Event()
        self._drain = False
        self._thread = threading.Thread(target=self._run, name=f"localembed-{name}", daemon=True)
        self._thread.start()

    def submit(self, sequences: list[list[int]]) -> Future:
        """Queue tokenized sequences; the future yields their pooled vectors, in order."""
        future: Future = Future()
        if self._closed.is_set():
            future.set_exception(EngineClosed("the model has been unloaded"))
            return future
        if not sequences:
            future.set_result(np.zeros((0, self.runner.dimensions), dtype=np.float32))
            return future
        job = _Job(sequences, future)
        with self._count_lock:
            if self._queued_tokens and self._queued_tokens + job.tokens > self.max_queued_tokens:
                raise Overloaded(f"the model is busy ({self._queued_tokens} tokens queued); "
                                 "retry shortly", retry_after=self._eta())
            self._queued_tokens += job.tokens
        self._queue.put(job)
        return future

    def _eta(self) -> float:
        """Seconds until the queue would have room, from the throughput seen so far."""
        rate = self.stats.tokens / self.stats.busy_seconds if self.stats.busy_seconds else 0
        return max(1.0, min(60.0, self._queued_tokens / rate)) if rate else 1.0

    def _release(self, tokens: int) -> None:
        with self._count_lock:
            self._queued_tokens -= tokens

    def queue_depth(self) -> int:
        """Sequences waiting (approximate: read without locking, for metrics)."""
        return sum(len(j.todo) for j in list(self._jobs)) + self._queue.qsize()

    def queued_tokens(self) -> int:
        return self._queued_tokens

    def close(self, timeout: float | None = None, drain: bool = False) -> None:
        """Stop the worker and free the model.

        With ``drain`` every request queued before the call is still served (how a model is
        unloaded or switched without dropping work in flight); otherwise they fail with
        EngineClosed after the batch in flight.
        """
        if self._closed.is_set():
            return
        self._drain = drain
        self._closed.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- worker side -------------------------------------------------------------------------

    def _take(self, item: object) -> bool:
        """Move one queue item into the job list; False on the stop marker."""
        if item is _STOP:
            return False
        self._jobs.append(item)  # type: ignore[arg-type]
        return True

    def _drain_queue(self, stopping: bool) -> bool:
        while not stopping:
            try:
                stopping = not self._take(self._queue.get_nowait())
            except queue.Empty:
                break
        return stopping

    def _run(self) -> None:
        stopping = False
        while True:
            self._drop_cancelled()
            if not self._jobs:
                if stopping:
                    break
                stopping = not self._take(self._queue.get())
            stopping = self._drain_queue(stopping)
            if stopping and not self._drain:
                break
            batches = self._next_batches()
            for k, batch in enumerate(batches):
                self._decode(batch)
                if k + 1 < len(batches) and not self._queue.empty():
                    # Newcomers wait at most one batch: put the rest back and re-plan.
                    self._put_back([i for b in batches[k + 1:] for i in b])
                    break
        self._fail_pending()
        self.runner.close()

    def _put_back(self, items: list[tuple[_Job, int]]) -> None:
        """Return planned but undecoded sequences to their requests, first in line."""
        returning: list[_Job] = []
        for job, index in reversed(items):
            job.todo.appendleft(index)
            if job not in returning:
                returning.append(job)
        scheduled = set(map(id, self._jobs))
        for job in returning:
            if id(job) not in scheduled:
                self._jobs.appendleft(job)

    def _drop_cancelled(self) -> None:
        """Forget requests whose caller gave up (timeout, disconnect): their sequences go."""
        kept: deque[_Job] = deque()
        for job in self._jobs:
            if job.future.done():
                self._release(sum(len(job.sequences[i]) for i in job.todo))
                job.todo.clear()
            elif job.todo:
                kept.append(job)
        self._jobs = kept

    def _next_batches(self) -> list[list[tuple[_Job, int]]]:
        """Pack pending sequences into batches, taking them round-robin across requests
        (one sequence per request per turn), so a large request cannot hold small ones back,
        then sorting the window by length for tight packing."""
        window: list[tuple[_Job, int]] = []
        budget = 0
        while budget < self.window_tokens:
            took = False
            for job in self._jobs:
                if not job.todo or job.future.done():
                    continue
                index = job.todo.popleft()
                window.append((job, index))
                budget += len(job.sequences[index])
                took = True
                if budget >= self.window_tokens:
                    break
            if not took:
                break
        self._jobs = deque(j for j in self._jobs if j.todo)  # cancelled: _drop_cancelled
        window.sort(key=lambda item: len(item[0].sequences[item[1]]))
        batches: list[list[tuple[_Job, int]]] = []
        current: list[tuple[_Job, int]] = []
        tokens = 0
        for item in window:
            size = len(item[0].sequences[item[1]])
            if current and (tokens + size > self.pack_tokens
                            or len(current) >= self.max_sequences):
                batches.append(current)
                current, tokens = [], 0
            current.append(item)
            tokens += size
        if current:
            batches.append(current)
        return batches

    def _decode(self, batch: list[tuple[_Job, int]]) -> None:
        dropped = [item for item in batch if item[0].future.done()]
        if dropped:
            self._release(sum(len(job.sequences[index]) for job, index in dropped))
        batch = [item for item in batch if not item[0].future.done()]
        if not batch:
            return
        sequences = [job.sequences[index] for job, index in batch]
        started = time.perf_counter()
        try:
            vectors = self.runner.decode(sequences)
        except Exception as exc:  # llama_decode failure: fail these requests, keep serving
            self.stats.failed_batches += 1
            self._release(sum(len(s) for s in sequences))
            for job, _ in batch:
                self._release(sum(len(job.sequences[i]) for i in job.todo))
                job.todo.clear()
                job.settle(error=RuntimeError(f"llama.cpp decode failed: {exc}"))
            return
        self.stats.busy_seconds += time.perf_counter() - started
        self._release(sum(len(s) for s in sequences))
        self.stats.decode_calls += 1
        self.stats.sequences += len(sequences)
        self.stats.tokens += sum(len(s) for s in sequences)
        for row, (job, index) in enumerate(batch):
            if job.vectors is None:
                job.vectors = np.empty((len(job.sequences), vectors.shape[1]), dtype=np.float32)
            job.vectors[index] = vectors[row]
            job.remaining -= 1
            if job.remaining == 0:
                job.settle(job.vectors)

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                self._jobs.append(item)
        for job in self._jobs:
            job.settle(error=EngineClosed("the model was unloaded"))
        self._jobs.clear()
        with self._count_lock:
            self._queued_tokens = 0

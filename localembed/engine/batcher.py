"""Dynamic batching: one worker thread owns the model and packs work from many callers.

``llama_cpp.Llama`` has no locking, and one decode of 32 short texts costs about as much as one
decode of one, so every caller enqueues tokenized sequences and waits on a future while this
thread drains the queue, packs sequences from all pending requests into batches by token
budget and scatters the pooled vectors back.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from localembed.engine.llama import LlamaRunner


class EngineClosed(RuntimeError):
    """The engine was closed (or its model unloaded) before the request ran."""


@dataclass(eq=False)
class _Job:
    sequences: list[list[int]]
    future: Future
    vectors: np.ndarray | None = None
    remaining: int = 0

    def __post_init__(self) -> None:
        self.remaining = len(self.sequences)


@dataclass
class BatcherStats:
    """Counters for metrics and tests; updated only by the worker thread."""

    decode_calls: int = 0
    sequences: int = 0
    tokens: int = 0
    failed_batches: int = 0


_STOP = object()


class Batcher:
    """The worker thread and its queue for one loaded model."""

    def __init__(self, runner: LlamaRunner, pack_tokens: int = 512, window_batches: int = 8,
                 name: str = "model") -> None:
        self.runner = runner
        # A sequence longer than pack_tokens still runs, alone in its batch.
        self.pack_tokens = max(1, min(pack_tokens, runner.batch_tokens))
        self.max_sequences = runner.max_sequences
        # How far past the oldest pending sequence the worker may look when sorting by length:
        # bounded so that a long request never starves later short ones.
        self.window_tokens = self.pack_tokens * window_batches
        self.stats = BatcherStats()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: deque[tuple[_Job, int]] = deque()
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
        self._queue.put(_Job(sequences, future))
        return future

    def queue_depth(self) -> int:
        """Sequences waiting (approximate: read without locking, for metrics)."""
        return len(self._pending) + self._queue.qsize()

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
        """Move one queue item into the pending list; False on the stop marker."""
        if item is _STOP:
            return False
        job = item
        if job.future.set_running_or_notify_cancel():
            self._pending.extend((job, i) for i in range(len(job.sequences)))
        return True

    def _run(self) -> None:
        stopping = False
        while True:
            if not self._pending:
                if stopping:
                    break
                stopping = not self._take(self._queue.get())
            while not stopping:
                try:
                    stopping = not self._take(self._queue.get_nowait())
                except queue.Empty:
                    break
            if stopping and not self._drain:
                break
            if self._pending:
                for batch in self._next_batches():
                    self._decode(batch)
        self._fail_pending()
        self.runner.close()

    def _next_batches(self) -> list[list[tuple[_Job, int]]]:
        """Pack the oldest pending sequences, sorted by length, into batches."""
        window: list[tuple[_Job, int]] = []
        budget = 0
        while self._pending and (not window or budget < self.window_tokens):
            job, index = self._pending.popleft()
            if job.future.done():  # failed or cancelled meanwhile
                continue
            window.append((job, index))
            budget += len(job.sequences[index])
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
        batch = [item for item in batch if not item[0].future.done()]
        if not batch:
            return
        sequences = [job.sequences[index] for job, index in batch]
        try:
            vectors = self.runner.decode(sequences)
        except Exception as exc:  # llama_decode failure: fail these requests, keep serving
            self.stats.failed_batches += 1
            for job, _ in batch:
                if not job.future.done():
                    job.future.set_exception(RuntimeError(f"llama.cpp decode failed: {exc}"))
            return
        self.stats.decode_calls += 1
        self.stats.sequences += len(sequences)
        self.stats.tokens += sum(len(s) for s in sequences)
        for row, (job, index) in enumerate(batch):
            if job.vectors is None:
                job.vectors = np.empty((len(job.sequences), vectors.shape[1]), dtype=np.float32)
            job.vectors[index] = vectors[row]
            job.remaining -= 1
            if job.remaining == 0 and not job.future.done():
                job.future.set_result(job.vectors)

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                self._pending.append((item, 0))
        for job, _ in self._pending:
            if not job.future.done():
                job.future.set_exception(EngineClosed("the model was unloaded"))
        self._pending.clear()

"""Dynamic batching: worker threads pack work from many callers into shared decodes.

One decode of 32 short texts costs far less than 32 decodes of one, so every caller enqueues
tokenized sequences and waits on a future while the model's workers pack sequences from all
pending requests into batches by token budget and scatter the pooled vectors back. Each worker
decodes in its own llama.cpp context; on CPU they share the cores (a lone worker takes them
all, busy workers split them), so a burst keeps every core busy without any two decodes
fighting over the same cores.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

import numpy as np

from localembed.engine.histogram import Histogram
from localembed.engine.llama import LlamaRunner

# What one decode held: how well batching packs requests together, visible in /metrics.
SEQUENCE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 32768)


class EngineClosed(RuntimeError):
    """The engine was closed (or its model unloaded) before the request ran."""


class NonFiniteOutput(RuntimeError):
    """The model computed NaN or infinity for an input: no vector is better than a wrong one
    (JSON would carry it as ``null``)."""

    def __init__(self, index: int) -> None:
        super().__init__(
            f"the model computed NaN or infinite values for input {index}: its output cannot "
            "be trusted (a numerically unstable model file, such as an f16 EmbeddingGemma; "
            "its Q8_0, BF16 or F32 file computes it)")
        self.index = index  # the input's place in what was submitted


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
    """Counters for metrics and tests; updated by the workers under the batcher's lock."""

    decode_calls: int = 0
    sequences: int = 0
    tokens: int = 0
    failed_batches: int = 0
    busy_seconds: float = 0.0
    sequences_per_decode: Histogram = field(default_factory=lambda: Histogram(SEQUENCE_BUCKETS))
    tokens_per_decode: Histogram = field(default_factory=lambda: Histogram(TOKEN_BUCKETS))


Batch = list[tuple[_Job, int]]


def non_finite_rows(vectors: np.ndarray) -> set[int]:
    """The rows holding NaN or infinity. NaN and infinity reach the sum, so a finite sum
    answers in one numpy call (the exact check is five, each 5-20 us right after a decode has
    evicted the caches); a sum that overflowed on huge finite values is checked exactly."""
    if math.isfinite(vectors.sum()):
        return set()
    return set(np.flatnonzero(~np.isfinite(vectors).all(axis=1)).tolist())


class Batcher:
    """The worker threads and the shared queue of one loaded model.

    All scheduling state (arrivals, jobs, the current plan, thread shares) is guarded by one
    condition; decoding happens outside it.
    """

    def __init__(self, runner: LlamaRunner, pack_tokens: int = 512, window_batches: int = 8,
                 name: str = "model", max_queued_tokens: int = 2_000_000,
                 warmup: list[int] | None = None) -> None:
        self.runner = runner
        # Each worker decodes this once with as many threads as it will ever use, so that
        # its OpenMP team exists from the start instead of appearing with a later request.
        self._warmup = warmup
        # A sequence longer than pack_tokens still runs, alone in its batch.
        self.pack_tokens = max(1, min(pack_tokens, runner.batch_tokens))
        self.max_sequences = runner.max_sequences
        # How far past the oldest pending sequence a plan may look when sorting by length:
        # bounded so that a long request never starves later short ones.
        self.window_tokens = self.pack_tokens * window_batches
        self.stats = BatcherStats()
        # Work accepted but not yet decoded, in tokens: bounded, so a flood of requests gets a
        # quick 503 instead of holding HTTP threads in an unbounded wait.
        self.max_queued_tokens = max_queued_tokens
        self._queued_tokens = 0
        lock = threading.RLock()
        # The lock over all scheduling state; its waiters are workers waiting for CPU threads.
        self._cond = threading.Condition(lock)
        # Each idle worker waits on its own condition, so that a request wakes the one worker
        # that will take it: waking them all made every other one take the GIL for nothing,
        # just when the caller's thread needed it (one short text: 0.1 ms of its latency).
        self._idle_cond = [threading.Condition(lock) for _ in range(runner.workers)]
        self._arrived: deque[_Job] = deque()  # submitted, not yet planned
        self._jobs: deque[_Job] = deque()  # with sequences not yet planned
        self._plan: deque[Batch] = deque()  # planned batches not yet taken by a worker
        self._closed = False
        self._drain = False
        # CPU threads: a worker alone takes them all; busy workers each take their share.
        self._threads = runner.threads
        self._share = max(1, runner.threads // runner.workers)
        self._free_threads = runner.threads
        self._busy = 0
        # Workers looking for work. An idle worker takes work only when no lower-numbered one
        # is idle, so a lone request always goes to the same worker: its OpenMP team is still
        # spinning and its caches warm (alternating workers doubled one-text latency).
        self._idle: set[int] = set()
        self._running = runner.workers
        self._threads_list = [
            threading.Thread(target=self._run, args=(i,), name=f"localembed-{name}-{i}",
                             daemon=True)
            for i in range(runner.workers)
        ]
        for thread in self._threads_list:
            thread.start()

    def submit(self, sequences: list[list[int]]) -> Future:
        """Queue tokenized sequences; the future yields their pooled vectors, in order."""
        future: Future = Future()
        if not sequences:
            future.set_result(np.zeros((0, self.runner.dimensions), dtype=np.float32))
            return future
        job = _Job(sequences, future)
        with self._cond:
            if self._closed:
                future.set_exception(EngineClosed("the model has been unloaded"))
                return future
            if self._queued_tokens and self._queued_tokens + job.tokens > self.max_queued_tokens:
                raise Overloaded(f"the model is busy ({self._queued_tokens} tokens queued); "
                                 "retry shortly", retry_after=self._eta())
            self._queued_tokens += job.tokens
            self._arrived.append(job)
            if self._idle:
                self._idle_cond[min(self._idle)].notify()  # the one that takes it: see _idle
        return future

    def _eta(self) -> float:
        """Seconds until the queue would have room, from the throughput seen so far."""
        busy = self.stats.busy_seconds / max(1, self.runner.workers)
        rate = self.stats.tokens / busy if busy else 0
        return max(1.0, min(60.0, self._queued_tokens / rate)) if rate else 1.0

    def queue_depth(self) -> int:
        """Sequences waiting (approximate: read without locking, for metrics)."""
        return (sum(len(j.todo) for j in list(self._jobs))
                + sum(len(j.sequences) for j in list(self._arrived))
                + sum(len(b) for b in list(self._plan)))

    def queued_tokens(self) -> int:
        return self._queued_tokens

    def close(self, timeout: float | None = None, drain: bool = False) -> None:
        """Stop the workers and free the model.

        With ``drain`` every request queued before the call is still served (how a model is
        unloaded or switched without dropping work in flight); otherwise they fail with
        EngineClosed after the batches in flight.
        """
        with self._cond:
            if self._closed:
                return
            self._drain = drain
            self._closed = True
            self._wake_idle()
            self._cond.notify_all()
        for thread in self._threads_list:
            if thread is not threading.current_thread():
                thread.join(timeout)

    # -- worker side (everything below runs under self._cond unless it says otherwise) -----

    def _run(self, worker: int) -> None:
        if self._warmup is not None:
            with contextlib.suppress(Exception):  # a real request will report the failure
                self.runner.decode([self._warmup], worker, self._most_threads(worker))
        while True:
            with self._cond:
                self._idle.add(worker)
                try:
                    batch = self._next_batch(worker)
                finally:
                    self._idle.discard(worker)
                if batch is None:
                    self._running -= 1
                    last = self._running == 0
                    if last:
                        self._fail_pending()
                    break
                threads = self._claim_threads(worker)
            try:
                self._decode(batch, worker, threads)
            finally:
                with self._cond:
                    self._free_threads += threads
                    self._busy -= 1
                    self._cond.notify_all()
        if last:
            self.runner.close()

    def _next_batch(self, worker: int) -> Batch | None:
        """The next batch to decode (waiting for work), or None when the worker should stop."""
        while True:
            self._drop_cancelled()
            if self._closed and not self._drain:
                return None
            if self._arrived:
                # Newcomers wait at most one batch: unplanned work goes back and is re-planned
                # with them.
                self._put_back()
                self._jobs.extend(self._arrived)
                self._arrived.clear()
            if not self._plan and self._jobs:
                self._plan.extend(self._plan_batches())
            if self._plan and not any(other < worker for other in self._idle):
                self._busy += 1
                batch = self._plan.popleft()
                if self._plan:
                    self._wake_idle()  # more planned work: wake another worker for it
                return batch
            if self._closed:  # draining, and nothing is left
                return None
            if self._busy == 0:
                self.runner.release()  # idle: give a long-input context's memory back
            self._idle_cond[worker].wait()

    def _wake_idle(self) -> None:
        for worker in self._idle:
            self._idle_cond[worker].notify()

    def _most_threads(self, worker: int) -> int:
        """Only the first worker ever decodes with more than its share: every worker that
        decodes with several threads keeps an OpenMP team, and an idle team slowed the busy
        one's decodes by half (measured: one short text, 4 ms against 7 ms)."""
        return self._threads if worker == 0 else self._share

    def _claim_threads(self, worker: int) -> int:
        """CPU threads for this worker's decode: all of them when it is the only work in
        sight, else its share, waiting for a busy worker to hand threads back if need be."""
        if self._busy == 1 and not self._plan and not self._jobs and not self._arrived:
            want = min(self._free_threads, self._most_threads(worker))
        else:
            want = self._share
        while self._free_threads < want:
            self._cond.wait()
        self._free_threads -= want
        return want

    def _put_back(self) -> None:
        """Return planned but undecoded sequences to their requests, first in line."""
        returning: list[_Job] = []
        while self._plan:
            for job, index in reversed(self._plan.pop()):
                job.todo.appendleft(index)
                if job not in returning:
                    returning.append(job)
        scheduled = set(map(id, self._jobs))
        for job in returning:
            if id(job) not in scheduled:
                self._jobs.appendleft(job)

    def _release(self, tokens: int) -> None:
        self._queued_tokens -= tokens

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

    def _plan_batches(self) -> list[Batch]:
        """Pack pending sequences into batches, taking them round-robin across requests
        (one sequence per request per turn), so a large request cannot hold small ones back."""
        window: Batch = []
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
        return self._balance(window)

    def _balance(self, window: Batch) -> list[Batch]:
        """As few batches as the token budget allows, holding near-equal token counts.

        Workers decode side by side, so a batch half the size of its neighbour leaves a core
        idle for half the time: sequences go longest first into the emptiest batch that still
        has room (a new batch only when none has).
        """
        def size(item: tuple[_Job, int]) -> int:
            return len(item[0].sequences[item[1]])

        total = sum(size(item) for item in window)
        bins = max(1, -(-total // self.pack_tokens), -(-len(window) // self.max_sequences))
        batches: list[Batch] = [[] for _ in range(bins)]
        tokens = [0] * bins
        for item in sorted(window, key=size, reverse=True):
            n = size(item)
            fits = [b for b in range(len(batches))
                    if tokens[b] + n <= self.pack_tokens
                    and len(batches[b]) < self.max_sequences]
            if not fits:  # longer than the budget (runs alone) or the bins are full
                batches.append([])
                tokens.append(0)
                fits = [len(batches) - 1]
            b = min(fits, key=tokens.__getitem__)
            batches[b].append(item)
            tokens[b] += n
        # Shortest request first: the batch finishing the request with the least work left
        # runs first, so a one-text request planned beside a 300-text one waits one decode,
        # not the whole window (sort is stable: the rest keep their order).
        planned = [batch for batch in batches if batch]
        planned.sort(key=lambda batch: min(job.remaining for job, _ in batch))
        return planned

    def _decode(self, batch: Batch, worker: int, threads: int) -> None:
        """Decode one batch (outside the lock) and hand each vector to its request."""
        with self._cond:
            dropped = [item for item in batch if item[0].future.done()]
            if dropped:
                self._release(sum(len(job.sequences[index]) for job, index in dropped))
            batch = [item for item in batch if not item[0].future.done()]
        if not batch:
            return
        sequences = [job.sequences[index] for job, index in batch]
        tokens = sum(len(s) for s in sequences)
        started = time.perf_counter()
        try:
            vectors = self.runner.decode(sequences, worker, threads)
        except Exception as exc:  # llama_decode failure: fail these requests, keep serving
            with self._cond:
                self.stats.failed_batches += 1
                self._release(tokens)
                for job, _ in batch:
                    self._release(sum(len(job.sequences[i]) for i in job.todo))
                    job.todo.clear()
                    job.settle(error=RuntimeError(f"llama.cpp decode failed: {exc}"))
            return
        bad = self._non_finite(vectors, sequences, worker, threads)
        seconds = time.perf_counter() - started
        with self._cond:
            self._release(tokens)
            self.stats.busy_seconds += seconds
            self.stats.decode_calls += 1
            self.stats.sequences += len(sequences)
            self.stats.tokens += tokens
            self.stats.sequences_per_decode.observe(len(sequences))
            self.stats.tokens_per_decode.observe(tokens)
            for row, (job, index) in enumerate(batch):
                if job.future.done():
                    continue
                if row in bad:
                    self._release(sum(len(job.sequences[i]) for i in job.todo))
                    job.todo.clear()
                    job.settle(error=NonFiniteOutput(index))
                    continue
                if len(job.sequences) == 1:
                    # Its own copy in one numpy call; a view would keep the whole batch alive.
                    job.settle(vectors[row:row + 1].copy())
                    continue
                if job.vectors is None:
                    job.vectors = np.empty((len(job.sequences), vectors.shape[1]),
                                           dtype=np.float32)
                job.vectors[index] = vectors[row]
                job.remaining -= 1
                if job.remaining == 0:
                    job.settle(job.vectors)

    def _non_finite(self, vectors: np.ndarray, sequences: list[list[int]], worker: int,
                    threads: int) -> set[int]:
        """Rows of a decode that are not finite, after decoding each of them alone (a NaN in
        one sequence can reach its batch-mates through attention's masked cells), and
        writing the ones that then come out finite back into ``vectors``."""
        rows = non_finite_rows(vectors)
        if not rows or len(sequences) == 1:
            return rows
        still: set[int] = set()
        for row in sorted(rows):
            try:
                alone = self.runner.decode([sequences[row]], worker, threads)
            except Exception:  # noqa: BLE001 (reported as the row's failure)
                still.add(row)
                continue
            if np.isfinite(alone).all():
                vectors[row] = alone[0]
            else:
                still.add(row)
        return still

    def _fail_pending(self) -> None:
        """The last worker out fails whatever is still queued."""
        for job in (*self._jobs, *self._arrived, *(j for b in self._plan for j, _ in b)):
            job.settle(error=EngineClosed("the model was unloaded"))
        self._jobs.clear()
        self._arrived.clear()
        self._plan.clear()
        self._queued_tokens = 0

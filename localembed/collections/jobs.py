"""Index runs in the background, for the HTTP API (web UI, tray): one per collection, with
progress to poll or stream and a cancel that keeps what was written."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from localembed.collections.ingest import (
    IndexCancelled,
    IndexOptions,
    IndexProgress,
    IndexReport,
    index,
)
from localembed.service.execute import Service

FINAL = ("done", "cancelled", "error")


@dataclass
class IndexJob:
    collection: str
    paths: list[str]
    progress: IndexProgress
    cancel: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)
    report: IndexReport | None = None
    error: str | None = None
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.progress.status not in FINAL

    def update(self, progress: IndexProgress) -> None:
        with self.changed:
            self.progress = progress
            self.changed.notify_all()


class IndexJobs:
    """The index runs of one server, by collection."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._jobs: dict[str, IndexJob] = {}
        self._lock = threading.Lock()

    def start(self, name: str, paths: Sequence[str],
              options: IndexOptions) -> tuple[IndexJob, bool]:
        """(job, started): a run already going for the collection is returned, not doubled."""
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and job.running:
                return job, False
            job = IndexJob(name, list(paths), IndexProgress(name))
            self._jobs[name] = job

        latest = [job.progress]

        def progress(p: IndexProgress) -> None:
            latest[0] = p  # the run's own object, which it goes on changing
            if p.status != "done":  # done is said once the report is there to read
                job.update(replace(p))

        def run() -> None:
            try:
                job.report = index(self.service, name, job.paths, options, progress,
                                   job.cancel)
                job.update(replace(latest[0], status="done"))
            except IndexCancelled:
                job.update(replace(latest[0], status="cancelled"))
            except BaseException as exc:  # never leave a job "embedding" forever
                job.error = str(exc) or type(exc).__name__
                job.update(replace(latest[0], status="error"))
            finally:
                job.finished = time.time()

        threading.Thread(target=run, name=f"index-{name}", daemon=True).start()
        return job, True

    def get(self, name: str) -> IndexJob | None:
        return self._jobs.get(name)

    def running(self, name: str) -> bool:
        job = self._jobs.get(name)
        return job is not None and job.running

    def cancel(self, name: str) -> IndexJob | None:
        job = self._jobs.get(name)
        if job is not None:
            job.cancel.set()
        return job

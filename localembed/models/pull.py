"""Downloading catalog models with huggingface_hub: resumable, verified, observable.

The transfer is huggingface_hub's own (``get_hf_file_metadata`` and ``http_get``: it honours
``HF_ENDPOINT``, ``HF_TOKEN`` and proxy variables, and retries a dropped connection from where it
stopped). ``hf_hub_download`` itself is not used because since huggingface_hub 2.x it deletes
its partial file on any failure; here the partial file persists (``.part``, tied to the hub's
ETag), so a cancelled or killed pull resumes from where it stopped. Around the transfer this
module adds what a desktop user needs: a free-space check before starting, a lock so two pulls
of one model cannot collide, progress with speed and ETA that a CLI bar or the web UI can show,
cancellation, and a size + sha256 check that deletes a bad file instead of installing it.

Whatever the outcome, a pull leaves behind only what a later pull can resume (a partial file
with bytes in it, and its ETag, after a cancel, an interruption or a dropped connection): no
lock file, no empty folder, nothing at all after a pull that failed for good.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import msgspec
from filelock import FileLock

from localembed.config.paths import models_dir
from localembed.models.catalog import CatalogEntry, Source, is_builtin, lookup
from localembed.models.starter import STARTER_ID, StarterMissing, ensure_starter

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
DISK_MARGIN = 64 * 1024 * 1024
# huggingface_hub writes (and so can resume, report progress and notice a cancel) once per
# chunk; its default is 10 MB. 1 MiB keeps the bar smooth and cancel prompt at no cost.
CHUNK_SIZE = 1024 * 1024


class PullError(Exception):
    """A pull failed; the message says why and what to do."""


class PullCancelled(PullError):
    """The user cancelled; the partial file stays for a later resume."""


Status = Literal["queued", "checking", "downloading", "verifying", "done", "error",
                 "cancelled"]
FINAL: tuple[Status, ...] = ("done", "error", "cancelled")  # a pull in these has ended


class Progress(msgspec.Struct, kw_only=True):
    """The state of one pull: what the API answers (``GET /v1/pull/{id}``, its events) and the
    CLI's bar shows. Changed through ``PullTask.update``, which keeps ``percent``."""

    model: str
    status: Status
    downloaded: int
    total: int | None = None
    resumed_from: int = 0
    speed: float = 0.0  # bytes per second, smoothed
    eta: float | None = None  # seconds
    error: str | None = None
    source: str | None = None  # the hub repository being downloaded from
    notice: str | None = None  # why an earlier source was passed over, if one was
    started: float = msgspec.field(default_factory=time.time)
    finished: float | None = None
    percent: float

    def measure(self) -> None:
        """Set ``percent`` from the bytes downloaded."""
        if not self.total:
            self.percent = 100.0 if self.status == "done" else 0.0
        else:
            self.percent = round(100.0 * self.downloaded / self.total, 2)


class PullTask:
    """One pull's progress, listeners and cancel switch, shared between threads."""

    def __init__(self, model: str) -> None:
        self.progress = Progress(model=model, status="queued", downloaded=0, percent=0.0)
        self.cancelled = threading.Event()
        self.changed = threading.Condition()
        self._listeners: list[Callable[[Progress], None]] = []
        self._last = (time.monotonic(), 0)

    def listen(self, callback: Callable[[Progress], None]) -> None:
        self._listeners.append(callback)

    def update(self, **fields: object) -> None:
        with self.changed:
            for key, value in fields.items():
                setattr(self.progress, key, value)
            self.progress.measure()
            self.changed.notify_all()
        for callback in self._listeners:
            callback(self.progress)

    def advance(self, n: int) -> None:
        if self.cancelled.is_set():
            raise PullCancelled(f"pull of {self.progress.model} cancelled")
        p = self.progress
        now = time.monotonic()
        downloaded = p.downloaded + n
        then, before = self._last
        speed = p.speed
        if now - then >= 0.25:
            instant = (downloaded - before) / (now - then)
            speed = instant if not p.speed else 0.7 * p.speed + 0.3 * instant
            self._last = (now, downloaded)
        eta = (p.total - downloaded) / speed if p.total and speed > 0 else None
        self.update(downloaded=downloaded, speed=speed, eta=eta)


def _tqdm_for(task: PullTask) -> type:
    """A tqdm class that reports huggingface_hub's progress to ``task`` (and stays silent)."""
    from tqdm.auto import tqdm

    class Reporter(tqdm):  # type: ignore[misc, valid-type]
        # tqdm starts a monitor thread per class; a class per pull would leak one per pull.
        monitor_interval = 0

        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            initial = int(kwargs.get("initial") or 0)  # type: ignore[call-overload]
            if initial:
                task.update(resumed_from=initial, downloaded=initial)

        def update(self, n: float | None = 1) -> bool | None:
            task.advance(int(n or 0))
            return None

    return Reporter


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def metadata_path(model_id: str) -> Path:
    return models_dir() / f"{model_id}.json"


class SourceRefused(PullError):
    """This source cannot give a servable file; the next source may."""


def pull(name: str, task: PullTask | None = None, endpoint: str | None = None,
         token: str | None = None) -> Path:
    """Download, verify, inspect and install catalog model ``name``; returns its path.

    The entry's sources are tried in order: one that is missing from the hub, contradicts its
    pinned checksum or holds a file the engine would refuse (an EmbeddingGemma without its
    dense layers) is reported in the progress and the next is tried.
    """
    from huggingface_hub import constants

    constants.DOWNLOAD_CHUNK_SIZE = CHUNK_SIZE

    if is_builtin(name):
        return _builtin(task or PullTask(STARTER_ID))
    entry = lookup(name)
    if entry is None:
        raise PullError(f"unknown model {name!r}: see `localembed ls --catalog` for the models "
                        "that can be pulled, or `localembed import` for a file you have")
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    task = task or PullTask(entry.id)
    try:  # every failure, setup included, ends the task in a final state
        task.update(status="checking")
        target = models_dir() / f"{entry.id}.gguf"
        download_dir = models_dir() / ".downloads" / entry.id
        with _exclusive(models_dir() / f".{entry.id}.lock"):
            try:
                # A second pull of the same model waits above, then finds it installed.
                if target.exists() and metadata_path(entry.id).exists():
                    size = target.stat().st_size
                    task.update(status="done", total=size, downloaded=size,
                                finished=time.time())
                    return target
                refusals: list[str] = []
                for source in entry.sources:
                    try:
                        _pull_source(entry, source, target, download_dir, endpoint, token, task)
                    except SourceRefused as exc:
                        refusals.append(str(exc))
                        task.update(status="checking", downloaded=0, total=None, speed=0.0,
                                    eta=None, notice=f"{exc}; trying the next source")
                        continue
                    shutil.rmtree(download_dir, ignore_errors=True)
                    size = target.stat().st_size
                    task.update(status="done", downloaded=size, total=size,
                                finished=time.time())
                    return target
                raise PullError(f"no source of {entry.id} gave a servable file: "
                                + "; ".join(refusals))
            finally:
                _tidy(download_dir)
    except PullCancelled as exc:
        task.update(status="cancelled", error=str(exc), finished=time.time())
        raise
    except PullError as exc:
        task.update(status="error", error=str(exc), finished=time.time())
        raise
    except Exception as exc:  # hub, network and file errors, explained for the user
        message = _explain(exc, entry, endpoint)
        task.update(status="error", error=message, finished=time.time())
        raise PullError(message) from exc


def _builtin(task: PullTask) -> Path:
    """A pull of the starter model: it ships inside the package, so it is done at once."""
    try:
        path = ensure_starter()
    except StarterMissing as exc:
        task.update(status="error", error=str(exc), finished=time.time())
        raise PullError(str(exc)) from exc
    size = path.stat().st_size
    task.update(status="done", downloaded=size, total=size, finished=time.time(),
                notice=f"{STARTER_ID} is built in (it ships inside localembed): nothing to "
                       "download")
    return path


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold ``path`` as one model's pull lock, and leave no lock file behind.

    The holder deletes the file before unlocking; a pull that was waiting then holds the lock
    of a deleted file, sees that the path no longer names the file it locked, and locks the
    path's current file instead (the classic inode check), so two pulls never both proceed.
    Without fcntl (Windows) filelock does the same: it removes its file on release.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        with FileLock(str(path)):
            yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if not os.path.samestat(os.stat(path), os.fstat(fd)):
                    continue  # replaced by a later pull's file: lock that one
            except FileNotFoundError:
                continue  # deleted by the pull before us
            try:
                yield
            finally:
                path.unlink(missing_ok=True)
            return
        finally:
            os.close(fd)


def _tidy(download_dir: Path) -> None:
    """Keep only what a later pull can resume: partial files with bytes in them, each with
    its ETag. Empty partial files, ETags whose partial file is gone, then the folders left
    empty are removed (``.downloads`` too), so a pull that failed for good leaves nothing."""
    with contextlib.suppress(OSError):
        for part in download_dir.glob("*.part"):
            if part.stat().st_size == 0:
                part.unlink(missing_ok=True)
        for tag in download_dir.glob("*.etag"):
            if not tag.with_suffix(".part").exists():
                tag.unlink(missing_ok=True)
    for folder in (download_dir, download_dir.parent):
        with contextlib.suppress(OSError):  # not empty: a resumable file, or another pull's
            folder.rmdir()


def _pull_source(entry: CatalogEntry, source: Source, target: Path, download_dir: Path,
                 endpoint: str | None, token: str | None, task: PullTask) -> None:
    """Download ``source`` into place, or raise SourceRefused to move on to the next one."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    from localembed.engine.inspect import ModelLoadError, inspect_gguf

    where = f"{source.repo}/{source.filename}"
    task.update(source=source.repo)
    url = hf_hub_url(source.repo, source.filename, revision=source.revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
    except (EntryNotFoundError, RepositoryNotFoundError) as exc:
        raise SourceRefused(f"{where} is not on the hub") from exc
    expected_sha, expected_size = _expectations(source, meta)
    task.update(total=expected_size)
    path = download_dir / f"{source.repo.replace('/', '--')}--{source.filename}.part"
    resume = _resumable(path, meta.etag, expected_size)
    needed = (expected_size or 0) - resume + DISK_MARGIN
    free = disk_free(models_dir())
    if expected_size and free < needed:
        raise PullError(
            f"not enough disk space for {entry.id}: it needs {_mb(needed)} more and "
            f"{models_dir()} has {_mb(free)} free")
    task.update(status="downloading")
    download_dir.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".etag").write_text(meta.etag or "")  # what the partial file belongs to
    _download(meta.location or url, path, resume, expected_size, token, task)
    task.update(status="verifying")
    _verify(path, expected_size, expected_sha, source)
    try:
        inspect_gguf(path)
    except ModelLoadError as exc:
        path.unlink(missing_ok=True)
        reason = str(exc).replace(path.name, source.filename)
        raise SourceRefused(f"{where} cannot be served: {reason}") from exc
    os.replace(path, target)
    metadata_path(entry.id).write_text(json.dumps({
        "id": entry.id, "repo": source.repo, "filename": source.filename,
        "revision": meta.commit_hash or source.revision, "sha256": expected_sha,
        "size": target.stat().st_size, "pulled_at": time.time(),
    }, indent=2))


def _expectations(source: Source, meta: object) -> tuple[str | None, int | None]:
    """(sha256, size) to check the download against: the catalog's, else the hub's."""
    hub_sha = (getattr(meta, "etag", None) or "").strip('"').lower()
    hub_sha = hub_sha if SHA256_RE.match(hub_sha) else None
    if source.sha256 and hub_sha and hub_sha != source.sha256:
        raise SourceRefused(f"the hub's copy of {source.repo}/{source.filename} has sha256 "
                            f"{hub_sha}, not the pinned {source.sha256}; refusing to download it")
    return source.sha256 or hub_sha, source.size or getattr(meta, "size", None)


def _resumable(part: Path, etag: str | None, size: int | None) -> int:
    """Bytes of ``part`` that can be kept: only if it belongs to this very file version (a
    partial file of another version is deleted)."""
    tag = part.with_suffix(".etag")
    if part.exists() and tag.exists() and tag.read_text() == (etag or ""):
        kept = part.stat().st_size
        if size is None or kept <= size:
            return kept
    part.unlink(missing_ok=True)
    return 0


def _download(url: str, part: Path, resume: int, size: int | None, token: str | None,
              task: PullTask) -> None:
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    with open(part, "ab") as f:
        http_get(url, f, resume_size=resume, headers=build_hf_headers(token=token),
                 expected_size=size, tqdm_class=_tqdm_for(task))


def _verify(path: Path, size: int | None, sha: str | None, source: Source) -> None:
    actual_size = path.stat().st_size
    problem = None
    if size is not None and actual_size != size:
        problem = f"its size is {actual_size} bytes, expected {size}"
    elif sha is not None:
        actual = sha256_file(path)
        if actual != sha:
            problem = f"its sha256 is {actual}, expected {sha}"
    if problem:
        path.unlink(missing_ok=True)
        raise PullError(f"downloaded {source.filename} is corrupt ({problem}); the file was "
                        "deleted. Run the pull again.")


def _explain(exc: Exception, entry: CatalogEntry, endpoint: str | None) -> str:
    from huggingface_hub import constants

    hub = endpoint or constants.ENDPOINT
    name = type(exc).__name__
    if name in ("OfflineModeIsEnabled",):
        return "offline mode is on (HF_HUB_OFFLINE=1): unset it to download models"
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError"):
        return f"{entry.repo}/{entry.filename} was not found on {hub}"
    if isinstance(exc, OSError) and exc.errno is not None:  # local file problems
        return f"cannot download {entry.id}: {exc}"
    text = str(exc).splitlines()[0] if str(exc) else name
    if "401" in text or "403" in text:
        return f"{hub} refused access to {entry.repo} ({text}); set HF_TOKEN if it is gated"
    return (f"cannot reach the model hub at {hub} ({text}). Check the internet connection, "
            "HTTPS_PROXY, or HF_ENDPOINT.")


def _mb(n: int) -> str:
    return f"{n / 1_000_000:,.0f} MB"


class PullManager:
    """Pulls running in the background for the HTTP API (web UI, tray), one per model."""

    def __init__(self, endpoint: str | None = None) -> None:
        self.endpoint = endpoint
        self._tasks: dict[str, PullTask] = {}
        self._lock = threading.Lock()

    def start(self, name: str) -> tuple[PullTask, bool]:
        """(task, started): a pull already running for the model is returned, not doubled."""
        entry = lookup(name)
        if entry is None and not is_builtin(name):
            raise PullError(f"unknown model {name!r}: not in the catalog")
        model_id = entry.id if entry is not None else STARTER_ID
        with self._lock:
            task = self._tasks.get(model_id)
            if task and task.progress.status in ("queued", "checking", "downloading",
                                                   "verifying"):
                return task, False
            task = PullTask(model_id)
            self._tasks[model_id] = task

        def run() -> None:
            try:
                pull(model_id, task, endpoint=self.endpoint)
            except PullError:  # the task's progress carries the error
                pass
            except BaseException as exc:  # never leave a task "queued" or "downloading"
                task.update(status="error", error=f"{type(exc).__name__}: {exc}",
                            finished=time.time())

        threading.Thread(target=run, name=f"pull-{model_id}", daemon=True).start()
        return task, True

    def get(self, model_id: str) -> PullTask | None:
        return self._tasks.get(model_id)

    def all(self) -> list[PullTask]:
        return list(self._tasks.values())

    def cancel(self, model_id: str) -> PullTask | None:
        task = self._tasks.get(model_id)
        if task:
            task.cancelled.set()
        return task

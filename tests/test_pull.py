"""Real huggingface_hub downloads against the stand-in hub: resume, verify, lock, progress."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from localembed.models import catalog
from localembed.models.catalog import CatalogEntry
from localembed.models.pull import CHUNK_SIZE, PullCancelled, PullError, PullTask, pull
from tests.hub import StandInHub

ENTRY = catalog.lookup("qwen3-embedding-0.6b-f16")  # unpinned: verified against the hub's sha


@pytest.fixture()
def hub(synthetic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    with StandInHub() as server:
        # A real, loadable GGUF (all-MiniLM-L6-v2's shapes), 45 MB: many download chunks.
        data = synthetic("bert", "f16", preset="full").read_bytes()
        server.add(ENTRY.repo, ENTRY.filename, data)
        server.data = data  # type: ignore[attr-defined]
        yield server


def test_pull_installs_a_verified_model_with_full_progress(hub: StandInHub,
                                                           app_home: Path) -> None:
    seen: list[tuple[str, int, int | None]] = []
    task = PullTask(ENTRY.id)
    task.listen(lambda p: seen.append((p.status, p.downloaded, p.total)))
    path = pull(ENTRY.id, task, endpoint=hub.url)
    assert path == app_home / "models" / f"{ENTRY.id}.gguf"
    assert path.read_bytes() == hub.data  # type: ignore[attr-defined]
    size = len(hub.data)  # type: ignore[attr-defined]
    assert task.progress.status == "done" and task.progress.percent == 100.0
    assert task.progress.downloaded == task.progress.total == size == hub.bytes_sent
    statuses = [s for s, _, _ in seen]
    assert statuses.index("checking") < statuses.index("downloading") < statuses.index(
        "verifying") < statuses.index("done")
    during = [d for s, d, _ in seen if s == "downloading"]
    assert during == sorted(during) and max(during) == size
    assert not (app_home / "models" / ".downloads" / ENTRY.id).exists()
    # Installed models are not downloaded again.
    assert pull(ENTRY.id, endpoint=hub.url) == path and hub.bytes_sent == size


def test_a_download_cut_off_halfway_resumes(hub: StandInHub) -> None:
    size = len(hub.data)  # type: ignore[attr-defined]
    hub.cut_after = size // 2
    path = pull(ENTRY.id, endpoint=hub.url)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(
        hub.data).hexdigest()  # type: ignore[attr-defined]
    # The retry asks for the rest from the last whole chunk written before the cut.
    assert hub.gets[0] is None and hub.gets[1].startswith("bytes=")
    resumed_at = int(hub.gets[1].removeprefix("bytes=").rstrip("-"))
    assert size // 2 - CHUNK_SIZE < resumed_at <= size // 2
    assert hub.bytes_sent == size + (size // 2 - resumed_at)  # the first half is not re-sent


def test_a_cancelled_pull_resumes_later(hub: StandInHub, app_home: Path) -> None:
    size = len(hub.data)  # type: ignore[attr-defined]
    hub.slow = 0.002
    task = PullTask(ENTRY.id)

    def cancel_at_a_third(p) -> None:  # type: ignore[no-untyped-def]
        if p.downloaded > size // 3:
            task.cancelled.set()

    task.listen(cancel_at_a_third)
    with pytest.raises(PullCancelled):
        pull(ENTRY.id, task, endpoint=hub.url)
    assert task.progress.status == "cancelled"
    assert not (app_home / "models" / f"{ENTRY.id}.gguf").exists()
    first = hub.bytes_sent
    assert size // 3 < first < size
    hub.slow = 0
    resumed = PullTask(ENTRY.id)
    pull(ENTRY.id, resumed, endpoint=hub.url)
    assert resumed.progress.resumed_from > 0
    assert hub.gets[-1] is not None and hub.gets[-1].startswith("bytes=")
    assert hub.bytes_sent <= size + 2 * 1024 * 1024  # at most the chunk in flight re-sent


def test_a_file_that_does_not_match_its_sha256_is_removed(hub: StandInHub,
                                                          app_home: Path) -> None:
    hub.advertised_sha[(ENTRY.repo, ENTRY.filename)] = "ab" * 32
    task = PullTask(ENTRY.id)
    with pytest.raises(PullError, match="corrupt.*sha256.*deleted"):
        pull(ENTRY.id, task, endpoint=hub.url)
    assert task.progress.status == "error" and "sha256" in task.progress.error
    models = app_home / "models"
    assert not (models / f"{ENTRY.id}.gguf").exists()
    assert not [p for p in models.rglob("*.gguf")]


def test_a_pinned_checksum_that_the_hub_contradicts_is_refused(
        hub: StandInHub, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = CatalogEntry(id="pinned-test", repo=ENTRY.repo, filename=ENTRY.filename,
                          family="qwen3", dimensions=64, context=8192, license="x",
                          description="x", quantization="F32", revision="main",
                          sha256="cd" * 32, size=len(hub.data))  # type: ignore[attr-defined]
    monkeypatch.setattr(catalog, "CATALOG", (*catalog.CATALOG, pinned))
    with pytest.raises(PullError, match="refusing"):
        pull("pinned-test", endpoint=hub.url)
    assert hub.bytes_sent == 0


def test_not_enough_disk_space_refuses_before_downloading(
        hub: StandInHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("localembed.models.pull.disk_free", lambda _path: 1_000_000)
    with pytest.raises(PullError, match="not enough disk space"):
        pull(ENTRY.id, endpoint=hub.url)
    assert hub.bytes_sent == 0 and hub.gets == []


def test_two_pulls_at_once_leave_one_good_file(hub: StandInHub) -> None:
    hub.slow = 0.0005
    results: list[object] = []

    def run() -> None:
        try:
            results.append(pull(ENTRY.id, endpoint=hub.url))
        except Exception as exc:  # noqa: BLE001 - checked below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2 and all(isinstance(r, Path) for r in results), results
    assert results[0] == results[1]
    assert results[0].read_bytes() == hub.data  # type: ignore[attr-defined, union-attr]
    assert hub.bytes_sent == len(hub.data)  # type: ignore[attr-defined]


def test_unknown_names_and_unreachable_hubs_are_clear_errors(hub: StandInHub) -> None:
    for bad in ("../etc/passwd", "/abs/path.gguf", "no-such-model"):
        with pytest.raises(PullError, match="unknown model"):
            pull(bad, endpoint=hub.url)
    with socket_port() as port:
        started = time.monotonic()
        with pytest.raises(PullError, match="cannot reach the model hub"):
            pull(ENTRY.id, endpoint=f"http://127.0.0.1:{port}")
        assert time.monotonic() - started < 60


class socket_port:  # noqa: N801 - used as a context manager
    """A local port with nothing listening on it."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        pass


def gemma_entry(hub: StandInHub, synthetic, primary_dense: bool) -> CatalogEntry:
    """A two-source EmbeddingGemma entry on the stand-in hub, like the catalog's."""
    first = synthetic("gemma-embedding", dense=primary_dense).read_bytes()
    second = synthetic("gemma-embedding", "f16").read_bytes()
    hub.add("first/gemma-GGUF", "gemma.gguf", first)
    sha = hub.add("second/gemma-GGUF", "gemma-q8.gguf", second)
    hub.second_sha = sha  # type: ignore[attr-defined]
    return CatalogEntry(
        id="gemma-test", repo="first/gemma-GGUF", filename="gemma.gguf", family="gemma-embedding",
        dimensions=96, context=2048, license="x", description="x", quantization="F32",
        fallbacks=(catalog.Source("second/gemma-GGUF", "gemma-q8.gguf"),))


def test_a_file_the_engine_would_refuse_is_caught_at_pull_time_and_the_fallback_used(
        hub: StandInHub, synthetic, monkeypatch: pytest.MonkeyPatch, app_home: Path) -> None:
    entry = gemma_entry(hub, synthetic, primary_dense=False)
    monkeypatch.setattr(catalog, "CATALOG", (*catalog.CATALOG, entry))
    notices: list[str] = []
    task = PullTask(entry.id)
    task.listen(lambda p: p.notice and p.notice not in notices and notices.append(p.notice))
    path = pull(entry.id, task, endpoint=hub.url)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hub.second_sha  # type: ignore[attr-defined]
    assert notices == [
        "first/gemma-GGUF/gemma.gguf cannot be served: gemma.gguf lacks EmbeddingGemma's dense "
        "projection layers (dense_2, dense_3) and would give wrong vectors; this is an early, "
        "broken upload: download the model again (e.g. `localembed pull embeddinggemma-300m`)"
        "; trying the next source"]
    assert task.progress.status == "done" and task.progress.source == "second/gemma-GGUF"
    source = json.loads((app_home / "models" / "gemma-test.json").read_text())
    assert source["repo"] == "second/gemma-GGUF"
    assert list((app_home / "models").glob("*.gguf")) == [path]


def test_a_source_missing_from_the_hub_falls_back(hub: StandInHub, synthetic,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    entry = gemma_entry(hub, synthetic, primary_dense=True)
    del hub.files[("first/gemma-GGUF", "gemma.gguf")]
    monkeypatch.setattr(catalog, "CATALOG", (*catalog.CATALOG, entry))
    task = PullTask(entry.id)
    pull(entry.id, task, endpoint=hub.url)
    assert task.progress.source == "second/gemma-GGUF"
    assert "first/gemma-GGUF/gemma.gguf is not on the hub" in (task.progress.notice or "")


def refused_everywhere(hub: StandInHub, synthetic,  # type: ignore[no-untyped-def]
                       monkeypatch: pytest.MonkeyPatch):
    """A catalog entry both of whose sources hold a file the engine refuses."""
    entry = gemma_entry(hub, synthetic, primary_dense=False)
    hub.add("second/gemma-GGUF", "gemma-q8.gguf", synthetic("gemma-embedding", dense=False,
                                                            seed=1).read_bytes())
    monkeypatch.setattr(catalog, "CATALOG", (*catalog.CATALOG, entry))
    return entry


def test_when_every_source_is_refused_the_pull_fails_with_each_reason(
        hub: StandInHub, synthetic, monkeypatch: pytest.MonkeyPatch, app_home: Path) -> None:
    entry = refused_everywhere(hub, synthetic, monkeypatch)
    task = PullTask(entry.id)
    with pytest.raises(PullError) as failure:
        pull(entry.id, task, endpoint=hub.url)
    message = str(failure.value)
    assert message.startswith("no source of gemma-test gave a servable file")
    assert "first/gemma-GGUF/gemma.gguf cannot be served" in message
    assert "second/gemma-GGUF/gemma-q8.gguf cannot be served" in message
    assert task.progress.status == "error" and task.progress.error == message
    assert not list((app_home / "models").glob("*.gguf"))


def test_the_catalogs_embeddinggemma_has_a_pinned_source_and_a_fallback() -> None:
    entry = catalog.lookup("embeddinggemma")
    assert entry is not None and entry.pinned and len(entry.sources) == 2
    assert entry.sources[0].size == 333_590_944  # the re-upload with dense_2/dense_3
    assert entry.sources[1].repo != entry.sources[0].repo


def left_in(app_home: Path) -> list[str]:
    """Every path under the model directory, relative to it."""
    models = app_home / "models"
    return sorted(str(p.relative_to(models)) for p in models.rglob("*"))


def test_a_pull_with_a_bad_checksum_leaves_nothing_behind(hub: StandInHub,
                                                          app_home: Path) -> None:
    hub.advertised_sha[(ENTRY.repo, ENTRY.filename)] = "ab" * 32
    with pytest.raises(PullError, match="sha256"):
        pull(ENTRY.id, endpoint=hub.url)
    assert left_in(app_home) == []


def test_a_pull_whose_every_source_is_refused_leaves_nothing_behind(
        hub: StandInHub, synthetic, monkeypatch: pytest.MonkeyPatch, app_home: Path) -> None:
    entry = refused_everywhere(hub, synthetic, monkeypatch)
    with pytest.raises(PullError, match="no source of gemma-test gave a servable file"):
        pull(entry.id, endpoint=hub.url)
    assert left_in(app_home) == []


def test_a_pull_that_cannot_reach_the_hub_leaves_nothing_behind(app_home: Path) -> None:
    with socket_port() as port, pytest.raises(PullError, match="cannot reach the model hub"):
        pull(ENTRY.id, endpoint=f"http://127.0.0.1:{port}")
    assert left_in(app_home) == []


def test_a_cancelled_pull_keeps_only_its_resumable_partial_file(hub: StandInHub,
                                                                app_home: Path) -> None:
    size = len(hub.data)  # type: ignore[attr-defined]
    hub.slow = 0.002
    task = PullTask(ENTRY.id)
    task.listen(lambda p: task.cancelled.set() if p.downloaded > size // 3 else None)
    with pytest.raises(PullCancelled):
        pull(ENTRY.id, task, endpoint=hub.url)
    part = f"{ENTRY.repo.replace('/', '--')}--{ENTRY.filename}"
    assert left_in(app_home) == [".downloads", f".downloads/{ENTRY.id}",
                                 f".downloads/{ENTRY.id}/{part}.etag",
                                 f".downloads/{ENTRY.id}/{part}.part"]
    assert (app_home / "models" / ".downloads" / ENTRY.id / f"{part}.part").stat().st_size > 0


def test_a_finished_pull_leaves_only_the_model_and_its_record(hub: StandInHub,
                                                             app_home: Path) -> None:
    hub.cut_after = len(hub.data) // 2  # type: ignore[attr-defined]  # resumed on the way
    pull(ENTRY.id, endpoint=hub.url)
    assert left_in(app_home) == [f"{ENTRY.id}.gguf", f"{ENTRY.id}.json"]

"""Holding up under abandoned work, floods, slow clients and hostile input: each test is a
defect found by probing a live server, reproduced, and now held."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from localembed.config.settings import ServerConfig
from localembed.engine import Engine, Overloaded
from localembed.models.starter import starter_path
from tests.conftest import wait_until
from tests.fixtures.server import call, running

LONG = "the river carries silt to the sea and farmers settle on the delta " * 40


def fresh(text: str, n: int) -> list[str]:
    """``n`` inputs like ``text``, each new: the engine decodes a repeated input once and its
    cache answers it again, so load must be text it has not seen."""
    return [f"{uuid.uuid4().hex} {text}" for _ in range(n)]


@pytest.fixture(scope="module")
def starter_engine():
    with Engine(starter_path()) as engine:
        engine.embed("warm up")
        yield engine


def test_a_small_request_is_served_within_2s_behind_1000_long_sequences(starter_engine) -> None:
    big = starter_engine.submit(fresh(LONG, 1000))
    time.sleep(0.3)  # the worker is busy with the big request
    started = time.monotonic()
    starter_engine.embed("hi")
    waited = time.monotonic() - started
    big.cancel()
    assert waited < 2.0, f"a one-word request waited {waited:.1f} s"


def test_a_small_request_waits_one_batch_behind_a_big_one_not_the_whole_plan(
        starter_engine) -> None:
    """Counted in decodes, not seconds: behind 300 texts of 200 words, a one-word request is
    decoded after the batches already running (one per worker), then its own."""
    stats = starter_engine.batcher.stats
    big = starter_engine.submit(fresh(" ".join(["word"] * 200), 300))
    assert wait_until(lambda: stats.decode_calls >= 4)
    submitted = stats.decode_calls
    finished: list[int] = []
    small = starter_engine.submit(["hi"])
    small.add_done_callback(lambda _f: finished.append(stats.decode_calls))
    small.result(60)
    big.cancel()
    waited = finished[0] - submitted
    assert waited <= starter_engine.runner.workers + 1, f"waited {waited} decodes"


def test_cancelled_work_leaves_the_queue(starter_engine) -> None:
    big = starter_engine.submit(fresh(LONG, 1000))
    time.sleep(0.2)
    assert starter_engine.batcher.queued_tokens() > 100_000
    big.cancel()
    assert wait_until(lambda: starter_engine.batcher.queued_tokens() == 0, 3.0)
    assert starter_engine.batcher.queue_depth() == 0


def test_a_full_queue_refuses_quickly_with_a_retry_hint(starter_engine) -> None:
    batcher = starter_engine.batcher
    limit, batcher.max_queued_tokens = batcher.max_queued_tokens, 20_000
    try:
        first = starter_engine.submit(fresh(LONG, 60))
        started = time.monotonic()
        with pytest.raises(Overloaded) as info:
            starter_engine.submit(fresh(LONG, 60))
        assert time.monotonic() - started < 0.5 and info.value.retry_after >= 1
        first.cancel()
    finally:
        batcher.max_queued_tokens = limit
    assert wait_until(lambda: batcher.queued_tokens() == 0, 3.0)


def test_work_of_a_request_that_times_out_is_dropped(starter_gguf) -> None:
    config = ServerConfig(request_timeout=1.0)
    with running(config, starter_gguf()) as (url, registry):
        started = time.monotonic()
        status, body, _ = call(url, "/v1/embeddings", {"input": fresh(LONG, 1000)})
        assert status == 504 and body["error"]["code"] == "timeout"
        assert time.monotonic() - started < 5
        assert wait_until(lambda: registry.default.batcher.queued_tokens() == 0, 3.0)
        assert call(url, "/v1/embeddings", {"input": "hi"})[0] == 200


def send_and_leave(url: str, body: dict, until: Callable[[], bool]) -> None:
    """A client that sends a request, then disconnects without reading the answer once
    ``until`` holds (its work is queued: a thousand new texts take a while to tokenize)."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        assert wait_until(until, 30.0), "the request's work never reached the queue"


def test_work_of_a_client_that_disconnects_is_dropped(starter_gguf) -> None:
    with running(ServerConfig(), starter_gguf()) as (url, registry):
        batcher = registry.default.batcher
        send_and_leave(url, {"input": fresh(LONG, 1000)},
                       until=lambda: batcher.queued_tokens() > 100_000)
        assert wait_until(lambda: batcher.queued_tokens() == 0, 5.0), batcher.queued_tokens()
        started = time.monotonic()
        assert call(url, "/v1/embeddings", {"input": "hi"})[0] == 200
        assert time.monotonic() - started < 2


def test_a_flood_gets_503_with_retry_after_and_health_still_answers(starter_gguf) -> None:
    with running(ServerConfig(), starter_gguf()) as (url, registry):
        registry.default.batcher.max_queued_tokens = 50_000
        results: list[tuple[int, dict]] = []

        def flood() -> None:
            status, _, headers = call(url, "/v1/embeddings", {"input": fresh(LONG, 150)})
            results.append((status, headers))

        threads = [threading.Thread(target=flood) for _ in range(16)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        started = time.monotonic()
        assert call(url, "/health")[0] == 200
        assert time.monotonic() - started < 2
        for t in threads:
            t.join(120)
        refused = [h for s, h in results if s == 503]
        assert refused and all(int(h["Retry-After"]) >= 1 for h in refused)
        assert all(s in (200, 503) for s, _ in results)


def test_a_body_over_the_limit_costs_no_disk_and_answers_json(synthetic, tmp_path: Path,
                                                             monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    config = ServerConfig(max_body_bytes=1024 * 1024)
    with running(config, synthetic("bert")) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: 250000000\r\n\r\n" + b"x" * 65536)
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionResetError:  # the server closes without reading the rest
                pass
        assert answer.startswith(b"HTTP/1.1 413")
        assert b'"code": "request_too_large"' in answer
        assert list(spool.iterdir()) == []


def test_two_hundred_idle_and_dripping_sockets_do_not_lock_out_a_client(synthetic) -> None:
    with running(ServerConfig(), synthetic("bert")) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        sockets = [socket.create_connection((host, int(port))) for _ in range(200)]
        try:
            for i, sock in enumerate(sockets):
                if i % 2:  # half drip the start of a request, one byte at a time
                    sock.sendall(b"P")
            started = time.monotonic()
            status, _, _ = call(url, "/v1/embeddings", {"input": "still served"})
            assert status == 200 and time.monotonic() - started < 5
            for sock in sockets[1::2]:
                sock.sendall(b"O")
            assert call(url, "/health")[0] == 200
        finally:
            for sock in sockets:
                sock.close()


def test_a_thousand_nested_brackets_is_a_400(client) -> None:
    body = b'{"input": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = client.post("/v1/embeddings", data=body, content_type="application/json")
    assert response.status_code == 400


def test_a_control_character_path_is_a_404_and_cannot_forge_log_lines(client, caplog) -> None:
    response = client.get("/ui/a%0aFORGED%00.js")
    assert response.status_code == 404
    assert not any("\nFORGED" in r.getMessage() for r in caplog.records)


def test_a_30_mb_text_is_cut_cheaply_before_tokenization(starter_engine) -> None:
    text = "word " * 6_000_000
    started = time.monotonic()
    assert starter_engine.embed(text).tokens == [starter_engine.max_tokens]
    assert time.monotonic() - started < 2


def test_a_30_mb_text_with_truncation_off_is_refused_quickly(starter_engine) -> None:
    from localembed.engine import EmbedOptions, InputError

    started = time.monotonic()
    with pytest.raises(InputError, match="more than") as info:
        starter_engine.embed("word " * 6_000_000, EmbedOptions(truncate="none"))
    assert info.value.code == "context_length_exceeded" and time.monotonic() - started < 2


def test_a_pull_that_fails_in_setup_ends_failed_and_can_be_retried(app_home: Path,
                                                                   monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from localembed.models.pull import PullManager

    app_home.parent.mkdir(parents=True, exist_ok=True)
    app_home.write_text("a file where the home folder should be")
    manager = PullManager(endpoint="http://127.0.0.1:9")
    task, started = manager.start("embeddinggemma-300m")
    assert started and wait_until(lambda: task.progress.status == "error", 10)
    assert task.progress.error and task.progress.finished
    again, started_again = manager.start("embeddinggemma-300m")
    assert started_again and again is not task


def test_a_failed_switch_on_a_read_only_home_does_not_switch(app_factory, synthetic,
                                                             app_home: Path) -> None:
    from localembed.config.paths import models_dir

    client = app_factory()
    shutil_copy(synthetic("gemma-embedding"), models_dir() / "other.gguf")
    (app_home / "config.json").mkdir()  # saving the choice fails like a read-only disk
    before = client.get("/health").get_json()["model"]
    response = client.post("/v1/default", json={"model": "other"})
    error = response.get_json()["error"]
    assert response.status_code == 500 and error["code"] == "disk_error"
    assert "config.json" in error["message"]
    assert client.get("/health").get_json()["model"] == before


def test_import_checks_free_space_and_leaves_nothing(client, synthetic, app_home: Path,
                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9, 1000))
    response = client.post("/v1/models/import", json={"path": str(synthetic("bert")),
                                                      "id": "tight"})
    assert response.status_code == 507
    assert response.get_json()["error"]["code"] == "insufficient_storage"
    assert not list((app_home / "models").glob("tight*"))


def test_a_loaded_model_whose_file_vanished_is_listed_and_can_be_unloaded(
        app_factory, synthetic) -> None:
    from localembed.config.paths import models_dir

    client = app_factory()
    path = models_dir() / "fleeting.gguf"
    shutil_copy(synthetic("gemma-embedding"), path)
    assert client.post("/v1/models/fleeting/load").status_code == 200
    path.unlink()
    listing = client.get("/v1/models")
    assert listing.status_code == 200
    card = next(m for m in listing.get_json()["data"] if m["id"] == "fleeting")
    assert card["loaded"] and card["missing"]
    assert client.post("/v1/models/fleeting/unload").status_code == 200


def test_management_routes_refuse_other_local_browser_origins(client) -> None:
    foreign = client.post("/v1/pull", json={"model": "embeddinggemma-300m"},
                          headers={"Origin": "http://localhost:5173"})
    assert foreign.status_code == 403
    own = client.post("/v1/default", json={"model": "no-such-model"},
                      headers={"Origin": "http://localhost"})
    assert own.status_code == 404  # reached the route


def test_event_streams_are_capped_and_end_with_the_pull(client) -> None:
    from localembed.models.pull import PullTask
    from localembed.server import events

    pulls = client.application.extensions["localembed"].pulls
    task = PullTask("embeddinggemma-300m")
    pulls._tasks["embeddinggemma-300m"] = task
    for _ in range(events.MAX_STREAMS):  # as if that many clients were streaming
        assert events._streams.acquire(blocking=False)
    try:
        extra = client.get("/v1/pull/embeddinggemma-300m/events")
        assert extra.status_code == 503 and extra.headers["Retry-After"]
    finally:
        for _ in range(events.MAX_STREAMS):
            events._streams.release()
    task.update(status="done")
    finished = client.get("/v1/pull/embeddinggemma-300m/events")
    assert finished.status_code == 200 and b'"status": "done"' in finished.data


def test_binding_beyond_loopback_generates_and_stores_an_api_key(app_home: Path) -> None:
    from localembed.config.settings import ServerConfig, load_config, require_key_off_loopback

    config = ServerConfig(host="0.0.0.0")
    notice = require_key_off_loopback(config)
    assert config.api_key and config.api_key in notice and "config.json" in notice
    assert load_config().api_key == config.api_key
    assert require_key_off_loopback(ServerConfig()) is None  # loopback: no key forced


def shutil_copy(source: Path, target: Path) -> None:
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)

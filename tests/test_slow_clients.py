"""A thousand connections dripping their headers a byte at a time cannot starve the server:
headers have a deadline whatever their byte rate, at the connection limit the oldest
connection that never completed a request makes room, and the process raises its own limit on
open files so that many sockets fit.

One real flood, bounded in time, against a real `serve` started with the common default soft
limit of 1,024 open files; each test reads one thing it showed.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import pytest

from localembed.config.settings import ServerConfig
from localembed.server.serving import HEADER_DEADLINE, MAINTENANCE_INTERVAL
from tests.fixtures.server import running

FLOOD = 1000
DRIP_EVERY = 2.0
HEALTH_TIMEOUT = 10.0
PARTIAL = b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Drip: "


@dataclass
class Flood:
    health_seconds: float | None = None  # None: no answer within HEALTH_TIMEOUT
    kept_alive_status: int | None = None
    closed_after: list[float | None] = field(default_factory=list)  # from each first byte
    answers: list[bytes] = field(default_factory=list)


def _low_file_limit() -> None:
    """The serve process starts as on many desktops: a soft limit of 1,024 open files."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


def _room_for_the_flood() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = FLOOD + 200
    assert hard == resource.RLIM_INFINITY or hard >= need, f"hard limit {hard} < {need}"
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _drip(sockets: list[socket.socket], open_: set[int], stop: threading.Event) -> None:
    while not stop.wait(DRIP_EVERY):
        for i in list(open_):
            try:
                sockets[i].send(b"x")
            except OSError:
                open_.discard(i)


@pytest.fixture(scope="module")
def flood(synthetic, tmp_path_factory: pytest.TempPathFactory) -> Flood:
    _room_for_the_flood()
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "LOCALEMBED_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "localembed", "serve", "--port", "0",
                             "-m", str(synthetic("bert"))], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env,
                            preexec_fn=_low_file_limit)
    result = Flood()
    sockets: list[socket.socket] = []
    stop = threading.Event()
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        host, port = url.removeprefix("http://").split(":")
        kept = http.client.HTTPConnection(host, int(port), timeout=HEALTH_TIMEOUT)
        kept.request("GET", "/health")
        assert kept.getresponse().read()  # a client that completed a request, kept alive
        first_byte = []
        for _ in range(FLOOD):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(PARTIAL)
            first_byte.append(time.monotonic())
            sockets.append(sock)
        open_ = set(range(FLOOD))
        dripper = threading.Thread(target=_drip, args=(sockets, open_, stop), daemon=True)
        dripper.start()
        time.sleep(DRIP_EVERY + 0.5)  # every socket has dripped once more

        started = time.monotonic()
        try:
            with urllib.request.urlopen(url + "/health", timeout=HEALTH_TIMEOUT) as resp:
                assert resp.status == 200
            result.health_seconds = time.monotonic() - started
        except OSError:
            pass
        try:
            kept.request("GET", "/health")
            result.kept_alive_status = kept.getresponse().status
        except (OSError, http.client.HTTPException):
            pass

        result.closed_after = [None] * FLOOD
        result.answers = [b""] * FLOOD
        selector = selectors.DefaultSelector()
        for i, sock in enumerate(sockets):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, i)
        give_up = max(first_byte) + HEADER_DEADLINE + 2 * MAINTENANCE_INTERVAL + 3
        pending = FLOOD
        while pending and time.monotonic() < give_up:
            for key, _ in selector.select(timeout=0.5):
                i = key.data
                try:
                    data = sockets[i].recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    result.answers[i] += data
                    continue
                result.closed_after[i] = time.monotonic() - first_byte[i]
                open_.discard(i)
                selector.unregister(sockets[i])
                pending -= 1
        selector.close()
    finally:
        stop.set()
        for sock in sockets:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return result


def test_health_answers_within_seconds_during_a_flood_of_dripping_headers(flood: Flood) -> None:
    assert flood.health_seconds is not None, f"/health gave no answer in {HEALTH_TIMEOUT} s"
    assert flood.health_seconds < 3.0


def test_dripping_connections_are_closed_at_the_header_deadline(flood: Flood) -> None:
    closed = [t for t in flood.closed_after if t is not None]
    assert len(closed) == FLOOD, f"{FLOOD - len(closed)} dripping connections still open"
    assert max(closed) <= HEADER_DEADLINE + 2 * MAINTENANCE_INTERVAL + 1


def test_a_late_request_is_answered_408_in_json(flood: Flood) -> None:
    answered = [a for a in flood.answers if a]
    # all but the few evicted to make room at the connection limit
    assert len(answered) >= FLOOD - 10
    for answer in answered:
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0]
        assert status_line.split(b" ", 1)[1] == b"408 Request Timeout", head
        assert json.loads(body)["error"]["code"] == "request_timeout"


def test_a_kept_alive_client_that_completed_a_request_is_not_evicted(flood: Flood) -> None:
    assert flood.kept_alive_status == 200


def test_a_body_that_arrives_too_slowly_is_answered_408(
        synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    from localembed.server import serving

    monkeypatch.setattr(serving, "BODY_DEADLINE", 1.0)
    with running(ServerConfig(), synthetic("bert")) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
            started = time.monotonic()
            answer = b""
            sock.settimeout(0.5)
            while time.monotonic() - started < 10:
                try:
                    sock.sendall(b" ")  # a byte at a time, well inside the idle timeout
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                answer += chunk
        waited = time.monotonic() - started
    assert answer.split(b" ", 2)[1] == b"408", answer
    assert b'"request_timeout"' in answer and b"body" in answer
    assert waited < 1.0 + serving.MAINTENANCE_INTERVAL + 2

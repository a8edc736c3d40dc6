"""Stopping the server never cuts a request it has received: SIGTERM or SIGINT stop accepting,
requests in flight get their whole answer, then the process exits 0."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from localembed.config.settings import ServerConfig
from localembed.server.serving import GRACE_PERIOD
from tests.fixtures.models import install_model

CLIENTS = 32
# Fewer HTTP threads than clients, so most requests wait in waitress's queue, received but not
# started: the ones a stop that shuts the thread pool down would cancel (32 - 8 = 24).
HTTP_THREADS = "8"
# About 3 s of work for all the clients together on the tiny test model (2 cores): long enough
# that most are still in flight when the signal comes, well inside the grace period. Answers
# are small (packed bits, base64), as an OpenAI SDK's base64 answers for a few texts are:
# waitress leaves those for its loop to send, so a loop that stops early loses them.
TEXTS = ["the river carries silt to the sea and farmers settle on the delta " * 4 + str(i)
         for i in range(30)]


def request_body(client: int) -> str:
    """Each client's own texts: the same texts again would be answered from the embedding
    cache, leaving no work in flight for the stop to wait for."""
    texts = [f"{text} {client}" for text in TEXTS]
    return json.dumps({"input": texts, "encoding_format": "base64", "output_dtype": "ubinary"})


class Client(threading.Thread):
    """One embeddings request on its own connection; ``sent`` is set once the whole request
    has been written to the socket."""

    def __init__(self, url: str, index: int) -> None:
        super().__init__(daemon=True)
        self.index = index
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.sent = threading.Event()
        self.status: int | None = None
        self.vectors = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            conn.request("POST", "/v1/embeddings", request_body(self.index),
                         {"Content-Type": "application/json"})
            self.sent.set()
            response = conn.getresponse()
            body = json.loads(response.read())
            self.status, self.vectors = response.status, len(body.get("data", []))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.sent.set()


def serving(synthetic, app_home: Path, **popen: object) -> tuple[subprocess.Popen, str]:
    """`localembed serve` of a tiny model on a free port; ``popen`` as for subprocess.Popen."""
    install_model(app_home, "small", synthetic("bert"))
    env = {**os.environ, "LOCALEMBED_HOME": str(app_home), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "localembed", "serve", "--port", "0", "-m", "small",
               "--http-threads", HTTP_THREADS]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, **popen)  # type: ignore[call-overload]
    url = proc.stdout.readline().strip()  # type: ignore[union-attr]
    assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
    return proc, url


def in_flight(url: str) -> list[Client]:
    clients = [Client(url, i) for i in range(CLIENTS)]
    for client in clients:
        client.start()
    for client in clients:
        assert client.sent.wait(30)
    time.sleep(0.2)  # the server reads them
    return clients


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_lets_every_request_in_flight_finish(synthetic, app_home: Path,
                                                          signum: int) -> None:
    proc, url = serving(synthetic, app_home)
    clients = in_flight(url)
    answered_before = sum(c.status is not None for c in clients)
    signalled = time.monotonic()
    proc.send_signal(signum)
    try:
        proc.wait(GRACE_PERIOD + 5)
    finally:
        proc.kill()
        _out, err = proc.communicate(timeout=30)
    stopped_after = time.monotonic() - signalled
    for client in clients:
        client.join(30)
    outcomes = [c.error or c.status for c in clients]
    assert answered_before < CLIENTS  # the signal came while requests were being served
    assert outcomes == [200] * CLIENTS, outcomes
    assert all(c.vectors == len(TEXTS) for c in clients)
    assert proc.returncode == 0 and stopped_after < GRACE_PERIOD, (stopped_after, err)
    assert err.rstrip().endswith("localembed stopped.") and "Traceback" not in err


def test_a_stopping_server_accepts_no_new_connection(synthetic, app_home: Path) -> None:
    proc, url = serving(synthetic, app_home)
    clients = in_flight(url)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)  # the listening socket is closed at once, while the clients are served
    host, port = url.removeprefix("http://").split(":")
    try:
        assert proc.poll() is None  # still finishing the requests in flight
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5).close()
    finally:
        proc.wait(GRACE_PERIOD + 5)
        proc.communicate(timeout=30)
    for client in clients:
        client.join(30)
    assert [c.error or c.status for c in clients] == [200] * CLIENTS


def test_sigint_stops_a_server_started_with_sigint_ignored(synthetic, app_home: Path) -> None:
    """A non-interactive shell starts background jobs with SIGINT ignored."""
    proc, _url = serving(synthetic, app_home,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(GRACE_PERIOD)
    except subprocess.TimeoutExpired:
        pass
    finally:
        proc.kill()
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "localembed stopped." in err


def test_the_desktop_apps_quit_finishes_requests_in_flight(synthetic, app_home: Path) -> None:
    from localembed.desktop.controller import AppController

    install_model(app_home, "small", synthetic("bert"))
    controller = AppController(ServerConfig(model="small", port=0,
                                            http_threads=int(HTTP_THREADS)))
    controller.start()
    clients = in_flight(controller.url)
    started = time.monotonic()
    controller.quit()
    assert time.monotonic() - started < GRACE_PERIOD
    for client in clients:
        client.join(30)
    assert [c.error or c.status for c in clients] == [200] * CLIENTS
    assert controller.status == "stopped"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(controller.port)), timeout=5).close()

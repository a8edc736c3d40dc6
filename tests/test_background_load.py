"""A server listens before its model is loaded: `/health` says "loading" (503 with Retry-After,
as llama-server and TEI do, so `curl -f` polling waits), a request for the default model waits
for the load and gets its vector, and a model that cannot load turns `/health` to "failed" and
requests to the load's reason.

The load is held back by a gate in front of the real one (only its timing is controlled: the
engine that then loads is the real llama.cpp one)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from localembed.config.settings import ServerConfig
from localembed.service.registry import Registry
from tests.conftest import wait_until
from tests.fixtures.models import install_model
from tests.fixtures.server import call, health, running


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Held until set: every model load waits for it first."""
    opened = threading.Event()
    real = Registry._open

    def held(self: Registry, model_id: str, path: object):  # type: ignore[no-untyped-def]
        assert opened.wait(30), "the test never released the load"
        return real(self, model_id, path)

    monkeypatch.setattr(Registry, "_open", held)
    return opened


def serving(model: Path):  # type: ignore[no-untyped-def]
    """A real waitress server over a registry loading ``model`` in the background."""
    return running(ServerConfig(), model, background=True)


def test_health_says_loading_until_the_model_is_ready(synthetic, gate: threading.Event) -> None:
    with serving(synthetic("bert")) as (url, _registry):
        status, body, headers = call(url, "/health")
        assert status == 503 and body["status"] == "loading" and body["loaded"] == []
        assert body["model"] and headers["Retry-After"] == "1"
        gate.set()
        assert wait_until(lambda: health(url))
        status, body, _ = call(url, "/health")
        assert body["status"] == "ok" and body["loaded"] == [body["model"]]


def test_a_request_sent_while_loading_waits_and_gets_its_vector(synthetic,
                                                                gate: threading.Event) -> None:
    model = synthetic("bert")
    replies: list[tuple[int, dict, dict]] = []
    with serving(model) as (url, _registry):
        sender = threading.Thread(target=lambda: replies.append(
            call(url, "/v1/embeddings", {"input": "a lighthouse"})))
        sender.start()
        sender.join(0.5)
        assert sender.is_alive() and not replies  # waiting for the model, not refused
        gate.set()
        sender.join(30)
    status, body, _ = replies[0]
    assert status == 200, body
    reference = Registry(str(model))  # loaded before serving, as before
    try:
        expected = reference.default.embed(["a lighthouse"]).vectors[0]
    finally:
        reference.close()
    assert np.allclose(body["data"][0]["embedding"], expected, atol=1e-6)


def test_a_model_that_cannot_load_makes_health_failed_and_requests_say_why(
        tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)  # a GGUF header and nothing a model needs
    with serving(broken) as (url, registry):
        assert wait_until(lambda: registry.failure is not None)
        status, body, _ = call(url, "/health")
        assert status == 503 and body["status"] == "failed"
        status, body, _ = call(url, "/v1/embeddings", {"input": "hi"})
        assert status == 500 and body["error"]["code"] == "model_load_failed"
        assert "broken.gguf" in body["error"]["message"]


def test_the_playground_says_the_model_is_loading_then_serves_it(
        synthetic, gate: threading.Event, browser) -> None:
    """A page opened while the model loads shows "loading" in its status pill, not the
    "server not answering" banner, and turns to the model once it is ready."""
    from playwright.sync_api import expect

    with serving(synthetic("bert")) as (url, registry):
        context = browser.new_context()
        problems: list[str] = []
        try:
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url + "/")
            pill = page.locator("#server-status")
            expect(pill).to_have_text(f"loading {registry.default_id}…")
            expect(page.locator("#error")).not_to_contain_text("not answering")
            gate.set()
            expect(pill).to_have_class("pill ok", timeout=10_000)
            expect(pill).to_contain_text(registry.default_id)
        finally:
            context.close()
    # Chromium logs each 503 it was answered; nothing else went wrong.
    assert all("503" in problem for problem in problems), problems


def test_the_desktop_app_listens_and_says_loading_until_its_model_is_ready(
        synthetic, app_home: Path, gate: threading.Event) -> None:
    from localembed.desktop.controller import AppController

    install_model(app_home, "small", synthetic("bert"))
    changes: list[str] = []
    controller = AppController(ServerConfig(model="small", port=0),
                               on_change=lambda: changes.append(controller.status_text()))
    controller.start()
    try:
        assert controller.status == "loading"
        assert controller.status_text() == "Loading: loading small"  # the tray's status line
        status, body, _ = call(controller.url, "/health")
        assert status == 503 and body["status"] == "loading"
        gate.set()
        assert controller.wait_ready(30) == "ready"
        assert changes[-1] == "Ready: serving small" and health(controller.url)
    finally:
        controller.quit()
    assert controller.status == "stopped"


def test_a_desktop_app_whose_model_cannot_load_shows_why_and_keeps_listening(
        app_home: Path, tmp_path: Path) -> None:
    from localembed.desktop.controller import AppController

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    install_model(app_home, "broken", broken)
    controller = AppController(ServerConfig(model="broken", port=0))
    controller.start()
    try:
        assert controller.wait_ready(30) == "error"
        assert controller.status_text().startswith("Error: cannot load broken")
        status, body, _ = call(controller.url, "/health")  # still there to say so
        assert status == 503 and body["status"] == "failed"
    finally:
        controller.quit()

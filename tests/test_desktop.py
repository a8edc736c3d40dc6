"""The desktop app: a real tray under Xvfb (Debian's trayer as tray host), pystray's own menu
objects, single instance, no-display fallback, start at login, logs, and the frozen build."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from localembed.config.settings import ServerConfig
from tests.conftest import ARTIFACTS, wait_until
from tests.fixtures.desktop import accent_pixels, screenshot, start_tray_host, wait_for_icon
from tests.fixtures.server import health


def test_tray_menu_actions_call_the_core(display: str, tray_app, tmp_path: Path) -> None:
    tray, runner = tray_app
    controller = tray.controller
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot(display, ARTIFACTS / "desktop-tray-inprocess.png")
    items = {item.text: item for item in tray.icon.menu.items if item.text}
    assert items["Ready: serving small"].enabled is False  # the status line
    url = controller.url
    assert health(url)

    items["Copy API URL"](tray.icon)
    clip = subprocess.run(["xclip", "-o", "-selection", "clipboard"], capture_output=True,
                          text=True, env={**os.environ, "DISPLAY": display}, timeout=10)
    assert clip.stdout == url + "/v1"

    radios = {i.text: i for i in items["Model"].submenu.items}
    assert radios["small"].checked and not radios["wide"].checked
    radios["wide"](tray.icon)
    assert controller.default_id == "wide" and radios["wide"].checked
    body = json.load(urllib.request.urlopen(url + "/health", timeout=10))
    assert body["model"] == "wide"

    items["Pause Server"](tray.icon)
    assert controller.status == "paused" and not health(url)
    pause_item = next(i for i in tray.icon.menu.items if i.text == "Resume Server")
    pause_item(tray.icon)
    assert controller.status == "ready" and health(url)

    start_item = items["Start at Login"]
    assert not start_item.checked
    start_item(tray.icon)
    entry = tmp_path / ".config" / "autostart" / "localembed.desktop"
    assert start_item.checked and entry.exists()
    start_item(tray.icon)
    assert not entry.exists()

    items["Quit"](tray.icon)
    runner.join(10)
    assert not runner.is_alive() and controller.status == "stopped" and not health(url)


def start_app(app_home: Path, *args: str, display: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env.update(LOCALEMBED_HOME=str(app_home), PYTHONUNBUFFERED="1")
    if display:
        env["DISPLAY"] = display
    return subprocess.Popen([sys.executable, "-m", "localembed", "app", "--no-browser", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_app_shows_its_icon_in_a_real_tray(display: str, synthetic, app_home: Path) -> None:
    proc = start_app(app_home, "--port", "0", "--model", str(synthetic("bert")),
                     display=display)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        # listening at once; the icon turns blue once the model is loaded
        assert wait_until(lambda: health(url), 60)
        icon = wait_for_icon(display)
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot(display, ARTIFACTS / "desktop-tray.png")
        assert icon > 50
        assert health(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Tray icon shown" in err and "stopped" in err and "Traceback" not in err


def test_the_icon_docks_into_a_tray_host_that_starts_after_the_app(
        bare_display: tuple[str, list], synthetic, app_home: Path) -> None:
    display, hosts = bare_display  # as at login, when the app may start before the panel
    proc = start_app(app_home, "--port", "0", "--model", str(synthetic("bert")),
                     display=display)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        time.sleep(1)  # the app shows its icon with no tray host to take it
        assert accent_pixels(display) == 0
        hosts.append(start_tray_host(display))
        assert wait_for_icon(display) > 50
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "asking the tray host again" in (app_home / "logs" / "localembed.log").read_text()


def wait_for_line(lines: list[str], text: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in lines):
            return True
        time.sleep(0.1)
    return False


def test_without_a_tray_host_the_app_says_so_and_says_when_its_icon_is_shown(
        bare_display: tuple[str, list], synthetic, app_home: Path) -> None:
    display, hosts = bare_display
    proc = start_app(app_home, "--port", "0", "--model", str(synthetic("bert")),
                     display=display)
    lines: list[str] = []

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), lines
        assert wait_for_line(lines, "No system tray found"), lines
        notice = next(line for line in lines if "No system tray found" in line)
        assert url in notice and "keeps running" in notice and f"kill {proc.pid}" in notice
        assert not any("Tray icon shown" in line for line in lines)
        hosts.append(start_tray_host(display))
        assert wait_for_icon(display) > 50
        assert wait_for_line(lines, "Tray icon shown"), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        reader.join(10)
    assert proc.returncode == 0 and not any("Traceback" in line for line in lines), lines


def test_single_instance_and_no_display(synthetic, app_home: Path) -> None:
    first = start_app(app_home, "--port", "0", "--model", str(synthetic("bert")))
    try:
        url = first.stdout.readline().strip()  # type: ignore[union-attr]
        assert wait_until(lambda: health(url), 60)  # listening at once, ready once loaded
        started = time.monotonic()
        second = start_app(app_home)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0 and f"already running at {url}" in err
        assert time.monotonic() - started < 30
        assert health(url)  # the first keeps serving
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=30)
    assert first.returncode == 0
    assert "No system tray available" in err and "stopped" in err and "Traceback" not in err
    log = (app_home / "logs" / "localembed.log").read_text()
    assert "serving" in log and "stopped" in log


def test_a_taken_port_falls_back_to_a_free_one(synthetic, app_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start_app(app_home, "--port", str(port), "--model", str(synthetic("bert")))
        try:
            url = proc.stdout.readline().strip()  # type: ignore[union-attr]
            assert url and not url.endswith(f":{port}")
            assert wait_until(lambda: health(url), 60)
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    assert f"Port {port} is in use" in err and proc.returncode == 0


def test_autostart_entry_is_written_and_removed(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from localembed.desktop import autostart

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    assert not autostart.is_enabled()
    path = autostart.enable()
    assert path == tmp_path / ".config" / "autostart" / "localembed.desktop"
    text = path.read_text()
    assert "Exec=" in text and "localembed app --no-browser" in text and "Type=Application" in text
    assert autostart.toggle() is False and not path.exists()


def test_crashes_are_logged_and_shown(app_home: Path) -> None:
    from localembed.desktop import logs
    from localembed.desktop.controller import AppController

    controller = AppController(ServerConfig(port=0))
    old_hooks = (sys.excepthook, threading.excepthook)
    try:
        log_file = logs.setup(on_crash=controller.fail)

        def boom() -> None:
            raise RuntimeError("worker exploded")

        t = threading.Thread(target=boom, name="doomed")
        t.start()
        t.join()
        assert controller.status == "error" and "worker exploded" in controller.status_text()
        assert "crash in thread doomed" in log_file.read_text()
    finally:
        sys.excepthook, threading.excepthook = old_hooks


def test_importing_the_tray_needs_no_display() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    code = ("import localembed.desktop.tray, localembed.desktop.controller;"
            "from localembed.desktop.tray import Tray, TrayUnavailable;"
            "from localembed.desktop.controller import AppController;"
            "from localembed.config.settings import ServerConfig\n"
            "try:\n    Tray(AppController(ServerConfig()))\n"
            "except TrayUnavailable as e:\n    print('unavailable', e)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("unavailable"), proc.stderr


def test_without_a_tray_an_app_whose_model_cannot_load_stops_with_the_reason(
        app_home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)  # a GGUF header and nothing a model needs
    proc = start_app(app_home, "--no-tray", "--port", "0", "--model", str(broken))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert out.startswith("http://127.0.0.1:")  # it listened while the model loaded
    assert "broken.gguf" in err and "cannot load" in err and "Traceback" not in err
    assert "localembed stopped." in err

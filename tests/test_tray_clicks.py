"""The tray icon used with a real mouse: the app under Xvfb with Debian's trayer as the tray
host, clicked through the X server (XTEST, by xdotool) where a user would click it.

pystray's plain X11 backend (the one found where PyGObject is not installed) never received
these clicks; the tray now answers them and shows its menu itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from localembed.desktop import xmenu
from tests.conftest import ARTIFACTS
from tests.conftest import wait_until as _wait_until
from tests.fixtures.desktop import accent_pixels, describe_windows, screenshot, wait_for_icon
from tests.fixtures.server import health

ICON_CLASS = "localembedSystemTrayIcon"  # pystray's WM_CLASS for the icon named "localembed"


def wait_until(check, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    """Screens and trays are slow on a loaded machine: longer waits, checked less often."""
    return _wait_until(check, timeout, interval=0.2)


def find_window(display: str, wm_class: str) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) on the screen of the mapped window with that WM_CLASS, or None."""
    from Xlib import X, error
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    try:
        root = d.screen().root
        pending = [root]
        while pending:
            window = pending.pop()
            try:
                names = window.get_wm_class() or ()
                if wm_class in names and window.get_attributes().map_state == X.IsViewable:
                    geometry = window.get_geometry()
                    origin = window.translate_coords(root, 0, 0)
                    return -origin.x, -origin.y, geometry.width, geometry.height
                pending.extend(window.query_tree().children)
            except error.XError:  # a window that went away while we looked
                continue
        return None
    finally:
        d.close()


def wait_for_window(display: str, wm_class: str, timeout: float = 20.0,
                    ) -> tuple[int, int, int, int] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find_window(display, wm_class)
        if found is not None:
            return found
        time.sleep(0.2)
    return None


def xdotool(display: str, *args: str) -> None:
    assert shutil.which("xdotool"), "xdotool is required (apt-get install xdotool)"
    subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True,
                   timeout=20)


def click(display: str, x: int, y: int, button: int) -> None:
    xdotool(display, "mousemove", str(x), str(y), "click", str(button))


def centre(box: tuple[int, int, int, int]) -> tuple[int, int]:
    x, y, width, height = box
    return x + width // 2, y + height // 2


@contextmanager
def app_in_tray(display: str, synthetic, app_home: Path,  # type: ignore[no-untyped-def]
                tmp_path: Path) -> Iterator[tuple[subprocess.Popen, str, Path, tuple]]:
    """The app, its icon docked in the tray; yields (process, url, the file where the browser
    records the URLs it was asked to open, the icon's box). The "browser" is a script."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "LOCALEMBED_HOME": str(app_home), "PYTHONUNBUFFERED": "1",
           "DISPLAY": display, "BROWSER": str(browser)}
    env.pop("PYSTRAY_BACKEND", None)
    proc = subprocess.Popen([sys.executable, "-m", "localembed", "app", "--no-browser",
                             "--port", "0", "--model", str(synthetic("bert"))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        # listening at once; the icon turns blue once the model is loaded
        assert _wait_until(lambda: health(url), 60)
        assert wait_for_icon(display) > 50, (
            f"no icon on the screen: {describe_windows(display)}; app exited: {proc.poll()}; "
            f"log: {(app_home / 'logs' / 'localembed.log').read_text()[-1500:]}")
        icon = wait_for_window(display, ICON_CLASS)
        assert icon is not None and icon[1] < 40  # docked in trayer, at the top of the screen
        yield proc, url, opened, icon
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_clicking_the_tray_icon_opens_the_playground(display: str, synthetic, app_home: Path,
                                                     tmp_path: Path) -> None:
    with app_in_tray(display, synthetic, app_home, tmp_path) as (proc, url, opened, icon):
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot(display, ARTIFACTS / "tray-click-icon.png")
        assert not opened.exists()
        click(display, *centre(icon), 1)
        assert wait_until(opened.exists), "the click opened nothing"
        assert wait_until(lambda: opened.read_text().endswith("\n"))
        assert opened.read_text() == url + "/\n"


def open_menu(display: str, icon: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    click(display, *centre(icon), 3)
    menu = wait_for_window(display, xmenu.WM_CLASS[0])
    assert menu is not None, "no menu opened"
    return menu


def test_right_clicking_the_icon_opens_the_menu_and_quit_quits(
        display: str, synthetic, app_home: Path, tmp_path: Path) -> None:
    with app_in_tray(display, synthetic, app_home, tmp_path) as (proc, url, opened, icon):
        menu = open_menu(display, icon)
        assert menu[1] >= icon[1] + icon[3]  # under the icon, in the tray at the top
        time.sleep(0.5)  # drawn
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot(display, ARTIFACTS / "tray-click-menu.png")
        x, y, width, height = menu
        quit_y = y + height - xmenu.PADDING - xmenu.ROW_HEIGHT // 2  # Quit is the last item
        click(display, x + width // 2, quit_y, 1)
        proc.wait(30)
        assert proc.returncode == 0
        err = proc.stderr.read()  # type: ignore[union-attr]
        assert "localembed stopped." in err and "Traceback" not in err, err
        assert not health(url)
        assert find_window(display, ICON_CLASS) is None
        assert accent_pixels(display) == 0  # the icon is gone from the tray
        assert not opened.exists()  # Quit, not the item above it


@pytest.mark.parametrize("dismiss", ["Escape", "a click elsewhere"])
def test_the_menu_closes_without_running_anything(dismiss: str, display: str, synthetic,
                                                   app_home: Path, tmp_path: Path) -> None:
    with app_in_tray(display, synthetic, app_home, tmp_path) as (proc, url, opened, icon):
        open_menu(display, icon)
        if dismiss == "Escape":
            xdotool(display, "key", "Escape")
        else:
            click(display, 400, 400, 1)
        assert wait_until(lambda: find_window(display, xmenu.WM_CLASS[0]) is None)
        assert proc.poll() is None and health(url) and not opened.exists()
        click(display, *centre(icon), 1)  # and the icon still answers
        assert wait_until(opened.exists)


def test_the_arrow_keys_and_return_choose_a_menu_item(display: str, synthetic, app_home: Path,
                                                      tmp_path: Path) -> None:
    with app_in_tray(display, synthetic, app_home, tmp_path) as (proc, url, opened, icon):
        open_menu(display, icon)
        xdotool(display, "key", "Up", "Return")  # up from the top wraps round to Quit
        proc.wait(30)
    assert proc.returncode == 0 and not opened.exists()


def test_stopping_the_app_while_its_menu_is_open_closes_the_menu(
        display: str, synthetic, app_home: Path, tmp_path: Path) -> None:
    with app_in_tray(display, synthetic, app_home, tmp_path) as (proc, url, opened, icon):
        open_menu(display, icon)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert find_window(display, xmenu.WM_CLASS[0]) is None


def test_the_app_tells_how_to_use_the_icon(display: str, synthetic, app_home: Path,
                                           tmp_path: Path) -> None:
    with app_in_tray(display, synthetic, app_home, tmp_path) as (proc, url, opened, icon):
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
    assert "Tray icon shown. Click it to open the playground; right-click it for the menu." in err


# -- the menu's items, clicked in an app run in-process (so the test knows the menu's rows) ------


@pytest.fixture
def tray(display: str, tray_app):  # type: ignore[no-untyped-def]
    """A tray over two installed models ("small" served, "wide"), its icon docked."""
    tray, _runner = tray_app
    tray.icon_box = wait_for_window(display, ICON_CLASS)
    return tray


def choose(display: str, tray, text: str) -> None:  # type: ignore[no-untyped-def]
    """Open the menu with a right click and click the item showing ``text``."""
    x, y, width, _height = open_menu(display, tray.icon_box)
    time.sleep(0.3)  # drawn
    top = y + xmenu.PADDING
    for row in xmenu.rows(tray.icon.menu):
        if row.text == text:
            click(display, x + width // 2, top + row.height // 2, 1)
            assert wait_until(lambda: find_window(display, xmenu.WM_CLASS[0]) is None)
            return
        top += row.height
    raise AssertionError(f"no {text!r} in the menu")


def test_choosing_a_model_in_the_menu_serves_it(tray, display: str) -> None:
    import json
    import urllib.request

    choose(display, tray, "wide")
    assert wait_until(lambda: tray.controller.default_id == "wide")
    body = json.load(urllib.request.urlopen(tray.controller.url + "/health", timeout=10))
    assert body["model"] == "wide"


def test_copy_api_url_in_the_menu_puts_the_url_on_the_clipboard(tray, display: str) -> None:
    def clipboard() -> str:
        return subprocess.run(["xclip", "-o", "-selection", "clipboard"], capture_output=True,
                              text=True, env={**os.environ, "DISPLAY": display},
                              timeout=10).stdout

    choose(display, tray, "Copy API URL")
    assert wait_until(lambda: clipboard() == tray.controller.url + "/v1")


def test_start_at_login_in_the_menu_writes_the_autostart_entry(tray, display: str,
                                                               tmp_path: Path) -> None:
    entry = tmp_path / ".config" / "autostart" / "localembed.desktop"
    choose(display, tray, "Start at Login")
    assert wait_until(entry.exists)
    assert next(r for r in xmenu.rows(tray.icon.menu) if r.text == "Start at Login").checked


def test_pause_in_the_menu_stops_serving_and_the_menu_then_offers_resume(tray,
                                                                         display: str) -> None:
    choose(display, tray, "Pause Server")
    assert wait_until(lambda: tray.controller.status == "paused")
    assert not health(tray.controller.url)
    choose(display, tray, "Resume Server")
    assert wait_until(lambda: health(tray.controller.url))


def test_only_the_tray_loop_uses_pystrays_x_connection(tray, display: str) -> None:
    """Menu actions update the icon from the click thread and Quit comes from another: none of
    them may use pystray's own python-xlib connection, which two threads can deadlock."""
    import threading

    connection = tray.icon._display.display  # python-xlib's protocol display
    original = connection.send_and_recv
    used_by: set[str] = set()

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        used_by.add(threading.current_thread().name)
        return original(*args, **kwargs)

    connection.send_and_recv = recording
    choose(display, tray, "Pause Server")
    assert wait_until(lambda: tray.controller.status == "paused")
    choose(display, tray, "Resume Server")
    assert wait_until(lambda: health(tray.controller.url))
    assert wait_until(lambda: accent_pixels(display) > 50)  # redrawn "ready" on the loop
    tray.quit()
    assert tray._ended.wait(10)
    assert used_by == {tray._loop_thread.name}


def test_the_menu_marks_the_model_being_served(tray, display: str) -> None:
    from tests.fixtures.desktop import screen_pixels

    x, y, _width, _height = open_menu(display, tray.icon_box)
    time.sleep(0.3)  # drawn
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot(display, ARTIFACTS / "tray-click-menu-models.png")
    top, dots = y + xmenu.PADDING, {}
    for row in xmenu.rows(tray.icon.menu):
        if row.text in ("small", "wide"):
            # the radio dot's centre, left of the text (see xmenu.render)
            dot_x, dot_y = x + xmenu.TEXT_LEFT + row.indent - 11, top + row.height // 2
            dots[row.text] = tuple(int(v) for v in screen_pixels(display)[dot_y, dot_x])
        top += row.height
    xdotool(display, "key", "Escape")
    assert dots == {"small": xmenu.FOREGROUND, "wide": xmenu.BACKGROUND}


# -- where the menu goes ----------------------------------------------------------------------


def test_the_menu_opens_under_an_icon_at_the_top_of_the_screen() -> None:
    assert xmenu.place((200, 300), (100, 0, 24, 24), (800, 600)) == (100, 24)


def test_the_menu_opens_above_an_icon_at_the_bottom_of_the_screen() -> None:
    assert xmenu.place((200, 300), (100, 576, 24, 24), (800, 600)) == (100, 276)


def test_the_menu_stays_on_the_screen_beside_an_icon_at_its_right_edge() -> None:
    assert xmenu.place((200, 300), (776, 0, 24, 24), (800, 600)) == (600, 24)


# -- pystray's gtk backends (where PyGObject is installed), as they stop ----------------------


class StoppingFailsIcon:
    """Stands for pystray's gtk icon where no notification service runs: its loop ends on
    stop(), then it raises (GLib.Error from hiding its notification), as seen with PyGObject
    3.50 under dbus-run-session. On the main thread the real one also resets SIGINT."""

    __module__ = "pystray._gtk"

    def __init__(self) -> None:
        import threading

        self.stopped = threading.Event()
        self.ran_on_main_thread: bool | None = None

    def run(self, setup=None) -> None:  # type: ignore[no-untyped-def]
        import threading

        self.ran_on_main_thread = threading.current_thread() is threading.main_thread()
        self.stopped.wait(30)
        raise RuntimeError("The name org.freedesktop.Notifications was not provided")

    def stop(self) -> None:
        self.stopped.set()


def gtk_tray(bare_display: tuple[str, list], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from localembed.config.settings import ServerConfig
    from localembed.desktop.controller import AppController
    from localembed.desktop.tray import Tray

    monkeypatch.setenv("DISPLAY", bare_display[0])
    import gc

    tray = Tray(AppController(ServerConfig(port=0)))
    tray._clicks.close()  # the stand-in has no X window to click
    tray._clicks = None
    tray._calls = None  # nor a loop to call on
    tray.icon = StoppingFailsIcon()
    gc.collect()  # pystray's own icon lets go of the display now, while it is still there
    return tray


def test_a_gtk_tray_that_raises_as_it_stops_still_stops_cleanly(
        bare_display: tuple[str, list], monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    tray = gtk_tray(bare_display, monkeypatch)
    threading.Timer(0.5, tray.stop).start()
    tray.run()  # returns, not raises
    assert tray.icon.stopped.is_set()


def test_a_gtk_tray_runs_off_the_main_thread_so_ctrl_c_still_stops_the_app_cleanly(
        bare_display: tuple[str, list], monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    tray = gtk_tray(bare_display, monkeypatch)
    threading.Timer(0.5, tray.stop).start()
    tray.run()
    assert tray.icon.ran_on_main_thread is False

"""Running the desktop app: one launch from start to quit.

This is the app's whole lifecycle in one place, apart from any command line: take the
single-instance lock (or hand off to the running app), start the server, install the stop
signals, publish and announce the URL, open the playground on the very first launch, show the
tray icon (or fall back to a plain server when there is no system tray), wait, and on the way
out stop the server and release the lock. The ``localembed app`` command only parses options and
calls ``run_app``; how messages reach the user is passed in, so nothing here imports click and a
frozen build or a test can drive it the same way.
"""

from __future__ import annotations

import os
import signal
import threading
import webbrowser
from collections.abc import Callable

from localembed import __version__
from localembed.config.paths import home_dir
from localembed.config.settings import load_config, require_key_off_loopback
from localembed.desktop import logs
from localembed.desktop.controller import AppController
from localembed.desktop.instance import Instance
from localembed.desktop.tray import Tray, TrayUnavailable


class AppError(RuntimeError):
    """The app cannot start; the message is meant for the user as it stands."""


def run_app(port: int | None, model: str | None, open_browser: bool, use_tray: bool,
            say: Callable[[str], None], announce: Callable[[str], None]) -> None:
    """Run the desktop app until it is quit from the tray, or stopped by SIGTERM or SIGINT.

    ``say`` shows a status message (the CLI writes it to stderr); ``announce`` publishes the
    server's URL once, when it serves (the CLI writes it to stdout as the first line and flushes,
    so a launcher can read it). If another instance already runs, its playground is opened
    instead and this returns at once. Raises ``AppError`` when the app cannot start.
    """
    instance = Instance()
    if not instance.acquire():
        url = instance.running_url()
        if url is None:
            raise AppError("localembed seems to be starting or stuck (its lock is "
                           "held but it does not answer); try again shortly")
        say(f"localembed is already running at {url}; opening its playground.")
        if open_browser:
            webbrowser.open(url + "/")
        return
    try:
        config = load_config(port=port, model=model)
        notice = require_key_off_loopback(config)
    except (ValueError, OSError) as exc:
        instance.release()
        raise AppError(str(exc)) from exc
    if notice:
        say(notice)
    controller = AppController(config)
    log_file = logs.setup(on_crash=controller.fail)
    try:
        controller.start()
    except Exception as exc:
        instance.release()
        raise AppError(f"cannot start: {exc} (details in {log_file})") from exc
    stop = threading.Event()
    tray: Tray | None = None

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()
        if tray is not None:
            tray.stop()

    # Installed before the URL is announced, so a stop request never hits the default handlers
    # (a KeyboardInterrupt that the CLI would report as an abort, or an abrupt termination).
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    instance.publish(controller.url)
    if controller.notice:
        say(controller.notice)
    # The first load may still run, or have failed already: either way the loop below (with
    # no tray) or the tray's status line says how it ended.
    loading = controller.status in ("loading", "error")
    if loading:
        say(f"localembed {__version__} at {controller.url}: loading {controller.default_id} "
            "(requests wait for it)")
    else:
        say(f"localembed {__version__} serving {controller.default_id} at {controller.url}")
    announce(controller.url)
    first_run = home_dir() / ".launched"
    if not first_run.exists():
        first_run.touch()
        if open_browser:
            controller.open_playground()
    if use_tray and not stop.is_set():
        try:
            tray = Tray(controller)
        except TrayUnavailable as exc:
            say(f"No system tray available ({exc}); running as a server only. "
                f"Open {controller.url} in a browser; Ctrl-C stops.")
    try:
        if tray is not None:
            shown = f"Tray icon shown. {tray.how_to_use()}"
            waiting = tray.tray_host_missing()  # the icon waits, invisible, for a tray host
            if waiting:
                say(f"No system tray found on this display: localembed keeps running. Open "
                    f"{controller.url} for the playground (or launch localembed again); quit "
                    f"with Ctrl-C or `kill {os.getpid()}`. The icon appears if a system tray "
                    "starts.")
            else:
                say(shown)
            if not stop.is_set():  # once a tray host docks the icon, say that it is shown
                tray.run(on_shown=(lambda: say(shown)) if waiting else None)
        else:
            while not stop.wait(0.2):
                if loading and controller.status != "loading":  # with no tray, say it here
                    loading = False
                    if controller.status == "error":
                        raise AppError(f"{controller.detail} (details in {log_file})")
                    say(f"serving {controller.default_id}")
    finally:
        if controller.status != "stopped":
            controller.quit()
        instance.release()
        say("localembed stopped.")

"""The desktop app's core: the server in a background thread and the actions the tray offers.

The tray (and the headless fallback, and tests) only call these methods; nothing here knows
about pystray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Callable

from msgspec.structs import replace

from localembed.config import instances
from localembed.config.network import local_url
from localembed.config.settings import ServerConfig
from localembed.desktop import autostart
from localembed.desktop.logs import logs_dir

log = logging.getLogger("localembed.app")


class AppController:
    """Server lifecycle and tray actions; ``on_change`` is called after every state change."""

    def __init__(self, config: ServerConfig, on_change: Callable[[], None] | None = None) -> None:
        self.config = config
        self.on_change = on_change or (lambda: None)
        self._status_lock = threading.Lock()
        self.status = "loading"  # loading, ready, paused, error, stopped
        self.detail = ""
        self.notice = ""  # one-off message for the user (e.g. the port fallback)
        self.registry = None
        self.app = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._loader: threading.Thread | None = None
        self._stopping = False
        self.port = config.port

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving while the model loads (the tray shows "Loading" until it is ready,
        /health says "loading" and requests wait for it); the port falls back to a free one
        if taken. A model that cannot load turns the status to an error with its reason."""
        from localembed.service.registry import Registry

        self._set("loading", "loading the model")
        try:
            # The load runs beside the server's imports; an unknown model fails here at once.
            self.registry = Registry.from_config(self.config, background=True)
            from localembed.server import create_app

            self.app = create_app(self.config, self.registry)
            self._listen()
        except Exception as exc:  # shown in the tray and logged, never a silent death
            log.exception("the server could not start")
            self._set("error", str(exc))
            raise
        self._loader = threading.Thread(target=self._await_load, name="localembed-loaded",
                                        daemon=True)
        self._loader.start()

    def _await_load(self) -> None:
        registry = self.registry
        assert registry is not None
        try:
            registry.wait_ready()
        except Exception as exc:  # noqa: BLE001 (the reason goes where the user looks)
            if self._advance("loading", "error", f"cannot load {registry.default_id}: {exc}"):
                log.error("cannot load %s: %s", registry.default_id, exc)
            return
        if self._advance("loading", "ready", f"serving {registry.default_id}"):
            log.info("serving %s at %s", registry.default_id, self.url)

    def wait_ready(self, timeout: float | None = None) -> str:
        """The status once the first load has ended ("ready", or "error" with its reason)."""
        if self._loader is not None:
            self._loader.join(timeout)
        return self.status

    def _listen(self) -> None:
        from localembed.server import make_server

        try:
            self._server = make_server(self.app, replace(self.config, port=self.port))
        except OSError as exc:
            if self.port == 0:
                raise
            wanted = self.port
            self._server = make_server(self.app, replace(self.config, port=0))
            self.notice = (f"Port {wanted} is in use by another program ({exc.strerror}); "
                           f"using port {self._server.effective_port} instead.")
            log.warning(self.notice)
        self.port = self._server.effective_port
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, args=(self._server,),
                                        name="localembed-http", daemon=True)
        self._thread.start()
        try:  # so that `localembed ls` and `rm` ask this server too, whatever its port
            instances.register(instances.this_server("app", self.config.host, self.port))
        except OSError as exc:
            log.warning("cannot record the server in %s: %s", instances.servers_dir(), exc)
        registry = self.registry
        assert registry is not None
        if registry.ready:  # else _await_load says so when the load ends
            self._set("ready", f"serving {registry.default_id}")
            log.info("serving %s at %s", registry.default_id, self.url)
        else:
            self._set("loading", f"loading {registry.default_id}")
            log.info("listening at %s while %s loads", self.url, registry.default_id)

    def _serve(self, server) -> None:  # type: ignore[no-untyped-def]
        try:
            server.run()
        except (OSError, ValueError):
            if not self._stopping:  # closed under us by pause/quit: expected
                raise

    def _stop_server(self) -> None:
        """Stop accepting, let the requests already received finish (within the grace
        period), then close: pausing or quitting never cuts a request in flight."""
        from localembed.server.serving import GRACE_PERIOD

        self._stopping = True
        with contextlib.suppress(OSError):
            instances.unregister()
        if self._server is not None:
            self._server.stop()
        if self._thread is not None:
            self._thread.join(GRACE_PERIOD + 5)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        return local_url(self.config.host, self.port)

    def _set(self, status: str, detail: str = "") -> None:
        with self._status_lock:
            self.status, self.detail = status, detail
        self.on_change()

    def _advance(self, expected: str, status: str, detail: str) -> bool:
        """Set the status only from ``expected``: a load that ends after a quit or a model
        switch does not overwrite what the user did meanwhile."""
        with self._status_lock:
            if self.status != expected:
                return False
            self.status, self.detail = status, detail
        self.on_change()
        return True

    def status_text(self) -> str:
        # ASCII only: pystray's X11 backend encodes the tooltip as Latin-1.
        labels = {"loading": "Loading", "ready": "Ready", "paused": "Paused",
                  "error": "Error", "stopped": "Stopped"}
        text = labels.get(self.status, self.status)
        return f"{text}: {self.detail}" if self.detail else text

    def fail(self, reason: str) -> None:
        """A crash somewhere: shown as the tray status (it is already logged)."""
        self._set("error", reason)

    # -- actions -----------------------------------------------------------------------------

    def pause(self) -> None:
        if self.status == "ready":
            self._stop_server()
            self._set("paused", "not accepting requests")

    def resume(self) -> None:
        if self.status == "paused":
            self._listen()

    def toggle_pause(self) -> None:
        self.pause() if self.status == "ready" else self.resume()

    def models(self) -> list[str]:
        from localembed.models.store import installed

        return installed()

    @property
    def default_id(self) -> str | None:
        return self.registry.default_id if self.registry else None

    def switch_model(self, model_id: str) -> None:
        """Serve another installed model (remembered for next time)."""
        self._set("loading", f"switching to {model_id}")
        try:
            self.registry.set_default(model_id, persist=True)  # type: ignore[union-attr]
        except Exception as exc:
            log.exception("switching to %s failed", model_id)
            self._set("error", f"cannot load {model_id}: {exc}")
            return
        self._set("ready", f"serving {model_id}")

    def open_playground(self) -> None:
        webbrowser.open(self.url + "/")

    def copy_url(self) -> bool:
        """Put the OpenAI base URL on the clipboard."""
        ok = copy_to_clipboard(self.url + "/v1")
        if not ok:
            self.notice = "No clipboard tool found (install xclip, xsel or wl-clipboard)."
        return ok

    def toggle_autostart(self) -> bool:
        return autostart.toggle()

    def autostart_enabled(self) -> bool:
        return autostart.is_enabled()

    def open_logs(self) -> None:
        open_path(str(logs_dir()))

    def quit(self) -> None:
        self._stop_server()
        if self.registry is not None:
            self.registry.close()
        self._set("stopped")
        log.info("stopped")


def copy_to_clipboard(text: str) -> bool:
    if sys.platform == "darwin":
        commands = [["pbcopy"]]
    elif sys.platform == "win32":
        commands = [["clip"]]
    else:
        commands = [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"],
                    ["wl-copy"]]
    for command in commands:
        if shutil.which(command[0]):
            try:
                subprocess.run(command, input=text.encode(), check=True, timeout=5)
                return True
            except (OSError, subprocess.SubprocessError):
                continue
    return False


def open_path(path: str) -> None:
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
    else:
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        if shutil.which(opener):
            subprocess.Popen([opener, path], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)

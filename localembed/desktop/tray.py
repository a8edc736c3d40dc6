"""The tray icon: a thin pystray view over ``AppController``.

pystray is imported only in ``Tray.__init__`` (its X11 backend connects to the display at import
time), so this module imports anywhere. The menu is defined once, in ``Tray._menu``: pystray
shows it natively (AppIndicator, GTK, Windows, macOS); on its plain X11 backend, which has no
menu and never receives clicks, ``xclicks`` answers them and shows that same menu itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from localembed.desktop.controller import AppController
from localembed.desktop.xclicks import ClickListener
from localembed.desktop.xdock import DockKeeper, LoopCalls, close_window, tray_host_present

log = logging.getLogger(__name__)

# How long Quit waits for pystray's X11 loop to end before closing its window itself.
STOP_GRACE_SECONDS = 3.0

COLORS = {"ready": (79, 91, 213), "loading": (140, 146, 160), "paused": (230, 160, 30),
          "error": (217, 45, 32), "stopped": (140, 146, 160)}


def icon_image(status: str, size: int = 64):  # type: ignore[no-untyped-def]
    """The app icon tinted by state: blue ready, grey loading, amber paused, red error."""
    from PIL import Image, ImageDraw

    color = COLORS.get(status, COLORS["loading"])
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle([0, 0, size - 1, size - 1], radius=size // 5, fill=(*color, 255))
    s = size / 64
    for x, y, r in [(20, 22, 6), (44, 18, 5), (36, 42, 7), (18, 46, 4)]:
        draw.ellipse([(x - r) * s, (y - r) * s, (x + r) * s, (y + r) * s], fill="white")
    return img


class TrayUnavailable(RuntimeError):
    """No system tray here (no display, no tray host, or no pystray backend)."""


class Tray:
    def __init__(self, controller: AppController) -> None:
        try:
            import pystray
        except Exception as exc:  # pystray raises whatever its backend raises without a display
            raise TrayUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self.pystray = pystray
        self.controller = controller
        self.icon = pystray.Icon("localembed", icon_image(controller.status),
                                 "localembed", menu=self._menu())
        controller.on_change = self.refresh
        self._keeper: DockKeeper | None = None
        # Selected now, not in run(): whether clicks reach the icon decides what to tell the user.
        window = getattr(self.icon, "_window", None)
        self._clicks = ClickListener(self.icon, window.id) if self._xorg and window else None
        self._calls = LoopCalls(self.icon) if self._xorg and window else None
        self._loop_thread: threading.Thread | None = None
        self._owner = threading.current_thread()
        self._early: list[Callable[[], object]] = []
        self._early_lock = threading.Lock()
        self._ended = threading.Event()
        self._stopping = False

    def _menu(self):  # type: ignore[no-untyped-def]
        item, menu, c = self.pystray.MenuItem, self.pystray.Menu, self.controller

        def model_item(model_id: str):  # type: ignore[no-untyped-def]
            return item(model_id, lambda: c.switch_model(model_id),
                        checked=lambda _item: c.default_id == model_id, radio=True)

        return menu(
            item(lambda _item: c.status_text(), None, enabled=False),
            menu.SEPARATOR,
            item("Open Playground", lambda: c.open_playground(), default=True),
            item("Copy API URL", lambda: c.copy_url()),
            item("Model", menu(lambda: [model_item(m) for m in c.models()])),
            item(lambda _item: "Resume Server" if c.status == "paused" else "Pause Server",
                 lambda: c.toggle_pause()),
            menu.SEPARATOR,
            item("Start at Login", lambda: c.toggle_autostart(),
                 checked=lambda _item: c.autostart_enabled()),
            item("Open Logs Folder", lambda: c.open_logs()),
            item("Quit", self.quit),
        )

    @property
    def has_menu(self) -> bool:
        return bool(getattr(self.icon, "HAS_MENU", True)) or self._clicks_answered

    @property
    def _clicks_answered(self) -> bool:
        return self._clicks is not None and self._clicks.selected

    def how_to_use(self) -> str:
        """What a click on the icon does here, for the app to tell the user."""
        backend = type(self.icon).__module__
        if backend.endswith(("_appindicator", "_darwin")):
            return "Click it for the menu."  # neither has a separate default action
        if backend.endswith("_xorg") and not self._clicks_answered:
            return "Click it to open the playground."  # pystray itself selects clicks, then
        return "Click it to open the playground; right-click it for the menu."

    @property
    def _xorg(self) -> bool:
        """pystray's plain X11 backend, whose icon docks into an XEmbed tray host."""
        return type(self.icon).__module__.endswith("_xorg")

    def tray_host_missing(self) -> bool:
        """True on X11 when no tray host owns the system-tray selection: the icon then stays
        invisible until one starts (a session still starting, or none at all). pystray's
        xorg and gtk backends both show XEmbed icons; its appindicator backend does not."""
        xembed = type(self.icon).__module__.endswith(("_xorg", "_gtk"))
        return xembed and not tray_host_present()

    def _on_loop(self, action: Callable[[], object]) -> None:
        """Run ``action`` on pystray's X11 loop thread when called from another while the loop
        runs (see ``xdock.LoopCalls``), else here. Before ``run``, another thread's call (the
        model's load ending) waits for ``run`` to make it: pystray's connection is the
        constructing thread's until then."""
        with self._early_lock:
            loop = self._loop_thread
            if (self._calls is not None and loop is None and not self._ended.is_set()
                    and threading.current_thread() is not self._owner):
                self._early.append(action)
                return
        if (self._calls is not None and loop is not None and not self._ended.is_set()
                and threading.current_thread() is not loop):
            self._calls.call(action)
        else:
            action()

    def _start_loop(self, thread: threading.Thread) -> None:
        """Make ``thread`` the loop thread, running here first what waited for it and a
        refresh: a status that changed while the icon was being made (the load ending) had no
        tray to tell."""
        with self._early_lock:
            early, self._early = self._early, []
            self._refresh_now()
            for action in early:
                action()
            self._loop_thread = thread

    def refresh(self) -> None:
        self._on_loop(self._refresh_now)

    def _refresh_now(self) -> None:
        self.icon.icon = icon_image(self.controller.status)
        self.icon.title = f"localembed: {self.controller.status_text()}"
        with contextlib.suppress(Exception):  # some backends cannot update a menu they lack
            self.icon.update_menu()

    def _show(self, icon: object) -> None:
        """pystray's setup step, in its setup thread: show the icon (on the loop thread)."""
        self._on_loop(lambda: setattr(icon, "visible", True))

    def stop(self) -> None:
        """End ``run`` (from any thread), leaving the server to the caller."""
        self._stopping = True
        self._on_loop(self.icon.stop)

    def quit(self) -> None:
        self.controller.quit()
        self.stop()
        keeper = self._keeper
        if (keeper is not None and threading.current_thread() is not self._loop_thread
                and not self._ended.wait(STOP_GRACE_SECONDS)):
            close_window(keeper.window_id)  # see xdock.close_window

    def run(self, on_shown: Callable[[], None] | None = None) -> None:
        """Show the icon until Quit (blocks). ``on_shown`` is called once a tray host has
        docked the icon (on X11, where an icon can wait for a tray host that starts later)."""
        self._keeper = keeper = self._dock_keeper(on_shown)
        if keeper is not None:
            keeper.start()
        if self._clicks is not None:
            self._clicks.start()
        try:
            if (type(self.icon).__module__.endswith(("_gtk", "_appindicator"))
                    and threading.current_thread() is threading.main_thread()):
                self._run_gtk_off_the_main_thread()
            else:
                self._start_loop(threading.current_thread())
                self._run_icon()
        finally:
            self._ended.set()
            if keeper is not None:
                keeper.stop()

    def _run_icon(self) -> None:
        try:
            self.icon.run(setup=self._show)
        except Exception:
            if not self._stopping:
                raise
            # pystray's gtk backends hide their notification on the way out, which raises
            # where no notification service runs (a bare session): the icon stopped all the same.
            log.debug("the tray backend failed while stopping", exc_info=True)

    def _run_gtk_off_the_main_thread(self) -> None:
        """pystray's gtk backends reset SIGINT to the default (killing the process, skipping
        the app's clean stop) when run on the main thread; on another they leave the app's
        handlers be, and GTK needs no particular thread. The main thread waits, so that the
        signal handlers still run there."""
        failures: list[BaseException] = []

        def target() -> None:
            try:
                self._run_icon()
            except BaseException as exc:  # handed to the waiting thread, raised there
                failures.append(exc)

        worker = threading.Thread(target=target, name="tray-gtk")
        self._start_loop(worker)
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
        if failures:
            raise failures[0]

    def _dock_keeper(self, on_docked: Callable[[], None] | None) -> DockKeeper | None:
        """On X11 only: pystray asks the tray host once, see ``xdock``."""
        window = getattr(self.icon, "_window", None)
        if not self._xorg or window is None:
            return None
        return DockKeeper(window.id, on_docked=on_docked)

"""Mouse clicks on pystray's X11 tray icon.

pystray's xorg backend creates its icon window with only exposure and structure events
selected, so the X server delivers a click on the icon to nobody: its own left-click handler
never runs, and the backend has no menu at all. X lets one client per window select button
presses, and pystray does not, so this selects them from a connection of its own (never
touching pystray's) and answers them: a left click activates the menu's default item (Open
Playground), a right click shows ``xmenu.PopupMenu`` with the tray's menu.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from localembed.desktop import xmenu

log = logging.getLogger(__name__)


class ClickListener:
    """Answers clicks on the icon window ``window_id`` of the pystray ``icon``; ``selected``
    says whether the clicks could be selected (False without a display, or if another client,
    a future pystray, already selects them: pystray's own left click then works)."""

    def __init__(self, icon: Any, window_id: int) -> None:
        self.icon = icon
        self.window_id = window_id
        self.conn: Any = None
        self.window: Any = None
        self.selected = self._select()
        self._thread = threading.Thread(target=self._run, name="tray-clicks", daemon=True)

    def _select(self) -> bool:
        from Xlib import X, error
        from Xlib import display as xdisplay

        try:
            self.conn = xdisplay.Display()
        except Exception:  # no X display
            return False
        caught = error.CatchError(error.BadAccess, error.BadWindow)
        self.window = self.conn.create_resource_object("window", self.window_id)
        self.window.change_attributes(
            event_mask=X.ButtonPressMask | X.ButtonReleaseMask | X.StructureNotifyMask,
            onerror=caught)
        self.conn.sync()
        if caught.get_error() is not None:
            log.info("cannot select clicks on the tray icon: %s", caught.get_error())
            self.close()
            return False
        return True

    def start(self) -> None:
        if self.selected:
            self._thread.start()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.conn is not None:
                self.conn.close()

    def _run(self) -> None:
        from Xlib import X

        try:
            while True:
                event = self.conn.next_event()
                if event.type == X.DestroyNotify and event.window == self.window:
                    return  # the tray stopped
                if (event.type == X.ButtonPress and event.window == self.window
                        and not self._on_press(event)):
                    return  # the tray stopped while its menu was open
        except Exception:  # the X server went away
            log.debug("tray click listener stopped", exc_info=True)
        finally:
            self.close()

    def _on_press(self, event: Any) -> bool:
        """Answer one press; False once the icon's window is gone."""
        if event.detail == 1:
            self._activate(None)
        elif event.detail == 3 and self.icon.menu is not None:
            geometry = self.window.get_geometry()
            anchor = (event.root_x - event.event_x, event.root_y - event.event_y,
                      geometry.width, geometry.height)
            popup = xmenu.PopupMenu(self.conn, xmenu.rows(self.icon.menu))
            chosen = popup.choose(anchor, self.window)
            if popup.watched_gone:
                return False
            if chosen is not None:
                self._activate(chosen.item)
        return True

    def _activate(self, item: Any) -> None:
        """Run a menu item (``None``: the default one, as a left click does on pystray's other
        backends); a failing action is logged, never the end of the tray's clicks."""
        try:
            if item is None:
                self.icon()
            else:
                item(self.icon)
        except Exception:
            log.exception("the tray action failed")

"""Keeps an X11 tray icon docked.

pystray's X11 backend asks the tray host to dock the icon once, when the icon is shown. A host
that is still starting (an app launched at login before the panel, a panel restarting) drops
that request or is not there yet, and the icon then stays invisible for as long as the app runs,
a long-standing complaint about tray apps on X11. The XEMBED tray protocol lets a client ask
again at any time, so this asks whenever the icon's window is found back on the root window
while a tray host owns the selection. It runs on its own X connection, never touching pystray's.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

RETRY_SECONDS = 2.0
REQUEST_DOCK = 0  # SYSTEM_TRAY_REQUEST_DOCK, from the freedesktop.org system tray spec

log = logging.getLogger(__name__)


def tray_host_present() -> bool:
    """Whether a tray host owns the system-tray selection of the default display now (False
    when the display cannot be asked): without one, an icon shown there stays invisible."""
    from Xlib import X
    from Xlib import display as xdisplay

    try:
        conn = xdisplay.Display()
    except Exception:  # no X display to ask
        return False
    try:
        selection = conn.intern_atom(f"_NET_SYSTEM_TRAY_S{conn.get_default_screen()}")
        return conn.get_selection_owner(selection) != X.NONE
    except Exception:  # the X server went away
        return False
    finally:
        with contextlib.suppress(Exception):
            conn.close()


class DockKeeper:
    """Asks the tray host again whenever the icon's window is undocked; ``on_docked`` is
    called (once, from its own thread) when it first finds the icon docked."""

    def __init__(self, window_id: int, interval: float = RETRY_SECONDS,
                 on_docked: Callable[[], None] | None = None) -> None:
        self.window_id = window_id
        self.interval = interval
        self.on_docked = on_docked
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tray-dock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from Xlib import X, error
        from Xlib import display as xdisplay
        from Xlib.protocol import event

        try:
            conn = xdisplay.Display()
        except Exception:  # the display went away: nothing to keep
            return
        try:
            screen = conn.screen()
            selection = conn.intern_atom(f"_NET_SYSTEM_TRAY_S{conn.get_default_screen()}")
            opcode = conn.intern_atom("_NET_SYSTEM_TRAY_OPCODE")
            window = conn.create_resource_object("window", self.window_id)
            while not self._stop.wait(self.interval):
                try:
                    if window.query_tree().parent != screen.root:  # docked
                        if self.on_docked is not None:
                            self.on_docked()
                            self.on_docked = None
                        continue
                    host = conn.get_selection_owner(selection)
                    if host == X.NONE:
                        continue  # no tray host (yet)
                    log.info("Tray icon not docked; asking the tray host again")
                    host.send_event(event.ClientMessage(
                        window=host, client_type=opcode,
                        data=(32, [X.CurrentTime, REQUEST_DOCK, self.window_id, 0, 0])),
                        event_mask=X.NoEventMask)
                    conn.flush()
                except error.XError:  # the icon's window is gone: the tray stopped
                    return
        except Exception:  # the X server went away
            log.debug("dock keeper stopped", exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                conn.close()


def close_window(window_id: int) -> None:
    """Destroy a window from a connection of our own.

    pystray's X11 backend stops its loop when it sees its window destroyed; it destroys the
    window on a message to itself, and under load that message was seen to go unanswered (the
    loop kept waiting while Quit had returned). Destroying the window from outside ends the
    loop the same way.
    """
    from Xlib import display as xdisplay

    try:
        conn = xdisplay.Display()
    except Exception:  # no display left: nothing to close
        return
    try:
        conn.create_resource_object("window", window_id).destroy()
        conn.sync()
    except Exception:  # already gone
        log.debug("tray window already closed", exc_info=True)
    finally:
        with contextlib.suppress(Exception):
            conn.close()



class LoopCalls:
    """Runs calls on pystray's X11 loop thread, woken from an X connection of our own.

    pystray's X11 backend, called from another thread (an icon update after a menu action, the
    setup thread showing the icon, Quit), sends its loop a message and flushes on the loop's
    own python-xlib connection, then waits for the answer with no timeout. python-xlib shared
    by two threads can lose a wakeup: the loop was seen stuck in a reply wait (drawing the icon
    after the menu closed) while the caller waited for it, so the tray froze and Quit never
    returned. Here only the loop thread touches pystray's connection: a call is queued, and a
    ClientMessage sent from another connection wakes the loop, whose handler runs the queue.
    """

    ATOM = "_LOCALEMBED_LOOP_CALL"

    def __init__(self, icon: object) -> None:
        from Xlib import X

        self.window_id: int = icon._window.id  # type: ignore[attr-defined]
        self._pending: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        # Interned before the loop runs, on pystray's connection, in the constructing thread.
        self._atom = icon._display.intern_atom(self.ATOM)  # type: ignore[attr-defined]
        handlers = icon._message_handlers  # type: ignore[attr-defined]
        theirs = handlers.get(X.ClientMessage, lambda _event: None)

        def on_client_message(event: object) -> None:
            if getattr(event, "client_type", None) == self._atom:
                self._run_pending()
            else:
                theirs(event)

        handlers[X.ClientMessage] = on_client_message

    def call(self, action: Callable[[], object]) -> None:
        """Run ``action`` on the loop thread soon (from any thread; not waited for)."""
        from Xlib import X
        from Xlib import display as xdisplay
        from Xlib.protocol import event

        self._pending.put(action)
        try:
            conn = xdisplay.Display()
        except Exception:  # no display left: the loop is gone too
            return
        try:
            window = conn.create_resource_object("window", self.window_id)
            window.send_event(event.ClientMessage(window=window, client_type=self._atom,
                                                  data=(32, [X.CurrentTime, 0, 0, 0, 0])),
                              event_mask=X.NoEventMask)  # to the window's own client
            conn.sync()
        except Exception:  # the window is gone: the loop has ended
            log.debug("tray loop already ended", exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _run_pending(self) -> None:
        while True:
            try:
                action = self._pending.get_nowait()
            except queue.Empty:
                return
            try:
                action()
            except Exception:  # one failed update must not end the tray
                log.exception("tray update failed")

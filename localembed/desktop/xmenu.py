"""A popup menu for pystray's plain X11 backend, which has none.

Where neither AppIndicator nor GTK is installed, pystray falls back to its xorg backend: an
XEmbed icon that cannot show a menu, so Quit, model switching and the rest would be out of reach
from the tray. This draws the tray's own ``pystray.Menu`` (the one definition the native menus
use too) into an override-redirect window next to the icon. Text is rendered with Pillow, not
X core fonts, which a minimal X server may lack. A submenu is shown inline, its items indented
under its title: a cascade would double the code for the one submenu (Model) the tray has.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PADDING = 4  # above the first row and below the last
ROW_HEIGHT = 24
SEPARATOR_HEIGHT = 9
FONT_SIZE = 13
MIN_WIDTH = 160
TEXT_LEFT = 26  # room for a check mark or radio dot
INDENT = 14  # a submenu's items, under its title
WM_CLASS = ("localembed-menu", "localembed")

BACKGROUND, FOREGROUND, DISABLED = (246, 246, 248), (20, 20, 24), (140, 140, 150)
HIGHLIGHT, HIGHLIGHT_TEXT, BORDER = (79, 91, 213), (255, 255, 255), (160, 160, 170)


@dataclass(frozen=True)
class Row:
    """One line of the menu as shown now: the item's state is read when the menu opens."""

    text: str = ""
    item: Any = None  # the pystray MenuItem to run, None for a title or a separator
    enabled: bool = False
    mark: str = ""  # "check" or "radio" for an item that can be checked, else ""
    checked: bool = False
    indent: int = 0
    separator: bool = False

    @property
    def height(self) -> int:
        return SEPARATOR_HEIGHT if self.separator else ROW_HEIGHT


def rows(menu: Any, indent: int = 0) -> list[Row]:
    """The visible items of a ``pystray.Menu``, submenus flattened under their titles."""
    out: list[Row] = []
    for item in menu:
        if item is menu.SEPARATOR:
            out.append(Row(separator=True))
        elif item.submenu is not None:
            out.append(Row(text=item.text, indent=indent))
            out.extend(rows(item.submenu, indent + INDENT))
        else:
            checked = item.checked
            mark = "" if checked is None else ("radio" if item.radio else "check")
            out.append(Row(text=item.text, item=item, enabled=bool(item.enabled), mark=mark,
                           checked=bool(checked), indent=indent))
    return out


def _font():  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_SIZE)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError):
        return ImageFont.load_default()


def menu_size(shown: list[Row]) -> tuple[int, int]:
    font = _font()
    width = max([MIN_WIDTH] + [TEXT_LEFT + r.indent + int(font.getlength(r.text)) + 24
                               for r in shown if not r.separator])
    return width, PADDING * 2 + sum(r.height for r in shown)


def row_at(shown: list[Row], y: int) -> int | None:
    """The index of the row at ``y`` (window coordinates), None in the padding."""
    top = PADDING
    for index, row in enumerate(shown):
        if top <= y < top + row.height:
            return index
        top += row.height
    return None


def render(shown: list[Row], size: tuple[int, int], hover: int | None):  # type: ignore[no-untyped-def]
    from PIL import Image, ImageDraw

    font = _font()
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, width - 1, height - 1], outline=BORDER)
    top = PADDING
    for index, row in enumerate(shown):
        if row.separator:
            middle = top + row.height // 2
            draw.line([6, middle, width - 7, middle], fill=BORDER)
        else:
            color = FOREGROUND if row.enabled else DISABLED
            if index == hover and row.enabled:
                draw.rectangle([2, top, width - 3, top + row.height - 1], fill=HIGHLIGHT)
                color = HIGHLIGHT_TEXT
            middle = top + row.height // 2
            left = TEXT_LEFT + row.indent
            # An unchecked item still shows its box or circle: it says the item is a toggle.
            if row.mark == "radio":
                draw.ellipse([left - 16, middle - 5, left - 6, middle + 5], outline=color)
                if row.checked:
                    draw.ellipse([left - 13, middle - 2, left - 9, middle + 2], fill=color)
            elif row.mark == "check":
                draw.rectangle([left - 16, middle - 5, left - 6, middle + 5], outline=color)
                if row.checked:
                    draw.line([(left - 14, middle), (left - 12, middle + 3),
                               (left - 8, middle - 3)], fill=color, width=2)
            draw.text((left, middle), row.text, fill=color, font=font, anchor="lm")
        top += row.height
    return image


def place(size: tuple[int, int], anchor: tuple[int, int, int, int],
          screen: tuple[int, int]) -> tuple[int, int]:
    """Where the menu goes: under the icon (``anchor`` = x, y, width, height), or above it
    when the tray is at the bottom of the screen, always wholly on the screen."""
    (width, height), (ax, ay, _aw, ah), (sw, sh) = size, anchor, screen
    y = ay + ah if ay + ah + height <= sh else ay - height
    x = min(max(ax, 0), max(sw - width, 0))
    return x, max(min(y, sh - height), 0)


class PopupMenu:
    """The menu, shown on ``conn`` (the caller's own X connection) until an item is chosen
    (clicked, or picked with the arrow keys and Return), Escape is pressed or the pointer is
    pressed outside it. Modal: ``choose`` blocks."""

    def __init__(self, conn: Any, shown: list[Row]) -> None:
        self.conn = conn
        self.shown = shown
        self.size = menu_size(shown)
        self.hover: int | None = None
        self.watched_gone = False  # the ``watch`` window was destroyed while the menu was open

    def choose(self, anchor: tuple[int, int, int, int], watch: Any = None) -> Row | None:
        """The row chosen, or None. ``watch`` is a window whose destruction (the tray icon
        going away under the menu) closes the menu too."""
        from Xlib import X

        screen = self.conn.screen()
        x, y = place(self.size, anchor, (screen.width_in_pixels, screen.height_in_pixels))
        window = screen.root.create_window(
            x, y, self.size[0], self.size[1], 0, screen.root_depth, X.InputOutput,
            X.CopyFromParent, override_redirect=True, background_pixel=screen.white_pixel,
            event_mask=(X.ExposureMask | X.ButtonPressMask | X.ButtonReleaseMask
                        | X.PointerMotionMask | X.KeyPressMask | X.LeaveWindowMask))
        window.set_wm_class(*WM_CLASS)
        window.set_wm_name("localembed menu")
        gc = window.create_gc()
        window.map()
        try:
            if not self._grab(window):
                log.warning("the tray menu could not grab the pointer")
                return None
            return self._loop(window, gc, watch)
        finally:
            with contextlib.suppress(Exception):
                self.conn.ungrab_pointer(X.CurrentTime)
                self.conn.ungrab_keyboard(X.CurrentTime)
                window.destroy()
                self.conn.sync()

    def _grab(self, window: Any) -> bool:
        """Take the pointer and keyboard, so that a press anywhere else and Escape reach the
        menu; retried briefly since the window must be viewable first."""
        from Xlib import X

        mask = X.ButtonPressMask | X.ButtonReleaseMask | X.PointerMotionMask
        for _ in range(50):
            self.conn.sync()
            status = window.grab_pointer(False, mask, X.GrabModeAsync, X.GrabModeAsync,
                                         X.NONE, X.NONE, X.CurrentTime)
            if status == X.GrabSuccess:
                window.grab_keyboard(False, X.GrabModeAsync, X.GrabModeAsync, X.CurrentTime)
                return True
            time.sleep(0.02)
        return False

    def _step(self, direction: int) -> int | None:
        """The next enabled row from the highlighted one (wrapping), for the arrow keys."""
        enabled = [i for i, row in enumerate(self.shown) if row.enabled]
        if not enabled:
            return None
        if self.hover not in enabled:
            return enabled[0] if direction > 0 else enabled[-1]
        return enabled[(enabled.index(self.hover) + direction) % len(enabled)]

    def _draw(self, window: Any, gc: Any) -> None:
        window.put_pil_image(gc, 0, 0, render(self.shown, self.size, self.hover))
        self.conn.flush()

    def _loop(self, window: Any, gc: Any, watch: Any) -> Row | None:
        from Xlib import XK, X

        width, height = self.size
        keys = {self.conn.keysym_to_keycode(sym): name for sym, name in (
            (XK.XK_Escape, "escape"), (XK.XK_Up, "up"), (XK.XK_Down, "down"),
            (XK.XK_Return, "return"), (XK.XK_KP_Enter, "return"))}

        def inside(event: Any) -> bool:
            return 0 <= event.event_x < width and 0 <= event.event_y < height

        while True:
            event = self.conn.next_event()
            kind = event.type
            if kind == X.Expose and event.window == window:
                self._draw(window, gc)
            elif kind == X.DestroyNotify and watch is not None and event.window == watch:
                self.watched_gone = True  # the icon went away (SIGTERM, Quit from elsewhere)
                return None
            elif kind == X.KeyPress and keys.get(event.detail) == "escape":
                return None
            elif kind == X.KeyPress and keys.get(event.detail) == "return":
                if self.hover is not None and self.shown[self.hover].enabled:
                    return self.shown[self.hover]
            elif kind == X.KeyPress and keys.get(event.detail) in ("up", "down"):
                self.hover = self._step(1 if keys[event.detail] == "down" else -1)
                self._draw(window, gc)
            elif kind in (X.MotionNotify, X.LeaveNotify):
                hover = row_at(self.shown, event.event_y) if inside(event) else None
                if hover != self.hover:
                    self.hover = hover
                    self._draw(window, gc)
            elif kind == X.ButtonPress and not inside(event):
                return None  # pressed elsewhere: close, as menus do
            elif kind == X.ButtonRelease and inside(event):
                # A release outside is the end of the click that opened the menu: ignored.
                index = row_at(self.shown, event.event_y)
                if index is not None and self.shown[index].enabled:
                    return self.shown[index]

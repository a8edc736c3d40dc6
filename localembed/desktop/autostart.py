"""Start at login, per OS: an XDG autostart entry (Linux), a LaunchAgent (macOS), a Startup
folder shortcut (Windows). Each is one file we write or remove; nothing else is touched."""

from __future__ import annotations

import os
import plistlib
import shlex
import sys
from pathlib import Path

LABEL = "dev.localembed.app"


def launch_command() -> list[str]:
    """How the login session should start the app (the frozen executable when frozen)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "app", "--no-browser"]
    return [sys.executable, "-m", "localembed", "app", "--no-browser"]


def entry_path() -> Path:
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    if sys.platform == "win32":
        appdata = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming"))
        return appdata / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / \
            "localembed.cmd"
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return config / "autostart" / "localembed.desktop"


def is_enabled() -> bool:
    return entry_path().exists()


def enable() -> Path:
    path = entry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    command = launch_command()
    if sys.platform == "darwin":
        path.write_bytes(plistlib.dumps({"Label": LABEL, "ProgramArguments": command,
                                         "RunAtLoad": True, "ProcessType": "Interactive"}))
    elif sys.platform == "win32":
        # A .cmd in the Startup folder; "start" detaches so no console stays open.
        args = " ".join(f'"{c}"' for c in command)
        path.write_text(f'@echo off\r\nstart "" {args}\r\n', encoding="utf-8")
    else:
        path.write_text(
            "[Desktop Entry]\n"
            "Type=Application\n"
            "Name=localembed\n"
            "Comment=Local embeddings server\n"
            f"Exec={shlex.join(command)}\n"
            "Icon=localembed\n"
            "Terminal=false\n"
            "X-GNOME-Autostart-enabled=true\n",
            encoding="utf-8",
        )
    return path


def disable() -> None:
    entry_path().unlink(missing_ok=True)


def toggle() -> bool:
    """Flip the setting; returns the new state."""
    if is_enabled():
        disable()
        return False
    enable()
    return True

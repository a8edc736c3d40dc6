"""Log files with rotation, and crash logging, for an app that usually has no terminal."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import platformdirs

from localembed.config.paths import APP_NAME, HOME_ENV, home_dir


def logs_dir() -> Path:
    """The platform's log directory (``$LOCALEMBED_HOME/logs`` when that is set)."""
    if os.environ.get(HOME_ENV):
        path = home_dir() / "logs"
    else:
        path = Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def setup(on_crash: Callable[[str], None] | None = None) -> Path:
    """Log to ``localembed.log`` (1 MB x 5 files) and record uncaught exceptions of any thread,
    telling ``on_crash`` (the tray's status line) what happened."""
    path = logs_dir() / "localembed.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=5,
                                                   encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers):
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    log = logging.getLogger("localembed.app")

    def crashed(exc_type, exc, tb, where: str = "main thread") -> None:  # type: ignore[no-untyped-def]
        log.critical("crash in %s: %s", where, exc, exc_info=(exc_type, exc, tb))
        if on_crash:
            on_crash(f"{exc_type.__name__}: {exc}")

    sys.excepthook = crashed

    def thread_crashed(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        crashed(args.exc_type, args.exc_value, args.exc_traceback,
                f"thread {args.thread.name if args.thread else '?'}")

    threading.excepthook = thread_crashed
    return path

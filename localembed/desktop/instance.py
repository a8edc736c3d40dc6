"""One app per user: the first launch holds a lock and publishes its URL; later launches find
it and open its playground instead of starting a second server."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

from filelock import FileLock, Timeout

from localembed.config.paths import home_dir


class Instance:
    def __init__(self) -> None:
        home_dir().mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(home_dir() / "app.lock"))
        self.info = home_dir() / "app.json"

    def acquire(self) -> bool:
        """True if this is the only running app (the OS frees the lock if a process dies)."""
        try:
            self.lock.acquire(timeout=0)
            return True
        except Timeout:
            return False

    def publish(self, url: str) -> None:
        tmp = self.info.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        os.replace(tmp, self.info)

    def running_url(self, wait: float = 15.0) -> str | None:
        """The URL of the running app once it answers /health (it may still be starting)."""
        deadline = time.monotonic() + wait
        while True:
            url = _read_url(self.info)
            if url and _alive(url):
                return url
            if time.monotonic() > deadline:
                return None
            time.sleep(0.25)

    def release(self) -> None:
        self.info.unlink(missing_ok=True)
        if self.lock.is_locked:
            self.lock.release()


def _read_url(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("url")
    except (OSError, ValueError):
        return None


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False

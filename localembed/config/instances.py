"""Running servers, as a registry in the app's home: ``servers/<pid>.json`` per process.

Commands that change what is installed (``rm``) or show what is loaded (``ls``) must ask every
running server, not only one on the configured port: a server started with ``--port 8765``
would otherwise have its model deleted under it. Each server records how to reach it when it
starts serving and removes its entry when it stops; an entry left by a process that died
without cleaning up is recognised by its dead pid, ignored and removed. The API key is not
stored (it is in config.json already, and ``/health`` needs none).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from localembed.config.network import local_url
from localembed.config.paths import home_dir

SERVERS_DIR = "servers"


@dataclass(frozen=True)
class ServerEntry:
    """What a client needs to reach one running server."""

    pid: int
    url: str  # as a client on this machine reaches it (a wildcard bind becomes loopback)
    host: str  # the address it is bound to
    port: int
    kind: str  # "serve" or "app"


def servers_dir() -> Path:
    return home_dir() / SERVERS_DIR


def _entry_path(pid: int) -> Path:
    return servers_dir() / f"{pid}.json"


def register(entry: ServerEntry) -> Path:
    """Record a running server, atomically: a reader never sees half an entry."""
    path = _entry_path(entry.pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(entry)), encoding="utf-8")
    os.replace(tmp, path)
    return path


def this_server(kind: str, host: str, port: int | str) -> ServerEntry:
    """The entry of a server this process runs, bound to ``host``:``port`` (waitress reports
    the port as text)."""
    return ServerEntry(os.getpid(), local_url(host, int(port)), host, int(port), kind)


@contextmanager
def registered(entry: ServerEntry, warn: Callable[[str], None]) -> Iterator[None]:
    """The server is registered while the block runs. A home that cannot be written to does
    not stop it serving; ``warn`` says what that costs."""
    try:
        register(entry)
    except OSError as exc:
        warn(f"cannot record this server in {servers_dir()} ({exc.strerror or exc}): "
             "`localembed ls` and `rm` will not see it")
    try:
        yield
    finally:
        with suppress(OSError):  # left behind, it is cleaned up once its pid is dead
            unregister(entry.pid)


def unregister(pid: int | None = None) -> None:
    """Remove a server's entry (this process's by default); nothing if there is none."""
    _entry_path(os.getpid() if pid is None else pid).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on Windows without ``os.kill``, which would
    terminate it)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        try:
            ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        finally:
            kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def live_servers() -> list[ServerEntry]:
    """Every registered server whose process is alive; entries of dead ones are removed, and
    unreadable ones (a crash mid-write cannot leave one, but a person might) are skipped."""
    found: list[ServerEntry] = []
    try:
        paths = sorted(servers_dir().glob("*.json"))
    except OSError:
        return found
    for path in paths:
        try:
            entry = ServerEntry(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if pid_alive(entry.pid):
            found.append(entry)
        else:
            path.unlink(missing_ok=True)
    return found

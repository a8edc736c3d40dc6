"""Where localembed keeps its files.

One function decides the home directory so that tests (and users with unusual setups) can move
everything at once with ``LOCALEMBED_HOME``; nothing else in the package hard-codes a path.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

APP_NAME = "localembed"
HOME_ENV = "LOCALEMBED_HOME"


def home_dir() -> Path:
    """The app's data directory: ``$LOCALEMBED_HOME`` or the platform's user data dir."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Directory holding model files; created on first use."""
    path = home_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def files_dir() -> Path:
    """Directory holding files uploaded for vector stores (``/v1/files``); created on first
    use."""
    path = home_dir() / "files"
    path.mkdir(parents=True, exist_ok=True)
    return path


def collections_dir() -> Path:
    """Directory holding collections (one SQLite database each); created on first use."""
    path = home_dir() / "collections"
    path.mkdir(parents=True, exist_ok=True)
    return path


CONFIG_FILE = "config.json"


def config_path() -> Path:
    return home_dir() / CONFIG_FILE


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` whole or not at all, readable by its owner only.

    config.json holds the API key, so it is never world-readable, not even for the moment
    between creating and restricting it (mkstemp creates the file 0600). A failed write (a
    full disk, a read-only home) removes its temporary file, leaves ``path`` as it was, and
    names ``path`` in the error: a failed write() reports no file name of its own.
    """
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # a full disk may only say so here
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise

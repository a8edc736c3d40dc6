"""Where localembed keeps its files.

One function decides the home directory so that tests (and users with unusual setups) can move
everything at once with ``LOCALEMBED_HOME``; nothing else in the package hard-codes a path.
"""

from __future__ import annotations

import os
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

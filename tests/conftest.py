"""What every test shares: the repository's paths, a throwaway app home, and waiting on a
condition. The fixtures live in tests/fixtures/ by what they serve, registered here."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.references",  # reference libraries: skip, or fail in CI, without them
    "tests.fixtures.models",  # synthetic GGUFs, the starter model and its weights
    "tests.fixtures.server",  # Flask test clients, live servers, requests
    "tests.fixtures.browser",  # headless Chromium and the playground page
    "tests.fixtures.desktop",  # Xvfb, a tray host, the screen, the tray app
]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"  # screenshots and other files a person may look at


@pytest.fixture(autouse=True)
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LOCALEMBED_HOME so nothing touches the user's models."""
    home = tmp_path / "home"
    monkeypatch.setenv("LOCALEMBED_HOME", str(home))
    return home


def wait_until(condition, timeout: float = 10.0,  # type: ignore[no-untyped-def]
               interval: float = 0.05) -> bool:
    """Whether ``condition()`` turns true within ``timeout`` seconds (checked every
    ``interval``): for tests that wait on another thread, process or screen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())

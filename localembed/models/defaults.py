"""Which model answers when a request names none.

The default model is the configured one, else the recommended catalog model once pulled, else
the built-in starter; a rerank that names no model goes to a reranker chosen by ``reranker_id``.
Every face (the server's registry, the CLI, the desktop app) asks here.
"""

from __future__ import annotations

from collections.abc import Sequence

from localembed.config.paths import models_dir
from localembed.engine.inspect import Kind
from localembed.models.catalog import CATALOG
from localembed.models.starter import STARTER_ID
from localembed.models.store import describe, installed

RECOMMENDED = next(e.id for e in CATALOG if e.recommended)


def default_model_id(configured: str | None = None) -> str:
    """The configured model, else the recommended one once pulled, else the starter."""
    if configured:
        return configured
    if (models_dir() / f"{RECOMMENDED}.gguf").exists():
        return RECOMMENDED
    return STARTER_ID


def reranker_id(preferred: Sequence[str] = ()) -> str | None:
    """The model a rerank that names none goes to: the first of ``preferred`` (the default
    model, then those a server has loaded) that is a reranker, else the first installed
    reranker; None when there is none. Read from the files' headers: nothing is loaded."""
    for model_id in dict.fromkeys([*preferred, *installed()]):
        try:
            if describe(model_id).kind == Kind.RERANKER:
                return model_id
        except (LookupError, OSError):  # removed meanwhile, or a loaded file since deleted
            continue
    return None

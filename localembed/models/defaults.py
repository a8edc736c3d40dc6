"""Which model answers when a request names none.

The default model is the configured one, else the recommended catalog model once pulled, else
the built-in starter; a rerank that names no model goes to a reranker chosen by ``reranker``.
Every face (the server's registry, the CLI, the desktop app) asks here.
"""

from __future__ import annotations

from localembed.config.paths import models_dir
from localembed.models.catalog import CATALOG
from localembed.models.starter import STARTER_ID

RECOMMENDED = next(e.id for e in CATALOG if e.recommended)


def default_model_id(configured: str | None = None) -> str:
    """The configured model, else the recommended one once pulled, else the starter."""
    if configured:
        return configured
    if (models_dir() / f"{RECOMMENDED}.gguf").exists():
        return RECOMMENDED
    return STARTER_ID

"""localembed: a local, OpenAI-compatible embeddings server for GGUF models.

The Python API is the same core the CLI and server use::

    from localembed import load
    with load() as engine:                      # the bundled starter model
        vectors = engine.embed(["hello", "world"]).vectors
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from localembed.engine import (
        EmbeddingResult,
        EmbedOptions,
        Engine,
        EngineClosed,
        InputError,
        ModelLoadError,
        RunnerOptions,
    )

# Imported on first use: `import localembed` (every command line start) loads no llama.cpp.
_ENGINE_NAMES = ("EmbedOptions", "EmbeddingResult", "Engine", "EngineClosed", "InputError",
                 "ModelLoadError", "RunnerOptions")


def load(model: str | None = None, **options: object) -> Engine:
    """Load a model by id (or .gguf path); None loads the starter model.

    Keyword arguments are ``RunnerOptions`` fields (threads, gpu_layers, max_tokens, ...).
    """
    from localembed.engine import Engine, RunnerOptions
    from localembed.models.defaults import default_model_id
    from localembed.models.store import resolve

    model_id, path = resolve(default_model_id(model), allow_path=True)
    return Engine(path, model_id=model_id, options=RunnerOptions(**options),  # type: ignore[arg-type]
                  safe_load=True)


def __getattr__(name: str) -> object:
    """``LLM`` and ``Runner`` load the server's request handling lazily (flask), the engine's
    names llama.cpp."""
    if name in ("LLM", "Runner"):
        from localembed import api

        return getattr(api, name)
    if name in _ENGINE_NAMES:
        from localembed import engine

        return getattr(engine, name)
    raise AttributeError(name)


__all__ = [
    "LLM", "Runner",
    "EmbedOptions", "EmbeddingResult", "Engine", "EngineClosed", "InputError",
    "ModelLoadError", "RunnerOptions", "load", "__version__",
]

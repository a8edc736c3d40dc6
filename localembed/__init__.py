"""localembed: a local, OpenAI-compatible embeddings server for GGUF models.

The Python API is the same core the CLI and server use::

    from localembed import load
    with load() as engine:                      # the bundled starter model
        vectors = engine.embed(["hello", "world"]).vectors
"""

from __future__ import annotations

__version__ = "0.1.0"

from localembed.engine import (  # noqa: E402
    EmbeddingResult,
    EmbedOptions,
    Engine,
    EngineClosed,
    InputError,
    ModelLoadError,
    RunnerOptions,
)


def load(model: str | None = None, **options: object) -> Engine:
    """Load a model by id (or .gguf path); None loads the starter model.

    Keyword arguments are ``RunnerOptions`` fields (threads, gpu_layers, max_tokens, ...).
    """
    from localembed.models.defaults import default_model_id
    from localembed.models.store import resolve

    model_id, path = resolve(default_model_id(model), allow_path=True)
    return Engine(path, model_id=model_id, options=RunnerOptions(**options),  # type: ignore[arg-type]
                  safe_load=True)


def __getattr__(name: str) -> object:
    """``LLM`` and ``Runner`` load the server's request handling lazily (flask)."""
    if name in ("LLM", "Runner"):
        from localembed import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = [
    "LLM", "Runner",
    "EmbedOptions", "EmbeddingResult", "Engine", "EngineClosed", "InputError",
    "ModelLoadError", "RunnerOptions", "load", "__version__",
]

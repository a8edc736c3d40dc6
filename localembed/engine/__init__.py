"""The engine: a GGUF model run by llama.cpp (core.py: the request path), its family's
prompts, pooling and Matryoshka rule (families.py), and how inputs and reranker pairs become
tokens (framing.py, pairs.py)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Each name and the module that defines it, imported on first use (PEP 562): the command line
# and the constants modules here (tasks.py, framing.py) must not load llama.cpp and numpy.
_WHERE = {
    "EngineClosed": "batcher", "NonFiniteOutput": "batcher", "Overloaded": "batcher",
    "EmbeddingResult": "core", "EmbedOptions": "core", "Engine": "core", "InputError": "core",
    "RerankResult": "core", "WrongModelKind": "core",
    "GGUFInfo": "inspect", "Kind": "inspect", "ModelLoadError": "inspect",
    "inspect_gguf": "inspect",
    "RunnerOptions": "llama", "gpu_backend": "llama",
    "RerankOptions": "pairs",
}

if TYPE_CHECKING:
    from localembed.engine.batcher import EngineClosed, NonFiniteOutput, Overloaded
    from localembed.engine.core import (
        EmbeddingResult,
        EmbedOptions,
        Engine,
        InputError,
        RerankResult,
        WrongModelKind,
    )
    from localembed.engine.inspect import GGUFInfo, Kind, ModelLoadError, inspect_gguf
    from localembed.engine.llama import RunnerOptions, gpu_backend
    from localembed.engine.pairs import RerankOptions


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "EmbedOptions", "EmbeddingResult", "Engine", "EngineClosed", "GGUFInfo", "InputError",
    "Kind", "ModelLoadError", "NonFiniteOutput", "Overloaded", "RerankOptions", "RerankResult",
    "RunnerOptions", "WrongModelKind", "gpu_backend", "inspect_gguf",
]
assert sorted(__all__) == sorted(_WHERE)

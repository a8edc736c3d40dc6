"""The embedding engine; see core.py for the request path."""

from localembed.engine.batcher import EngineClosed, NonFiniteOutput, Overloaded
from localembed.engine.core import (
    EmbeddingResult,
    EmbedOptions,
    Engine,
    InputError,
    RerankOptions,
    RerankResult,
    WrongModelKind,
)
from localembed.engine.inspect import GGUFInfo, Kind, ModelLoadError, inspect_gguf
from localembed.engine.llama import RunnerOptions, gpu_backend

__all__ = [
    "EmbedOptions", "EmbeddingResult", "Engine", "EngineClosed", "GGUFInfo", "InputError",
    "Kind", "ModelLoadError", "NonFiniteOutput", "Overloaded", "RerankOptions", "RerankResult",
    "RunnerOptions", "WrongModelKind", "gpu_backend", "inspect_gguf",
]

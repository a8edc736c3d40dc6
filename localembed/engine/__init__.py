"""The engine: a GGUF model run by llama.cpp (core.py: the request path), its family's
prompts, pooling and Matryoshka rule (families.py), and how inputs and reranker pairs become
tokens (framing.py, pairs.py)."""

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

__all__ = [
    "EmbedOptions", "EmbeddingResult", "Engine", "EngineClosed", "GGUFInfo", "InputError",
    "Kind", "ModelLoadError", "NonFiniteOutput", "Overloaded", "RerankOptions", "RerankResult",
    "RunnerOptions", "WrongModelKind", "gpu_backend", "inspect_gguf",
]

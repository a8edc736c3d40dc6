"""Ollama's embedding API (``/api/embed``, ``/api/embeddings``, ``/api/tags``, ``/api/version``)
for tools that speak Ollama.

Every field Ollama documents is either applied or refused: ``keep_alive`` sets how long the
model stays loaded after this request, ``options.num_ctx`` limits the input length, and options
that cannot apply per request (``num_thread``, ``num_gpu``) are a clear 400. Other options
(sampling settings meant for text generation) are accepted and ignored, as Ollama itself does
for embeddings.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone
from typing import Annotated

import msgspec

from localembed.dialects.common import PositiveInt, truncate_mode
from localembed.engine import EmbedOptions, InputError
from localembed.models.description import ModelDescription
from localembed.service.execute import EmbedRequest

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# OllamaOptions that would need a reload with other llama.cpp settings: refused, not ignored.
REFUSED_OPTIONS = ("num_thread", "num_gpu", "main_gpu", "num_batch", "use_mmap", "use_mlock",
                   "numa")


def parse_keep_alive(value: str | float | None) -> float | None:
    """Seconds to keep the model loaded: None = server default, < 0 = forever, 0 = unload."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise InputError(f"'keep_alive' must be a duration like '5m', '30s' or '1h', or a number "
                         f"of seconds (got {value!r}).", param="keep_alive")
    return float(match.group(1)) * _UNITS[match.group(2)]


class OllamaOptions(msgspec.Struct, kw_only=True):
    """Ollama's model options; only ``num_ctx`` applies to embeddings."""

    num_ctx: PositiveInt | None = None
    num_thread: int | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    num_batch: int | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    numa: bool | None = None

    def check(self) -> None:
        for name in REFUSED_OPTIONS:
            if getattr(self, name) is not None:
                raise InputError(f"option '{name}' is a server setting in localembed and cannot "
                                 "be changed per request (see `localembed serve --help`).",
                                 param="options")


Inputs = str | Annotated[list[str], msgspec.Meta(min_length=1)]


class OllamaFields(msgspec.Struct, kw_only=True):
    model: str | None = None
    keep_alive: str | float | None = None
    options: OllamaOptions | None = None

    def embed_options(self, **fields: object) -> EmbedOptions:
        options = EmbedOptions(**fields)  # type: ignore[arg-type]
        if self.options is not None:
            self.options.check()
            if self.options.num_ctx is not None:
                options = replace(options, max_tokens=self.options.num_ctx)
        return options

    def keep_alive_seconds(self) -> float | None:
        return parse_keep_alive(self.keep_alive)


class OllamaEmbedRequest(OllamaFields, kw_only=True):
    """``POST /api/embed``."""

    input: Inputs
    truncate: bool = True
    dimensions: PositiveInt | None = None
    task: str | None = None

    def to_request(self) -> EmbedRequest:
        texts = [self.input] if isinstance(self.input, str) else self.input
        return EmbedRequest(texts, self.embed_options(
            dimensions=self.dimensions, task=self.task,
            truncate=truncate_mode(self.truncate)), self.model)


class OllamaEmbedResponse(msgspec.Struct):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class OllamaEmbeddingsRequest(OllamaFields, kw_only=True):
    """``POST /api/embeddings``, Ollama's legacy single-prompt form."""

    prompt: str

    def to_request(self) -> EmbedRequest:
        return EmbedRequest([self.prompt], self.embed_options(), self.model, field="prompt")


class OllamaEmbeddingsResponse(msgspec.Struct):
    embedding: list[float]


class OllamaTagDetails(msgspec.Struct):
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class OllamaTag(msgspec.Struct):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: OllamaTagDetails

    @classmethod
    def of(cls, model: ModelDescription) -> OllamaTag:
        """A readable installed model as Ollama lists it (``:latest``, its GGUF facts)."""
        when = datetime.fromtimestamp(model.modified or 0, tz=timezone.utc)
        arch = model.architecture or ""
        return cls(name=f"{model.id}:latest", model=f"{model.id}:latest",
                   modified_at=when.isoformat(), size=model.size_bytes or 0, digest="",
                   details=OllamaTagDetails("gguf", arch, [arch], "", model.quantization or ""))


class OllamaTags(msgspec.Struct):
    models: list[OllamaTag]


class OllamaVersion(msgspec.Struct):
    version: str

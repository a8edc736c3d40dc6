"""In-process embeddings with the HTTP API's options, in the shapes vLLM and mistral.rs users
know (``LLM.embed``, ``LLM.score``, ``Runner``), without starting a server.

Bodies are validated by the same request models as the HTTP routes and run by the same core
service, so a field behaves identically in-process and over HTTP. Failures are the core's own
exceptions (``InputError`` with ``param`` and ``code``, ``ModelNotFound``, ...), not HTTP errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from localembed.dialects import local, openai
from localembed.dialects.common import convert
from localembed.engine import InputError, RunnerOptions
from localembed.registry import Registry
from localembed.service import Limits, Service
from localembed.tokenids import local_cl100k


@dataclass(frozen=True)
class EmbeddingOutput:
    embedding: list


@dataclass(frozen=True)
class EmbeddingRequestOutput:
    """One input's result, shaped like vLLM's (``.outputs.embedding``)."""

    index: int
    prompt: object
    outputs: EmbeddingOutput


@dataclass(frozen=True)
class ScoringOutput:
    score: float


@dataclass(frozen=True)
class ScoringRequestOutput:
    index: int
    outputs: ScoringOutput


class LLM:
    """A loaded embedding model; ``LLM("embeddinggemma-300m").embed(["hello"])``.

    Options are the /v1/embeddings body fields (``dimensions``, ``task``, ``output_dtype``,
    ``truncate_prompt_tokens``, ``embed_dtype``, ``use_activation``, ...). Bad options raise
    ``InputError`` (a ``ValueError`` with ``param`` and ``code``).
    """

    def __init__(self, model: str | None = None, **runner_options: object) -> None:
        self.registry = Registry(model, RunnerOptions(**runner_options))  # type: ignore[arg-type]
        self.service = Service(self.registry, Limits())
        cl100k = local_cl100k()
        self._decoder = cl100k.decode if cl100k is not None else None

    @property
    def model(self) -> str:
        return self.registry.default_id

    def create_embeddings(self, **body: object) -> dict:
        """Exactly the /v1/embeddings response for the same body."""
        request = convert(dict(body), openai.EmbeddingRequest)
        return msgspec.to_builtins(openai.create_embeddings(request, self.service, self._decoder))

    def embed(self, prompts: str | Sequence, **options: object) -> list[EmbeddingRequestOutput]:
        items = [prompts] if isinstance(prompts, str) else list(prompts)
        response = self.create_embeddings(input=items, **options)
        return [EmbeddingRequestOutput(d["index"], items[d["index"]],
                                       EmbeddingOutput(d["embedding"]))
                for d in response["data"]]

    def score(self, text_1: str | Sequence[str], text_2: str | Sequence[str],
              **options: object) -> list[ScoringRequestOutput]:
        request = convert({"text_1": text_1, "text_2": text_2, **options}, local.ScoreRequest)
        result = self.service.compare(request.to_request())
        return [ScoringRequestOutput(i, ScoringOutput(float(s)))
                for i, s in enumerate(result.scores)]

    def close(self) -> None:
        self.registry.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Runner = LLM  # the name mistral.rs users reach for
APIError = InputError  # the name earlier releases raised

__all__ = ["APIError", "InputError", "LLM", "Runner"]

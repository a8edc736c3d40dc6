"""In-process embeddings with the HTTP API's options, in the shapes vLLM and mistral.rs users
know (``LLM.embed``, ``LLM.score``, ``Runner``), without starting a server.

The request handling is the server's own (``create_embeddings``, ``create_score``), so a
field behaves identically in-process and over HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from localembed.engine import RunnerOptions
from localembed.registry import Registry
from localembed.server.cohere import create_score
from localembed.server.errors import APIError
from localembed.server.openai import create_embeddings
from localembed.settings import ServerConfig
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
    ``APIError`` (a ``ValueError``-like error with ``param`` and ``code``).
    """

    def __init__(self, model: str | None = None, **runner_options: object) -> None:
        self.registry = Registry(model, RunnerOptions(**runner_options))  # type: ignore[arg-type]
        self.config = ServerConfig()
        self.decoder = local_cl100k()

    @property
    def model(self) -> str:
        return self.registry.default_id

    def create_embeddings(self, **body: object) -> dict:
        """Exactly the /v1/embeddings response for the same body."""
        return create_embeddings(dict(body), self.registry, self.config, self.decoder)

    def embed(self, prompts: str | Sequence, **options: object) -> list[EmbeddingRequestOutput]:
        items = [prompts] if isinstance(prompts, str) else list(prompts)
        response = self.create_embeddings(input=items, **options)
        return [EmbeddingRequestOutput(d["index"], items[d["index"]],
                                       EmbeddingOutput(d["embedding"]))
                for d in response["data"]]

    def score(self, text_1: str | Sequence[str], text_2: str | Sequence[str],
              **options: object) -> list[ScoringRequestOutput]:
        response = create_score({"text_1": text_1, "text_2": text_2, **options},
                                self.registry, self.config)
        return [ScoringRequestOutput(d["index"], ScoringOutput(d["score"]))
                for d in response["data"]]

    def close(self) -> None:
        self.registry.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Runner = LLM  # the name mistral.rs users reach for

__all__ = ["APIError", "LLM", "Runner"]

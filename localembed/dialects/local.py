"""localembed's own routes (similarity, tokenize) and vLLM's ``/score``."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

import msgspec

from localembed.dialects.common import (
    EmbedFields,
    NonEmptyStrings,
    PositiveInt,
    TruncateMode,
    Usage,
)
from localembed.engine import EmbedOptions, InputError
from localembed.service import execute
from localembed.service.execute import Compared, CompareRequest, matrix_request, similarity_request


class SimilarityRequest(EmbedFields, kw_only=True):
    """``POST /v1/similarity``: documents ranked against a query."""

    query: str
    documents: NonEmptyStrings | None = None
    texts: NonEmptyStrings | None = None  # an alias of documents

    def to_request(self) -> CompareRequest:
        documents = self.documents if self.documents is not None else self.texts
        if documents is None:
            raise InputError("'documents' is required.", param="documents",
                             code="missing_required_parameter")
        return similarity_request(self.query, documents, self.options(), self.model)


class SimilarityItem(msgspec.Struct):
    index: int
    score: float
    document: str
    object: Literal["similarity"] = "similarity"


class SimilarityResponse(msgspec.Struct):
    model: str
    data: list[SimilarityItem]
    usage: Usage
    duration_ms: float
    object: Literal["list"] = "list"


def similarity_response(request: CompareRequest, result: Compared,
                        started: float) -> SimilarityResponse:
    order = sorted(range(len(result.scores)), key=lambda i: -result.scores[i])
    return SimilarityResponse(
        model=result.model,
        data=[SimilarityItem(i, float(result.scores[i]), request.right[i]) for i in order],
        usage=Usage.of(result.total_tokens),
        duration_ms=round((time.perf_counter() - started) * 1000, 3))


Texts = str | NonEmptyStrings


class MatrixRequest(EmbedFields, kw_only=True):
    """``POST /v1/similarity/matrix``: the cosine of every text with every text."""

    texts: NonEmptyStrings

    def to_request(self) -> CompareRequest:
        return matrix_request(self.texts, self.options(), self.model)


class MatrixResponse(msgspec.Struct):
    model: str
    texts: list[str]
    matrix: list[list[float]]
    usage: Usage
    object: Literal["matrix"] = "matrix"


def matrix_response(request: CompareRequest, result: Compared) -> MatrixResponse:
    n = len(request.left)
    return MatrixResponse(result.model, list(request.left),
                          result.scores.reshape(n, n).tolist(),
                          Usage.of(result.total_tokens))


class ScoreRequest(msgspec.Struct, kw_only=True):
    """vLLM's ``POST /score``: one text against many, or two lists pairwise; cosine scores with
    an embedding model, the cross-encoder's scores (0..1) with a reranker."""

    text_1: Texts
    text_2: Texts
    model: str | None = None
    dimensions: PositiveInt | None = None
    truncate_prompt_tokens: PositiveInt | None = None
    instruction: Annotated[str, msgspec.Meta(
        description="A reranker's task (Qwen3-Reranker's <Instruct>): localembed extension; "
                    "embedding models refuse it.")] | None = None

    def to_request(self) -> execute.ScoreRequest:
        """The pairs to score; what their score is the service decides by the model's kind."""
        first = [self.text_1] if isinstance(self.text_1, str) else self.text_1
        second = [self.text_2] if isinstance(self.text_2, str) else self.text_2
        if len(first) == 1:
            pairs = [(0, i) for i in range(len(second))]
        elif len(first) == len(second):
            pairs = [(i, i) for i in range(len(first))]
        else:
            raise InputError("'text_1' and 'text_2' must have the same length (or 'text_1' "
                             "a single text).", param="text_2")
        return execute.ScoreRequest(first, second, pairs, self.model, self.dimensions,
                                     self.truncate_prompt_tokens, self.instruction, "text_2")


class ScoreItem(msgspec.Struct):
    index: int
    score: float
    object: Literal["score"] = "score"


class ScoreResponse(msgspec.Struct):
    id: str
    created: int
    model: str
    data: list[ScoreItem]
    usage: Usage
    object: Literal["list"] = "list"


def score_response(result: Compared) -> ScoreResponse:
    return ScoreResponse(
        id=f"score-{uuid.uuid4().hex}", created=int(time.time()), model=result.model,
        data=[ScoreItem(i, float(s)) for i, s in enumerate(result.scores)],
        usage=Usage.of(result.total_tokens))


class TokenizeRequest(msgspec.Struct, kw_only=True):
    """``POST /tokenize``: the model's own token ids, prompt and special tokens included."""

    content: Texts | None = None
    input: Texts | None = None  # an alias of content
    model: str | None = None
    task: str | None = None
    instruction: str | None = None
    truncate: TruncateMode = "none"

    def texts(self) -> tuple[list[str], bool]:
        """(texts, whether one string was sent)."""
        value = self.content if self.content is not None else self.input
        if value is None:
            raise InputError("'content' is required.", param="content",
                             code="missing_required_parameter")
        return ([value], True) if isinstance(value, str) else (list(value), False)

    def options(self) -> EmbedOptions:
        return EmbedOptions(task=self.task, instruction=self.instruction, truncate=self.truncate)


class TokenizeResponse(msgspec.Struct):
    model: str
    tokens: list[int | list[int]]
    count: int

"""Reranking's faces: Cohere's and Jina's rerank (``documents``), Hugging Face TEI's
(``texts``) and vLLM's ``/score`` answered by a reranker.

The request models validate the bodies and describe them in the OpenAPI document; ``rerank``
and ``cross_scores`` run them on the core service's models within its limits (documents per
request, tokens per request, the request timeout, a client that went away), so every route
and the in-process API score the same way.

Choices where the dialects leave room, applied to every route alike:

- ``top_n`` below 1 is a 400; above the number of documents it returns them all (as Cohere
  and Jina do).
- Documents are returned only when asked (``return_documents``, TEI's ``return_text``), as
  Cohere does; Jina returns them by default.
- A document too long for the model loses its end unless truncation is turned off
  (``truncate: false`` or ``"none"``, Voyage's ``truncation: false``), which makes it a 400; the
  query and the reranker's prompt are never cut. TEI's default is the same (its server's
  ``--auto-truncate``).
- Each result also says how its score reads (``score_type``: ``probability`` for
  Qwen3-Reranker's p(yes), ``sigmoid`` for a cross-encoder's logit) and, for cross-encoders,
  the logit itself (``raw_score``): localembed's extensions.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Annotated, Literal

import msgspec
import numpy as np

from localembed.dialects.cohere import CohereApiVersion
from localembed.dialects.common import Usage
from localembed.dialects.local import ScoreItem, ScoreResponse
from localembed.engine import Engine, InputError, RerankOptions, RerankResult
from localembed.service.execute import CompareRequest, Service

Query = Annotated[str, msgspec.Meta(min_length=1, description="The text to rank against.")]
Instruction = Annotated[str, msgspec.Meta(
    description="Qwen3-Reranker's task (<Instruct>); its web-search one by default. A reranker "
                "without an instruction in its prompt refuses it (localembed extension).")]
Truncate = Annotated[Literal["end", "none"] | bool, msgspec.Meta(
    description="'end' (or true, the default): a document too long for the model loses its "
                "end, never the query; 'none' (or false): it is a 400.")]
# Cohere bills one search unit per query and up to this many documents.
DOCUMENTS_PER_SEARCH_UNIT = 100


class RerankDocument(msgspec.Struct, kw_only=True):
    """A document as an object (Jina, Cohere v1): only its ``text`` is ranked."""

    text: str


class RerankRequest(msgspec.Struct, kw_only=True):
    """The body of ``POST /v1/rerank``, ``/v2/rerank`` and ``/rerank`` (Cohere, Jina)."""

    query: Query
    documents: Annotated[list[str | RerankDocument], msgspec.Meta(min_length=1)]
    model: str | None = None
    top_n: Annotated[int, msgspec.Meta(
        ge=1, description="Return the best n (all of them when n is larger).")] | None = None
    return_documents: bool = False
    max_tokens_per_doc: Annotated[int, msgspec.Meta(
        ge=1, description="Cohere v2: a document's tokens beyond this are cut (or, with "
                          "truncation off, refused).")] | None = None
    rank_fields: Annotated[list[str], msgspec.Meta(
        description="Cohere v1: only [\"text\"] is supported.")] | None = None
    priority: Annotated[int, msgspec.Meta(
        description="Cohere v2: accepted and ignored.")] | None = None
    truncate: Truncate | None = None
    truncation: Annotated[bool, msgspec.Meta(
        description="Voyage's switch: false is truncate 'none'.")] | None = None
    instruction: Instruction | None = None

    def texts(self) -> list[str]:
        if self.rank_fields is not None and self.rank_fields != ["text"]:
            raise InputError("'rank_fields' other than [\"text\"] is not supported: send each "
                             "document's text.", param="rank_fields")
        return [d if isinstance(d, str) else d.text for d in self.documents]

    def options(self) -> RerankOptions:
        if self.truncate is not None and self.truncation is not None:
            raise InputError("send either 'truncate' or 'truncation', not both.",
                             param="truncation")
        value = self.truncate if self.truncate is not None else self.truncation
        return RerankOptions(instruction=self.instruction, truncate=truncate_mode(value))


def truncate_mode(value: str | bool | None) -> str:
    """A JSON boolean or a mode as the core's mode: true (or unset) is "end", false "none"."""
    if value is None or value is True:
        return "end"
    if value is False:
        return "none"
    return value


class RerankedDocument(msgspec.Struct):
    text: str


class RerankResultItem(msgspec.Struct, omit_defaults=True):
    index: int
    relevance_score: float
    score_type: Literal["probability", "sigmoid"]
    document: RerankedDocument | None = None
    raw_score: float | None = None  # a cross-encoder's logit


class RerankBilledUnits(msgspec.Struct):
    search_units: int


class RerankTokens(msgspec.Struct):
    input_tokens: int
    output_tokens: int = 0


class RerankMeta(msgspec.Struct):
    billed_units: RerankBilledUnits
    tokens: RerankTokens
    api_version: CohereApiVersion


class RerankResponse(msgspec.Struct):
    """Cohere's rerank answer (v1 and v2) with Jina's ``model`` and ``usage``."""

    id: str
    model: str
    results: list[RerankResultItem]
    usage: Usage
    meta: RerankMeta


class TEIRerankRequest(msgspec.Struct, kw_only=True):
    """The body of TEI's ``POST /rerank`` (told apart from Jina's by ``texts``)."""

    query: Query
    texts: Annotated[list[str], msgspec.Meta(min_length=1)]
    model: Annotated[str, msgspec.Meta(
        description="Which reranker (TEI serves one model): localembed extension.")] | None = None
    raw_scores: Annotated[bool, msgspec.Meta(
        description="A cross-encoder's logit instead of its sigmoid; Qwen3-Reranker's score "
                    "is its probability either way.")] = False
    return_text: bool = False
    truncate: Annotated[bool, msgspec.Meta(
        description="false: a text too long for the model is a 400 (default: its end is cut)."
    )] | None = None
    truncation_direction: Annotated[Literal["Right", "Left", "right", "left"], msgspec.Meta(
        description="Only Right: a document loses its end, never the query.")] = "Right"
    instruction: Instruction | None = None

    def options(self) -> RerankOptions:
        if self.truncation_direction.lower() == "left":
            raise InputError("'truncation_direction' Left is not supported for reranking: a "
                             "document too long loses its end (Right).",
                             param="truncation_direction")
        return RerankOptions(instruction=self.instruction, truncate=truncate_mode(self.truncate))


class TEIRank(msgspec.Struct, omit_defaults=True):
    index: int
    score: float
    text: str | None = None


TEIRerankResponse = list[TEIRank]


@dataclass
class Reranked:
    """A reranker's answer for one query: which model gave it, and its scores."""

    model: str
    result: RerankResult

    def order(self, top_n: int | None = None) -> list[int]:
        """Document indices, most relevant first (ties keep the input order)."""
        scores = self.result.scores
        return sorted(range(len(scores)), key=lambda i: -float(scores[i]))[:top_n]


def _document_limit(engine: Engine, query: str, options: RerankOptions,
                    max_document_tokens: int | None) -> RerankOptions:
    """Cohere's per-document token limit as the core's per-pair one (the query and the
    reranker's prompt around it come on top)."""
    if max_document_tokens is None:
        return options
    frame = len(engine.prepare_pair(query, "", options))
    return replace(options, max_tokens=min(engine.max_tokens, frame + max_document_tokens))


def rerank(service: Service, engine: Engine, query: str, documents: Sequence[str],
           options: RerankOptions, field: str = "documents",
           abandoned: Callable[[], bool] | None = None,
           max_document_tokens: int | None = None) -> Reranked:
    """Score ``documents`` against ``query`` on ``engine`` within the service's limits."""
    service.check_count(len(documents), field)

    def submit(e: Engine) -> Future:
        return e.submit_rerank(query, documents, _document_limit(e, query, options,
                                                                 max_document_tokens),
                               max_total_tokens=service.limits.max_request_tokens)

    engine, future = service.submit(engine, engine.id, submit)
    return Reranked(engine.id, service.wait(future, abandoned))


def cross_scores(service: Service, engine: Engine, request: CompareRequest,
                 options: RerankOptions,
                 abandoned: Callable[[], bool] | None = None) -> tuple[str, np.ndarray, int]:
    """A reranker's score for each (left, right) pair of a compare request: (model, scores,
    tokens). The pairs of one left text are one rerank; all are queued before any is awaited,
    so they share the workers' batches, and a refused group drops the others' work."""
    service.check_count(len(request.left), request.field)
    service.check_count(len(request.right), request.field)
    groups: dict[int, list[int]] = {}
    for k, (left, _) in enumerate(request.pairs):
        groups.setdefault(left, []).append(k)
    futures: list = []
    scores = np.empty(len(request.pairs), dtype=np.float64)
    tokens = 0
    try:
        for left, ks in groups.items():
            documents = [request.right[request.pairs[k][1]] for k in ks]

            def submit(e: Engine, query: str = request.left[left],
                       documents: list[str] = documents) -> Future:
                return e.submit_rerank(query, documents, options,
                                       max_total_tokens=service.limits.max_request_tokens)

            engine, future = service.submit(engine, engine.id, submit)
            futures.append((ks, future))
        for ks, future in futures:
            result: RerankResult = service.wait(future, abandoned)  # type: ignore[assignment]
            scores[ks] = result.scores
            tokens += result.total_tokens
    except BaseException:
        for _, future in futures:
            future.cancel()
        raise
    return engine.id, scores, tokens


def rerank_response(request: RerankRequest, texts: list[str], reranked: Reranked,
                    api_version: str = "2") -> RerankResponse:
    result = reranked.result
    items = [RerankResultItem(
        index=i, relevance_score=float(result.scores[i]),
        score_type=result.score_type,  # type: ignore[arg-type]
        document=RerankedDocument(texts[i]) if request.return_documents else None,
        raw_score=None if result.logits is None else float(result.logits[i]))
        for i in reranked.order(request.top_n)]
    tokens = result.total_tokens
    units = math.ceil(len(texts) / DOCUMENTS_PER_SEARCH_UNIT)
    return RerankResponse(
        id=str(uuid.uuid4()), model=reranked.model, results=items, usage=Usage.of(tokens),
        meta=RerankMeta(RerankBilledUnits(units), RerankTokens(tokens),
                        CohereApiVersion(api_version)))


def tei_response(request: TEIRerankRequest, reranked: Reranked) -> list[TEIRank]:
    result = reranked.result
    raw = request.raw_scores and result.logits is not None
    values = result.logits if raw else result.scores
    return [TEIRank(i, float(values[i]),  # type: ignore[index]
                    request.texts[i] if request.return_text else None)
            for i in reranked.order()]


def score_options(engine: Engine, dimensions: int | None, truncate_prompt_tokens: int | None,
                  instruction: str | None) -> RerankOptions:
    """vLLM's /score fields as a reranker's options (``dimensions`` means nothing to it)."""
    if dimensions is not None:
        raise InputError(f"{engine.id} is a reranker: 'dimensions' applies to embedding models "
                         "only.", param="dimensions")
    return RerankOptions(instruction=instruction, max_tokens=truncate_prompt_tokens)


def score_response(model: str, scores: np.ndarray, tokens: int) -> ScoreResponse:
    return ScoreResponse(
        id=f"score-{uuid.uuid4().hex}", created=int(time.time()), model=model,
        data=[ScoreItem(i, float(s)) for i, s in enumerate(scores)], usage=Usage.of(tokens))

"""Reranking's faces: Cohere's and Jina's rerank (``documents``), Hugging Face TEI's
(``texts``) and vLLM's ``/score`` answered by a reranker.

The request models validate the bodies, describe them in the OpenAPI document and translate
them into the service's ``RerankRequest``; ``Service.rerank`` runs them within its limits
(documents per request, tokens per request, the request timeout, a client that went away), so
every route, the CLI and the in-process API score the same way.

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
import uuid
from dataclasses import replace
from typing import Annotated, Literal

import msgspec

from localembed.dialects.cohere import CohereApiVersion
from localembed.dialects.common import Usage, truncate_mode
from localembed.engine import InputError, RerankOptions, RerankResult
from localembed.service import execute
from localembed.service.execute import ranking

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

    def to_request(self, max_tokens: int | None = None) -> execute.RerankRequest:
        """The service's request; ``max_tokens`` is the in-process API's tighter per-pair
        limit."""
        texts = self.texts()
        options = self.options()
        if max_tokens is not None:
            options = replace(options, max_tokens=max_tokens)
        return execute.RerankRequest(self.query, texts, options, self.model,
                                     max_document_tokens=self.max_tokens_per_doc)


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

    def to_request(self) -> execute.RerankRequest:
        return execute.RerankRequest(self.query, self.texts, self.options(), self.model,
                                     field="texts")


class TEIRank(msgspec.Struct, omit_defaults=True):
    index: int
    score: float
    text: str | None = None


TEIRerankResponse = list[TEIRank]


def rerank_response(request: RerankRequest, texts: list[str], result: RerankResult,
                    api_version: str = "2") -> RerankResponse:
    items = [RerankResultItem(
        index=i, relevance_score=float(result.scores[i]),
        score_type=result.score_type,  # type: ignore[arg-type]
        document=RerankedDocument(texts[i]) if request.return_documents else None,
        raw_score=None if result.logits is None else float(result.logits[i]))
        for i in ranking(result.scores, request.top_n)]
    tokens = result.total_tokens
    units = math.ceil(len(texts) / DOCUMENTS_PER_SEARCH_UNIT)
    return RerankResponse(
        id=str(uuid.uuid4()), model=result.model, results=items, usage=Usage.of(tokens),
        meta=RerankMeta(RerankBilledUnits(units), RerankTokens(tokens),
                        CohereApiVersion(api_version)))


def tei_response(request: TEIRerankRequest, result: RerankResult) -> list[TEIRank]:
    raw = request.raw_scores and result.logits is not None
    values = result.logits if raw else result.scores
    return [TEIRank(i, float(values[i]),  # type: ignore[index]
                    request.texts[i] if request.return_text else None)
            for i in ranking(result.scores)]

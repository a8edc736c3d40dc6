"""Cohere's Embed v2 (``POST /v2/embed``): ``texts`` or text ``inputs``, several embedding
types at once, and Cohere's response shape."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from localembed.dialects.common import PositiveInt
from localembed.dialects.encoding import OUTPUT_DTYPES, encode_base64, quantize
from localembed.engine import EmbeddingResult, EmbedOptions, InputError
from localembed.service.execute import EmbedRequest

INPUT_TYPES = {"search_query": "query", "search_document": "document",
               "classification": "classification", "clustering": "clustering"}
EMBEDDING_TYPES = (*OUTPUT_DTYPES, "base64")
TRUNCATE = {"NONE": "none", "START": "start", "END": "end"}


class CohereTextPart(msgspec.Struct, kw_only=True):
    type: Literal["text"]  # images and other parts are refused by name
    text: str


class CohereInput(msgspec.Struct, kw_only=True):
    content: list[CohereTextPart]


class CohereEmbedRequest(msgspec.Struct, kw_only=True):
    """The body of ``POST /v2/embed``."""

    model: str | None = None
    texts: Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    inputs: Annotated[list[CohereInput], msgspec.Meta(min_length=1)] | None = None
    input_type: Literal[tuple(INPUT_TYPES)] | None = None  # type: ignore[valid-type]
    embedding_types: list[Literal[EMBEDDING_TYPES]] | None = None  # type: ignore[valid-type]
    truncate: Literal[tuple(TRUNCATE)] = "END"  # type: ignore[valid-type]
    output_dimension: PositiveInt | None = None
    max_tokens: PositiveInt | None = None

    def text_list(self) -> list[str]:
        if self.texts is not None and self.inputs is not None:
            raise InputError("send either texts or inputs, not both", param="texts")
        if self.texts is not None:
            return self.texts
        if self.inputs is None:
            raise InputError("texts (or inputs) is required", param="texts",
                             code="missing_required_parameter")
        return ["\n".join(part.text for part in item.content) for item in self.inputs]

    def to_request(self) -> EmbedRequest:
        options = EmbedOptions(task=INPUT_TYPES.get(self.input_type or ""),
                               dimensions=self.output_dimension,
                               truncate=TRUNCATE[self.truncate], max_tokens=self.max_tokens)
        return EmbedRequest(self.text_list(), options, self.model, field="texts")


class CohereBilledUnits(msgspec.Struct):
    input_tokens: int


class CohereApiVersion(msgspec.Struct):
    version: str = "2"


class CohereMeta(msgspec.Struct):
    billed_units: CohereBilledUnits
    api_version: CohereApiVersion = msgspec.field(default_factory=CohereApiVersion)


class CohereEmbedResponse(msgspec.Struct):
    id: str
    embeddings: dict[str, list[list[float] | str]]
    texts: list[str]
    meta: CohereMeta
    response_type: Literal["embeddings_by_type"] = "embeddings_by_type"


def embed_response(request: CohereEmbedRequest, texts: list[str],
                   result: EmbeddingResult) -> CohereEmbedResponse:
    embeddings: dict = {}
    for kind in dict.fromkeys(request.embedding_types or ["float"]):
        if kind == "base64":
            embeddings[kind] = encode_base64(result.vectors)
        else:
            values = quantize(result.vectors, kind)
            embeddings[kind] = values.tolist() if kind != "float" else [
                [float(x) for x in row] for row in values.tolist()]
    return CohereEmbedResponse(id=str(uuid.uuid4()), embeddings=embeddings, texts=texts,
                         meta=CohereMeta(CohereBilledUnits(result.total_tokens)))

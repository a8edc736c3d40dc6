"""OpenAI's ``POST /v1/embeddings`` with the Mistral and vLLM extensions, and ``/v1/models``.

One request model covers the three dialects because their clients all call the same path: the
OpenAI SDKs (base64 by default), Mistral (``output_dimension``, ``output_dtype``) and vLLM
(``truncate_prompt_tokens``, ``embed_dtype``, ``endianness``, chat ``messages``, ...).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Annotated, Literal

import msgspec

from localembed.dialects.common import EmbedFields, PositiveInt, truncate_mode
from localembed.dialects.encoding import (
    EMBED_DTYPES,
    ENCODING_FORMATS,
    ENDIANNESS,
    OUTPUT_DTYPES,
    encode_base64,
    encode_rows,
    quantize,
    rounded_to,
)
from localembed.engine import EmbeddingResult, EmbedOptions, InputError
from localembed.engine.families import Family
from localembed.engine.inspect import Kind
from localembed.models.description import ModelDescription
from localembed.service.execute import EmbedRequest, Service

# A token-id decoder (tiktoken's cl100k_base), or None when ids are the model's own.
Decoder = Callable[[Sequence[int]], str]


class ContentPart(msgspec.Struct, kw_only=True):
    type: Literal["text"]
    text: str


class ChatMessage(msgspec.Struct, kw_only=True):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


# A string, strings, token ids, or token-id arrays (checked further in ``inputs``).
InputField = str | list[str | int | list[int]]


class EmbeddingRequest(EmbedFields, kw_only=True):
    """The body of ``POST /v1/embeddings``."""

    input: InputField | None = None
    messages: list[ChatMessage] | None = None
    encoding_format: Literal[ENCODING_FORMATS] = "float"  # type: ignore[valid-type]
    user: Annotated[str, msgspec.Meta(description="Accepted and ignored (OpenAI's end-user "
                                                  "id for abuse tracking).")] | None = None
    # Mistral
    output_dimension: PositiveInt | None = None
    output_dtype: Literal[OUTPUT_DTYPES] = "float"  # type: ignore[valid-type]
    # vLLM
    embed_dtype: Literal[EMBED_DTYPES] = "float32"  # type: ignore[valid-type]
    endianness: Literal[ENDIANNESS] = "little"  # type: ignore[valid-type]
    truncate_prompt_tokens: int | None = None
    truncation_side: Literal["left", "right"] | None = None
    use_activation: bool | None = None
    add_special_tokens: bool | None = None

    def embed_options(self) -> EmbedOptions:
        """Every truncation and post-processing field of the three dialects, reconciled."""
        if self.output_dtype != "float" and self.embed_dtype != "float32":
            raise InputError("'embed_dtype' applies to float output only.",
                             param="embed_dtype")
        dims = self.dimensions
        if self.output_dimension is not None:
            if dims is not None and dims != self.output_dimension:
                raise InputError("'dimensions' and 'output_dimension' disagree.",
                                 param="output_dimension")
            dims = self.output_dimension
        normalize = True if self.normalize is None else self.normalize
        if self.use_activation is not None:
            normalize = self.use_activation
        truncate, max_tokens = truncate_mode(self.truncate), None
        limit = self.truncate_prompt_tokens
        if limit is not None and (limit == 0 or limit < -1):
            raise InputError("'truncate_prompt_tokens' must be positive or -1.",
                             param="truncate_prompt_tokens")
        if limit is not None and limit != -1:
            max_tokens = limit
        if limit is not None or self.truncation_side is not None:
            truncate = "start" if self.truncation_side == "left" else "end"
        return replace(self.options(), dimensions=dims, normalize=normalize, truncate=truncate,
                       max_tokens=max_tokens,
                       add_special_tokens=self.add_special_tokens is not False)

    def inputs(self, decoder: Decoder | None) -> list:
        """The inputs as texts, or as the model's token ids when ``decoder`` is None."""
        value = self.input
        if value is None:
            raise InputError("'input' is required.", param="input",
                             code="missing_required_parameter")
        if isinstance(value, str):
            return [value]
        if not value:
            raise InputError("'input' must not be an empty array.", param="input")
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, int) and v >= 0 for v in value):
            token_lists = [value]
        elif all(isinstance(v, list) and all(t >= 0 for t in v) for v in value):
            token_lists = value
        else:
            raise InputError("'input' mixes types: use all strings, all token ids (>= 0), or "
                             "all token-id arrays.", param="input", code="invalid_type")
        if decoder is None:
            return token_lists
        try:
            return [decoder(ids) for ids in token_lists]  # type: ignore[arg-type]
        except InputError:
            raise
        except Exception as exc:  # ids outside cl100k_base
            raise InputError("'input' holds token ids that are not valid cl100k_base ids.",
                             param="input") from exc

    def to_request(self, family: Family, decoder: Decoder | None) -> EmbedRequest:
        """The core request; chat messages become the family's instruction and text."""
        options = self.embed_options()
        if self.messages is None:
            return EmbedRequest(self.inputs(decoder), options, self.model)
        if self.input is not None:
            raise InputError("send either 'input' or 'messages', not both.", param="messages")
        if not self.messages:
            raise InputError("'messages' must not be empty.", param="messages")
        system = "\n".join(m.text() for m in self.messages if m.role in ("system", "developer"))
        text = "\n".join(m.text() for m in self.messages
                         if m.role not in ("system", "developer"))
        if system and not family.has_prompts:
            return EmbedRequest([f"{system}\n{text}"], options, self.model)
        return EmbedRequest([text], replace(options, instruction=options.instruction
                                            or system or None), self.model)


def create_embeddings(request: EmbeddingRequest, service: Service, decoder: Decoder | None,
                      abandoned: Callable[[], bool] | None = None) -> EmbeddingResponse:
    """Run a /v1/embeddings request: the HTTP route and the in-process ``LLM`` both call this.
    The model is looked up first because chat messages render per family."""
    engine = service.engine(request.model)
    result = service.embed(request.to_request(engine.family, decoder), engine, abandoned)
    return embedding_response(request, result)


class Embedding(msgspec.Struct):
    index: int
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0


class EmbeddingResponse(msgspec.Struct):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    id: str
    object: Literal["list"] = "list"


def embedding_response(request: EmbeddingRequest, result: EmbeddingResult) -> EmbeddingResponse:
    if request.output_dtype != "float":
        rows = encode_rows(quantize(result.vectors, request.output_dtype),
                           request.encoding_format)
    elif request.encoding_format == "base64":
        rows = encode_base64(result.vectors, request.embed_dtype, request.endianness)
    else:
        rows = encode_rows(rounded_to(result.vectors, request.embed_dtype), "float")
    tokens = result.total_tokens
    return EmbeddingResponse(
        data=[Embedding(i, row) for i, row in enumerate(rows)], model=result.model,
        usage=EmbeddingUsage(tokens, tokens), id=f"embd-{uuid.uuid4().hex}")


class ModelCard(msgspec.Struct, kw_only=True):
    """A ``/v1/models`` entry: OpenAI's fields plus what an embeddings client needs (the
    ``ModelDescription`` fields of the same names, which say what each means)."""

    id: str
    object: Literal["model"] = "model"
    owned_by: str = "localembed"
    loaded: bool = False
    default: bool = False
    created: int | None = None
    size_bytes: int | None = None
    # Resident memory the loaded model added to the server (weights paged in, llama.cpp's
    # buffers), measured at load; None when not loaded or not measurable on this system.
    rss_bytes: int | None = None
    dimensions: int | None = None
    context_length: int | None = None
    max_seq_length: int | None = None
    max_tokens: int | None = None
    family: str | None = None
    # "embedding" (POST /v1/embeddings) or "reranker" (POST /v1/rerank); None if undescribed.
    kind: Kind | None = None
    # Sizes a request may ask for: any of these, or any from min_dimensions to dimensions.
    matryoshka_dimensions: list[int] | None = None
    min_dimensions: int | None = None
    missing: bool = False
    error: str | None = None

    @classmethod
    def of(cls, model: ModelDescription) -> ModelCard:
        shared = {name: getattr(model, name) for name in cls.__struct_fields__
                  if name in ModelDescription.__struct_fields__}
        return cls(**shared, created=model.file_modified())


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: Literal["list"] = "list"

"""OpenAI-compatible routes: /v1/embeddings, /v1/models, and localembed's own /v1/similarity."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import numpy as np
from flask import Blueprint

from localembed.encoding import (
    EMBED_DTYPES,
    ENCODING_FORMATS,
    ENDIANNESS,
    OUTPUT_DTYPES,
    encode_base64,
    encode_rows,
    quantize,
    rounded_to,
)
from localembed.engine import EmbedOptions
from localembed.registry import Registry
from localembed.server.errors import APIError
from localembed.server.parse import (
    choice,
    embed_options,
    get_engine,
    json_body,
    openai_truncate,
    optional,
    parse_inputs,
    positive_int,
    required,
    run_embedding,
)
from localembed.server.state import state
from localembed.settings import ServerConfig
from localembed.store import describe, installed
from localembed.tokenids import Decoder

bp = Blueprint("openai", __name__)


def render_messages(value: object) -> tuple[str, str | None]:
    """vLLM-style chat ``messages`` as (text, instruction): system turns become the family's
    instruction (Qwen3's ``Instruct:``, Gemma's ``task:``), the other turns the text."""
    if not isinstance(value, list) or not value:
        raise APIError(400, "'messages' must be a non-empty array of {role, content}.",
                       param="messages", code="invalid_type")
    system, other = [], []
    for message in value:
        if not isinstance(message, dict) or message.get("role") not in (
                "system", "user", "assistant", "developer"):
            raise APIError(400, "each message needs a role (system, user or assistant) and "
                                "content.", param="messages", code="invalid_value")
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if not (isinstance(part, dict) and part.get("type") == "text"
                        and isinstance(part.get("text"), str)):
                    raise APIError(400, "only text content parts are supported.",
                                   param="messages", code="invalid_value")
                parts.append(part["text"])
            content = "\n".join(parts)
        if not isinstance(content, str):
            raise APIError(400, "message content must be a string or text parts.",
                           param="messages", code="invalid_type")
        (system if message["role"] in ("system", "developer") else other).append(content)
    return "\n".join(other), ("\n".join(system) or None)


def _options(body: dict, engine_has_prompts: bool, instruction: str | None) -> EmbedOptions:
    """Every truncation and post-processing field of the OpenAI, Mistral and vLLM dialects."""
    base = embed_options(body, truncate=openai_truncate(body))
    dims = base.dimensions
    output_dimension = positive_int(body, "output_dimension")
    if output_dimension is not None:
        if dims is not None and dims != output_dimension:
            raise APIError(400, "'dimensions' and 'output_dimension' disagree.",
                           param="output_dimension", code="invalid_value")
        dims = output_dimension
    normalize = base.normalize
    use_activation = optional(body, "use_activation", bool, "true or false")
    if use_activation is not None:
        normalize = bool(use_activation)
    truncate, max_tokens = base.truncate, None
    limit = optional(body, "truncate_prompt_tokens", int, "an integer (-1 for the model max)")
    side = choice(body, "truncation_side", ("left", "right"), None)
    if limit is not None:
        if limit == 0 or limit < -1:
            raise APIError(400, "'truncate_prompt_tokens' must be positive or -1.",
                           param="truncate_prompt_tokens", code="invalid_value")
        max_tokens = None if limit == -1 else limit
        truncate = "start" if side == "left" else "end"
    elif side is not None:
        truncate = "start" if side == "left" else "end"
    add_special = optional(body, "add_special_tokens", bool, "true or false")
    if not engine_has_prompts and instruction:
        instruction = None
    return replace(base, dimensions=dims, normalize=normalize, truncate=truncate,
                   max_tokens=max_tokens, instruction=base.instruction or instruction,
                   add_special_tokens=True if add_special is None else bool(add_special))


def create_embeddings(body: dict, registry: Registry, config: ServerConfig,
                      decoder: Decoder | None) -> dict:
    """The /v1/embeddings response for a request body; shared by the HTTP route and the
    in-process ``localembed.LLM``. Raises APIError for anything wrong with the request."""
    optional(body, "user", str, "a string")
    encoding_format = choice(body, "encoding_format", ENCODING_FORMATS, "float")
    output_dtype = choice(body, "output_dtype", OUTPUT_DTYPES, "float")
    embed_dtype = choice(body, "embed_dtype", EMBED_DTYPES, "float32")
    endianness = choice(body, "endianness", ENDIANNESS, "little")
    if output_dtype != "float" and embed_dtype != "float32":
        raise APIError(400, "'embed_dtype' applies to float output only.", param="embed_dtype",
                       code="invalid_value")
    engine = get_engine(registry, body)
    instruction = None
    if body.get("messages") is not None:
        if body.get("input") is not None:
            raise APIError(400, "send either 'input' or 'messages', not both.",
                           param="messages", code="invalid_value")
        text, instruction = render_messages(body["messages"])
        inputs: list = [text]
    else:
        inputs = parse_inputs(body.get("input"), config, decoder)
    options = _options(body, engine.family.has_prompts, instruction)
    if not engine.family.has_prompts and instruction:
        inputs = [f"{instruction}\n{inputs[0]}"]
    engine, result = run_embedding(engine, inputs, options, config, registry)
    if output_dtype != "float":
        rows = encode_rows(quantize(result.vectors, output_dtype), encoding_format)  # type: ignore[arg-type]
    elif encoding_format == "base64":
        rows = encode_base64(result.vectors, embed_dtype, endianness)  # type: ignore[arg-type]
    else:
        rows = encode_rows(rounded_to(result.vectors, embed_dtype), "float")  # type: ignore[arg-type]
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": row}
                 for i, row in enumerate(rows)],
        "model": engine.id,
        "usage": {"prompt_tokens": result.total_tokens, "total_tokens": result.total_tokens,
                  "completion_tokens": 0},
        "id": f"embd-{uuid.uuid4().hex}",
    }


@bp.post("/v1/embeddings")
@bp.post("/embeddings")
def embeddings() -> dict:
    st = state()
    response = create_embeddings(json_body(), st.registry, st.config, st.decoder)
    st.metrics.count_work(len(response["data"]), response["usage"]["total_tokens"])
    return response


def model_card(model_id: str) -> dict:
    """A /v1/models entry: OpenAI's fields plus what an embeddings client needs to know."""
    st = state()
    loaded = {e.id: e for e in st.registry.loaded()}
    card: dict = {"id": model_id, "object": "model", "owned_by": "localembed",
                  "loaded": model_id in loaded, "default": model_id == st.registry.default_id}
    if model_id in loaded:
        d = loaded[model_id].describe()
        card.update(created=int(loaded[model_id].info.path.stat().st_mtime),
                    size_bytes=d["size_bytes"],
                    dimensions=d["dimensions"], context_length=d["context_length"],
                    max_seq_length=d["max_seq_length"],
                    max_tokens=d["max_tokens"], family=d["family"],
                    matryoshka_dimensions=d["matryoshka_dimensions"])
        return card
    try:
        d = describe(model_id)
    except LookupError:
        return card
    if "error" not in d:
        card.update(created=int(d["modified"]), size_bytes=d["size_bytes"],
                    dimensions=d["dimensions"], context_length=d["context_length"],
                    max_seq_length=d["max_seq_length"],
                    family=d["family"], matryoshka_dimensions=d["matryoshka_dimensions"])
    return card


@bp.get("/v1/models")
@bp.get("/models")
def models() -> dict:
    ids = sorted(set(installed()) | {e.id for e in state().registry.loaded()})
    return {"object": "list", "data": [model_card(i) for i in ids]}


@bp.get("/v1/models/<model_id>")
def model(model_id: str) -> dict:
    ids = set(installed()) | {e.id for e in state().registry.loaded()}
    if model_id not in ids:
        raise APIError(404, f"The model '{model_id}' does not exist or is not installed.",
                       param="model", code="model_not_found")
    return model_card(model_id)


@bp.post("/v1/similarity")
def similarity() -> dict:
    """Score documents against a query: {"query", "documents"} -> ranked scores."""
    st = state()
    body = json_body()
    query = required(body, "query")
    documents = body.get("documents", body.get("texts"))
    if not (isinstance(documents, list) and documents
            and all(isinstance(d, str) for d in documents)):
        raise APIError(400, "'documents' must be a non-empty array of strings.",
                       param="documents", code="invalid_type")
    base = embed_options(body, truncate=openai_truncate(body))
    engine = get_engine(st.registry, body)
    task = base.task
    started = time.perf_counter()
    engine, q = run_embedding(engine, [query], EmbedOptions(
        task=task or "query", instruction=base.instruction, dimensions=base.dimensions,
        truncate=base.truncate), st.config, st.registry)
    engine, d = run_embedding(engine, list(documents), EmbedOptions(
        task=task or "document", title=base.title, dimensions=base.dimensions,
        truncate=base.truncate), st.config, st.registry)
    scores = (d.vectors @ q.vectors[0]).astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    tokens = q.total_tokens + d.total_tokens
    st.metrics.count_work(1 + len(documents), tokens)
    return {
        "object": "list",
        "model": engine.id,
        "data": [{"object": "similarity", "index": int(i), "score": float(scores[i]),
                  "document": documents[i]} for i in order],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }

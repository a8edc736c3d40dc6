"""OpenAI-compatible routes: /v1/embeddings, /v1/models, and localembed's own /v1/similarity."""

from __future__ import annotations

import time
import uuid

import numpy as np
from flask import Blueprint

from localembed.encoding import ENCODING_FORMATS, OUTPUT_DTYPES, encode_rows, quantize
from localembed.engine import EmbedOptions
from localembed.engine.inspect import ModelLoadError, inspect_gguf
from localembed.server.errors import APIError
from localembed.server.parse import (
    choice,
    embed_options,
    get_engine,
    json_body,
    openai_truncate,
    optional,
    parse_inputs,
    required,
    run_embedding,
)
from localembed.server.state import state
from localembed.store import installed, resolve

bp = Blueprint("openai", __name__)


@bp.post("/v1/embeddings")
def embeddings() -> dict:
    st = state()
    body = json_body()
    optional(body, "user", str, "a string")
    encoding_format = choice(body, "encoding_format", ENCODING_FORMATS, "float")
    output_dtype = choice(body, "output_dtype", OUTPUT_DTYPES, "float")
    options = embed_options(body, truncate=openai_truncate(body))
    inputs = parse_inputs(body.get("input"), st.config, st.decoder)
    engine = get_engine(st.registry, body)
    engine, result = run_embedding(engine, inputs, options, st.config, st.registry)
    st.metrics.count_work(len(inputs), result.total_tokens)
    values = quantize(result.vectors, output_dtype)  # type: ignore[arg-type]
    rows = encode_rows(values, encoding_format)  # type: ignore[arg-type]
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": row}
                 for i, row in enumerate(rows)],
        "model": engine.id,
        "usage": {"prompt_tokens": result.total_tokens, "total_tokens": result.total_tokens},
        "id": f"embd-{uuid.uuid4().hex}",
    }


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
                    max_tokens=d["max_tokens"], family=d["family"],
                    matryoshka_dimensions=d["matryoshka_dimensions"])
        return card
    try:
        info = inspect_gguf(resolve(model_id)[1])
    except (ModelLoadError, LookupError):
        return card
    card.update(created=int(info.path.stat().st_mtime), size_bytes=info.size,
                dimensions=info.hidden,
                context_length=info.context, family=info.family.name,
                matryoshka_dimensions=info.family.dimensions(info.hidden))
    return card


@bp.get("/v1/models")
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

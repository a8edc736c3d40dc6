"""Cohere Embed v2 (`POST /v2/embed`) and a vLLM-style `/score`, over the same engine."""

from __future__ import annotations

import time
import uuid

import numpy as np
from flask import Blueprint

from localembed.encoding import OUTPUT_DTYPES, encode_base64, quantize
from localembed.engine import EmbedOptions
from localembed.registry import Registry
from localembed.server.errors import APIError
from localembed.server.parse import (
    get_engine,
    json_body,
    optional,
    positive_int,
    run_embedding,
)
from localembed.server.state import state
from localembed.settings import ServerConfig

bp = Blueprint("cohere", __name__)

INPUT_TYPES = {"search_query": "query", "search_document": "document",
               "classification": "classification", "clustering": "clustering"}
EMBEDDING_TYPES = (*OUTPUT_DTYPES, "base64")
TRUNCATE = {"NONE": "none", "START": "start", "END": "end"}


def _texts(body: dict) -> list[str]:
    """Cohere's ``texts``, or ``inputs`` whose content parts are text."""
    texts, inputs = body.get("texts"), body.get("inputs")
    if texts is not None and inputs is not None:
        raise APIError(400, "send either texts or inputs, not both", param="texts")
    if texts is not None:
        if not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
            raise APIError(400, "texts must be a non-empty array of strings", param="texts")
        return texts
    if not isinstance(inputs, list) or not inputs:
        raise APIError(400, "texts (or inputs) is required", param="texts")
    out = []
    for item in inputs:
        content = item.get("content") if isinstance(item, dict) else None
        if not isinstance(content, list):
            raise APIError(400, "each input needs a content array", param="inputs")
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise APIError(400, f"unsupported content type {kind!r}: only text is "
                                    "supported", param="inputs")
            if not isinstance(part.get("text"), str):
                raise APIError(400, "text content needs a 'text' string", param="inputs")
            parts.append(part["text"])
        out.append("\n".join(parts))
    return out


@bp.post("/v2/embed")
def embed() -> dict:
    st = state()
    body = json_body()
    texts = _texts(body)
    if len(texts) > st.config.max_inputs:
        raise APIError(400, f"at most {st.config.max_inputs} texts per request", param="texts")
    input_type = optional(body, "input_type", str, "a string")
    if input_type is not None and input_type not in INPUT_TYPES:
        raise APIError(400, f"invalid input_type {input_type!r}: use one of "
                            f"{', '.join(INPUT_TYPES)}", param="input_type")
    types = body.get("embedding_types") or ["float"]
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise APIError(400, "embedding_types must be an array of strings",
                       param="embedding_types")
    unknown = [t for t in types if t not in EMBEDDING_TYPES]
    if unknown:
        raise APIError(400, f"invalid embedding_types {unknown[0]!r}: use "
                            f"{', '.join(EMBEDDING_TYPES)}", param="embedding_types")
    truncate = optional(body, "truncate", str, "NONE, START or END") or "END"
    if truncate not in TRUNCATE:
        raise APIError(400, f"invalid truncate {truncate!r}: use NONE, START or END",
                       param="truncate")
    options = EmbedOptions(task=INPUT_TYPES.get(input_type or ""),
                           dimensions=positive_int(body, "output_dimension"),
                           truncate=TRUNCATE[truncate], max_tokens=positive_int(body,
                                                                                 "max_tokens"))
    engine = get_engine(st.registry, body)
    engine, result = run_embedding(engine, texts, options, st.config, st.registry)
    st.metrics.count_work(len(texts), result.total_tokens)
    embeddings: dict = {}
    for kind in dict.fromkeys(types):
        if kind == "base64":
            embeddings[kind] = encode_base64(result.vectors)
        else:
            values = quantize(result.vectors, kind)
            embeddings[kind] = values.tolist() if kind != "float" else [
                [float(x) for x in row] for row in values.tolist()]
    return {
        "id": str(uuid.uuid4()),
        "embeddings": embeddings,
        "texts": texts,
        "meta": {"api_version": {"version": "2"},
                 "billed_units": {"input_tokens": result.total_tokens}},
        "response_type": "embeddings_by_type",
    }


def score_pairs(text_1: object, text_2: object) -> list[tuple[str, str]]:
    """vLLM's pairing rules: one against many, or element-wise lists of equal length."""
    def as_list(value: object, name: str) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
        raise APIError(400, f"'{name}' must be a string or a non-empty array of strings.",
                       param=name, code="invalid_type")

    first, second = as_list(text_1, "text_1"), as_list(text_2, "text_2")
    if len(first) == 1:
        return [(first[0], t) for t in second]
    if len(first) != len(second):
        raise APIError(400, "'text_1' and 'text_2' must have the same length (or 'text_1' "
                            "a single text).", param="text_2", code="invalid_value")
    return list(zip(first, second, strict=True))


def create_score(body: dict, registry: Registry, config: ServerConfig) -> dict:
    """Cosine scores of text pairs; shared by /score and ``localembed.LLM.score``."""
    pairs = score_pairs(body.get("text_1"), body.get("text_2"))
    engine = get_engine(registry, body)
    firsts = list(dict.fromkeys(a for a, _ in pairs))
    seconds = list(dict.fromkeys(b for _, b in pairs))
    options = EmbedOptions(dimensions=positive_int(body, "dimensions"))
    engine, left = run_embedding(engine, firsts, options, config, registry)
    engine, right = run_embedding(engine, seconds, options, config, registry)
    lv = dict(zip(firsts, left.vectors, strict=True))
    rv = dict(zip(seconds, right.vectors, strict=True))
    scores = [float(np.dot(lv[a], rv[b])) for a, b in pairs]
    tokens = left.total_tokens + right.total_tokens
    return {
        "id": f"score-{uuid.uuid4().hex}",
        "object": "list",
        "created": int(time.time()),
        "model": engine.id,
        "data": [{"index": i, "object": "score", "score": s} for i, s in enumerate(scores)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@bp.post("/score")
@bp.post("/v1/score")
def score() -> dict:
    """Cosine scores of text pairs, for reranking with an embedding model."""
    st = state()
    response = create_score(json_body(), st.registry, st.config)
    st.metrics.count_work(len(response["data"]), response["usage"]["total_tokens"])
    return response

"""Ollama-compatible routes for tools that speak Ollama's API (/api/embed, /api/tags, ...)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import Blueprint

from localembed import __version__
from localembed.engine import EmbedOptions
from localembed.server.errors import APIError
from localembed.server.parse import (
    get_engine,
    json_body,
    optional,
    positive_int,
    required,
    run_embedding,
)
from localembed.server.state import state
from localembed.store import describe, installed

bp = Blueprint("ollama", __name__)


def _texts(body: dict, key: str) -> list[str]:
    value = body.get(key)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if len(value) > state().config.max_inputs:
            raise APIError(400, f"at most {state().config.max_inputs} inputs per request")
        return value
    raise APIError(400, f"'{key}' must be a string or a non-empty array of strings")


@bp.post("/api/embed")
def embed() -> dict:
    st = state()
    body = json_body()
    texts = _texts(body, "input")
    truncate = optional(body, "truncate", bool, "true or false")
    options = EmbedOptions(dimensions=positive_int(body, "dimensions"),
                           task=optional(body, "task", str, "a string"),  # type: ignore[arg-type]
                           truncate="none" if truncate is False else "end")
    started = time.perf_counter()
    engine = get_engine(st.registry, body)
    loaded = time.perf_counter()
    engine, result = run_embedding(engine, texts, options, st.config, st.registry)
    st.metrics.count_work(len(texts), result.total_tokens)
    return {
        "model": body.get("model") or engine.id,
        "embeddings": result.vectors.tolist(),
        "total_duration": int((time.perf_counter() - started) * 1e9),
        "load_duration": int((loaded - started) * 1e9),
        "prompt_eval_count": result.total_tokens,
    }


@bp.post("/api/embeddings")
def embeddings() -> dict:
    """Ollama's legacy single-prompt form."""
    st = state()
    body = json_body()
    prompt = required(body, "prompt")
    engine = get_engine(st.registry, body)
    engine, result = run_embedding(engine, [prompt], EmbedOptions(), st.config,
                                   st.registry)
    st.metrics.count_work(1, result.total_tokens)
    return {"embedding": result.vectors[0].tolist()}


@bp.get("/api/tags")
def tags() -> dict:
    models = []
    for model_id in installed():
        try:
            d = describe(model_id)
        except LookupError:
            continue
        if "error" in d:
            continue
        modified = datetime.fromtimestamp(d["modified"], tz=timezone.utc)
        models.append({
            "name": f"{model_id}:latest",
            "model": f"{model_id}:latest",
            "modified_at": modified.isoformat(),
            "size": d["size_bytes"],
            "digest": "",
            "details": {"format": "gguf", "family": d["architecture"],
                        "families": [d["architecture"]], "parameter_size": "",
                        "quantization_level": d["quantization"]},
        })
    return {"models": models}


@bp.get("/api/version")
def version() -> dict:
    return {"version": __version__}
